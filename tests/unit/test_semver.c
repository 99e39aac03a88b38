/* Unit tests for utils/semver: versions, precedence, and a table of
 * node-semver ranges (comparators, x-ranges, tilde, caret with 0.x, hyphen
 * ranges, ||, prerelease exclusion), and the highest satisfying version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utils/error.h"
#include "utils/semver.h"

typedef struct {
    const char *range, *version;
    int expect; /* 1 satisfies, 0 not */
} case_t;

static const case_t cases[] = {
    /* comparators and bare versions */
    {"1.2.3", "1.2.3", 1},
    {"=1.2.3", "1.2.3", 1},
    {"v1.2.3", "1.2.3", 1},
    {"1.2.3", "1.2.4", 0},
    {">=20", "20.0.0", 1},
    {">=20", "19.9.9", 0},
    {">=20", "26.12.1", 1},
    {">= 20", "22.0.0", 1},
    {">20", "20.99.0", 0},
    {">20", "21.0.0", 1},
    {">20.1", "20.1.9", 0},
    {">20.1", "20.2.0", 1},
    {">1.2.3", "1.2.4", 1},
    {"<20", "19.99.99", 1},
    {"<20", "20.0.0", 0},
    {"<=20", "20.99.0", 1},
    {"<=20", "21.0.0", 0},
    {"<=20.1.2", "20.1.2", 1},
    {">=18 <21", "20.5.0", 1},
    {">=18 <21", "21.0.0", 0},
    {">=18.0.0 <=18.5.0", "18.5.1", 0},
    /* x-ranges */
    {"*", "1.0.0", 1},
    {"", "9.9.9", 1},
    {"x", "0.0.1", 1},
    {"20", "20.19.2", 1},
    {"20", "21.0.0", 0},
    {"20.x", "20.3.0", 1},
    {"20.X", "19.3.0", 0},
    {"1.2.*", "1.2.9", 1},
    {"1.2.x", "1.3.0", 0},
    {"1.2", "1.2.0", 1},
    {"v20.1", "20.1.7", 1},
    {"v20.1", "20.2.0", 0},
    /* tilde */
    {"~1.2.3", "1.2.9", 1},
    {"~1.2.3", "1.3.0", 0},
    {"~1.2.3", "1.2.2", 0},
    {"~1.2", "1.2.0", 1},
    {"~1", "1.9.9", 1},
    {"~1", "2.0.0", 0},
    {"~0.2.3", "0.2.5", 1},
    {"~0.2.3", "0.3.0", 0},
    {"~>3.2.1", "3.2.2", 1},
    /* caret */
    {"^22.12", "22.12.0", 1},
    {"^22.12", "22.11.9", 0},
    {"^22.12", "22.99.0", 1},
    {"^22.12", "23.0.0", 0},
    {"^1.2.3", "1.9.9", 1},
    {"^0.2.3", "0.2.9", 1},
    {"^0.2.3", "0.3.0", 0},
    {"^0.0.3", "0.0.3", 1},
    {"^0.0.3", "0.0.4", 0},
    {"^0.0.x", "0.0.9", 1},
    {"^0.0.x", "0.1.0", 0},
    {"^0.0", "0.0.5", 1},
    {"^0.x", "0.9.0", 1},
    {"^0.x", "1.0.0", 0},
    {"^0.1", "0.1.5", 1},
    {"^0.1", "0.2.0", 0},
    {"^1.x", "1.5.0", 1},
    /* hyphen */
    {"1.2.3 - 2.3.4", "2.3.4", 1},
    {"1.2.3 - 2.3.4", "2.3.5", 0},
    {"1.2.3 - 2.3.4", "1.2.2", 0},
    {"1.2 - 2.3", "2.3.9", 1},
    {"1.2 - 2.3", "2.4.0", 0},
    {"1.2 - 2", "2.9.9", 1},
    {"1.2 - 2", "1.1.9", 0},
    /* unions */
    {"20.x || 22.x", "22.4.0", 1},
    {"20.x || 22.x", "21.4.0", 0},
    {"^18||^20", "20.1.0", 1},
    {"<16 || >=22 <23", "22.5.0", 1},
    {"<16 || >=22 <23", "23.0.0", 0},
    /* prereleases are excluded unless the range names one of the same version */
    {">=20", "21.0.0-rc.1", 0},
    {"*", "1.0.0-alpha", 0},
    {"^1.2.3", "1.3.0-beta", 0},
    {">=1.2.3-beta.1", "1.2.3-beta.2", 1},
    {">=1.2.3-beta.1", "1.2.4-beta.2", 0},
    {">=1.2.3-beta.1", "1.2.4", 1},
    {">1.2.3-alpha.3", "1.2.3-alpha.7", 1},
    {">1.2.3-alpha.3", "3.4.5-alpha.9", 0},
    {"<2.0.0", "2.0.0-rc.1", 0},
    {"^1.2.3-rc.1", "1.2.3-rc.2", 1},
    {"1.2.3-rc.1", "1.2.3", 0},
    /* nothing */
    {">*", "1.0.0", 0},
    {"<*", "0.0.0", 0},
};

