/* utils/suggest: edit distances and which candidate a typo is taken for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utils/suggest.h"

static void test_distance(void **state)
{
    char longw[KILN_SUGGEST_MAX_LEN + 2];

    (void)state;
    assert_int_equal(kiln_suggest_distance("", ""), 0);
    assert_int_equal(kiln_suggest_distance("tag", "tagg"), 1);
    assert_int_equal(kiln_suggest_distance("builder", "buildr"), 1);
    assert_int_equal(kiln_suggest_distance("Builder", "builder"), 0); /* case is not an edit */
    assert_int_equal(kiln_suggest_distance("kitten", "sitting"), 3);
    assert_int_equal(kiln_suggest_distance("", "abc"), 3);
    memset(longw, 'a', sizeof(longw) - 1);
    longw[sizeof(longw) - 1] = '\0';
    assert_true(kiln_suggest_distance(longw, "a") == SIZE_MAX);
}

static void test_closest(void **state)
{
    const char *flags[] = {"tag", "target", "build-arg", "build-context", NULL, "pull"};
    const char *stages[] = {"builder", NULL, "base"};

    (void)state;
    assert_int_equal(kiln_suggest_closest("tagg", flags, 6), 0);
    assert_int_equal(kiln_suggest_closest("buid-arg", flags, 6), 2);
    assert_int_equal(kiln_suggest_closest("targte", flags, 6), 1);
    assert_int_equal(kiln_suggest_closest("pul", flags, 6), 5);
    assert_int_equal(kiln_suggest_closest("zzz", flags, 6), -1); /* nothing close */
    assert_int_equal(kiln_suggest_closest("tag", flags, 6), -1); /* an exact match is no typo */
    assert_int_equal(kiln_suggest_closest("ab", stages, 3), -1); /* 2 edits of 4 letters: too far */
    assert_int_equal(kiln_suggest_closest("bilder", stages, 3), 0);
    assert_int_equal(kiln_suggest_closest("node", stages, 3), -1);
    assert_int_equal(kiln_suggest_closest("x", stages, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance),
        cmocka_unit_test(test_closest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
