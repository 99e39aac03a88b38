/* sandbox/stepopts: docker's --ulimit and --add-host, parsed and refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "sandbox/stepopts.h"

static void test_ulimit(void **state)
{
    kiln_ulimit_t u;
    kiln_error_t err = {0};
    struct rlimit own;

    (void)state;
    assert_int_equal(kiln_ulimit_parse("nofile=100:200", &u, &err), 0);
    assert_int_equal(u.resource, RLIMIT_NOFILE);
    assert_int_equal(u.soft, 100);
    assert_int_equal(u.hard, 200);
    assert_string_equal(kiln_ulimit_name(u.resource), "nofile");
    assert_int_equal(kiln_ulimit_parse("core=0", &u, &err), 0);
    assert_int_equal(u.soft, 0);
    assert_int_equal(u.hard, 0);
    assert_int_equal(kiln_ulimit_parse("stack=8388608:unlimited", &u, &err) == 0,
                     getrlimit(RLIMIT_STACK, &own) == 0 && own.rlim_max == RLIM_INFINITY);
    assert_true(kiln_ulimit_parse("nofile", &u, &err) < 0);
    assert_true(kiln_ulimit_parse("bogus=1", &u, &err) < 0);
    assert_non_null(strstr(err.msg, "unknown limit 'bogus'"));
    assert_true(kiln_ulimit_parse("nofile=200:100", &u, &err) < 0);
    assert_string_equal(err.msg, "--ulimit nofile=200:100: the soft limit is above the hard limit");
    assert_true(kiln_ulimit_parse("nofile=x", &u, &err) < 0);
    assert_true(kiln_ulimit_parse("nofile=-5", &u, &err) < 0);
    assert_true(kiln_ulimit_parse("nofile=1:", &u, &err) < 0);
    assert_true(kiln_ulimit_parse("nofile=99999999999999999999999", &u, &err) < 0);
    /* above kiln's own hard limit: a step in a user namespace could not set it */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &own), 0);
    if (own.rlim_max != RLIM_INFINITY) {
        char spec[64];
        snprintf(spec, sizeof(spec), "nofile=1:%llu", (unsigned long long)own.rlim_max + 1);
        assert_true(kiln_ulimit_parse(spec, &u, &err) < 0);
        assert_non_null(strstr(err.msg, "the hard limit is above kiln's own"));
    }
}

static void test_add_host(void **state)
{
    char *line = NULL;
    kiln_error_t err = {0};

    (void)state;
    assert_int_equal(kiln_add_host_parse("db.internal:10.1.2.3", &line, &err), 0);
    assert_string_equal(line, "10.1.2.3\tdb.internal\n");
    free(line);
    assert_int_equal(kiln_add_host_parse("v6:[fd00::1]", &line, &err), 0);
    assert_string_equal(line, "fd00::1\tv6\n");
    free(line);
    assert_int_equal(kiln_add_host_parse("v6b:::1", &line, &err), 0);
    assert_string_equal(line, "::1\tv6b\n");
    free(line);
    assert_true(kiln_add_host_parse("nohost", &line, &err) < 0);
    assert_true(kiln_add_host_parse(":1.2.3.4", &line, &err) < 0);
    assert_true(kiln_add_host_parse("a b:1.2.3.4", &line, &err) < 0);
    assert_true(kiln_add_host_parse("x\n1.2.3.4 evil:1.2.3.4", &line, &err) < 0);
    assert_true(kiln_add_host_parse("x:1.2.3.4\nevil", &line, &err) < 0);
    assert_true(kiln_add_host_parse("x:host-gateway", &line, &err) < 0);
    assert_string_equal(err.msg, "--add-host x:host-gateway: 'host-gateway' is not an IP address");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ulimit),
                                       cmocka_unit_test(test_add_host)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
