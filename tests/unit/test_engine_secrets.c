/* Unit tests: build secret references (engine/secrets.c): keys in any order, "source" as src,
 * env, entries without '=' and unknown keys ignored, no id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/secrets.h"

static void test_forms(void **state)
{
    kiln_secret_spec_t s;
    kiln_secret_spec_parse("src=/run/tok,id=npm", &s);
    assert_string_equal(s.id, "npm");
    assert_string_equal(s.src, "/run/tok");
    assert_null(s.env);
    kiln_secret_spec_clear(&s);
    assert_null(s.id);

    kiln_secret_spec_parse("id=gh,env=GH_TOKEN,mode=0400,junk", &s);
    assert_string_equal(s.id, "gh");
    assert_null(s.src);
    assert_string_equal(s.env, "GH_TOKEN");
    kiln_secret_spec_clear(&s);

    kiln_secret_spec_parse("id=a,source=/f", &s);
    assert_string_equal(s.src, "/f");
    kiln_secret_spec_clear(&s);

    kiln_secret_spec_parse("src=/f", &s); /* no id: the caller refuses it */
    assert_null(s.id);
    assert_string_equal(s.src, "/f");
    kiln_secret_spec_clear(&s);

    kiln_secret_spec_parse("", &s);
    assert_null(s.id);
    assert_null(s.src);
    assert_null(s.env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_forms)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