static void test_range_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = kiln_semver_satisfies(cases[i].range, cases[i].version);
        if (r != cases[i].expect)
            fail_msg("\"%s\" vs %s: got %d, expected %d", cases[i].range, cases[i].version, r,
                     cases[i].expect);
    }
}

static void test_bad_ranges(void **state)
{
    static const char *const bad[] = {"abc",    ">=x.1z", "1.2.3.4",     "^",     "1 - ",
                                      "01.2.3", "1.2.3-", ">=20 && <22", "lts/*", "node"};
    kiln_error_t err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (kiln_semver_range_check(bad[i], &err) != -1)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(strstr(err.msg, "version range"));
        assert_int_equal(kiln_semver_satisfies(bad[i], "1.0.0"), -1);
    }
    assert_int_equal(kiln_semver_range_check(">=20 <22 || ^24.1", &err), 0);
    assert_int_equal(kiln_semver_satisfies("*", "1.2"), -1); /* not a version */
}

static void test_precedence(void **state)
{
    static const char *const order[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                        "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                                        "1.0.0-rc.1",  "1.0.0",         "1.0.1",
                                        "1.10.0",      "2.0.0",         "10.0.0"};
    kiln_semver_t a, b;
    kiln_error_t err = {0};

    (void)state;
    for (size_t i = 0; i + 1 < sizeof(order) / sizeof(order[0]); i++) {
        assert_int_equal(kiln_semver_parse(order[i], &a, &err), 0);
        assert_int_equal(kiln_semver_parse(order[i + 1], &b, &err), 0);
        if (kiln_semver_cmp(&a, &b) >= 0 || kiln_semver_cmp(&b, &a) <= 0)
            fail_msg("%s should be below %s", order[i], order[i + 1]);
    }
    assert_int_equal(kiln_semver_parse("1.2.3+build.5", &a, &err), 0);
    assert_int_equal(kiln_semver_parse("1.2.3", &b, &err), 0);
    assert_int_equal(kiln_semver_cmp(&a, &b), 0); /* build metadata ignored */
    assert_int_equal(kiln_semver_parse("1.2", &a, &err), -1);
    assert_non_null(strstr(err.msg, "\"1.2\" is not a version"));
}

static void test_max_satisfying(void **state)
{
    static const char *const v[] = {"18.20.8",     "20.1.0",  "20.19.2", "20.9.0",
                                    "22.12.0",     "22.9.0",  "22.21.1", "24.0.0",
                                    "26.0.0-rc.1", "26.12.1", "junk"};
    size_t n = sizeof(v) / sizeof(v[0]);
    kiln_error_t err = {0};
    const char *r;

    (void)state;
    assert_string_equal(kiln_semver_max_satisfying(">=20", v, n, &err), "26.12.1");
    assert_string_equal(kiln_semver_max_satisfying("20", v, n, &err), "20.19.2");
    assert_string_equal(kiln_semver_max_satisfying("^22.12", v, n, &err), "22.21.1");
    assert_string_equal(kiln_semver_max_satisfying("20.x || 22.x", v, n, &err), "22.21.1");
    assert_string_equal(kiln_semver_max_satisfying("<20", v, n, &err), "18.20.8");
    assert_string_equal(kiln_semver_max_satisfying("*", v, n, &err), "26.12.1");
    assert_string_equal(kiln_semver_max_satisfying("~20.9", v, n, &err), "20.9.0");
    assert_null(kiln_semver_max_satisfying("21", v, n, &err));
    r = kiln_semver_max_satisfying("huh", v, n, &err);
    assert_null(r);
    assert_non_null(strstr(err.msg, "\"huh\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_table),
        cmocka_unit_test(test_bad_ranges),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_max_satisfying),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
