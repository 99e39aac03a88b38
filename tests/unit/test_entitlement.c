/* Unit tests: build entitlements (engine/entitlement.c): names and lists,
 * and the RUN flags that need them, refused naming the line and the entitlement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/entitlement.h"
#include "handlers/dockerfile/parser.h"

static void test_parse(void **state)
{
    unsigned set = 0;
    kiln_error_t err = {0};
    (void)state;

    assert_int_equal(kiln_entitlement_parse("network.host", &set, &err), 0);
    assert_int_equal(set, KILN_ENTITLEMENT_NETWORK_HOST);
    assert_int_equal(kiln_entitlement_parse("security.insecure,network.host", &set, &err), 0);
    assert_int_equal(set, KILN_ENTITLEMENT_NETWORK_HOST | KILN_ENTITLEMENT_SECURITY_INSECURE);
    set = 0;
    assert_int_equal(kiln_entitlement_parse("network.host,device", &set, &err), -1);
    assert_non_null(strstr(err.msg, "'device'"));
    assert_int_equal(set, 0); /* nothing added on failure */
    assert_int_equal(kiln_entitlement_parse(",", &set, &err), -1);
    assert_string_equal(kiln_entitlement_name(KILN_ENTITLEMENT_SECURITY_INSECURE),
                        "security.insecure");
    assert_null(kiln_entitlement_name(0));
    assert_null(kiln_entitlement_name(3));
}

/* Checks text as a Dockerfile with `granted`; returns the result, err filled. */
static int check(const char *text, unsigned granted, bool chroot, kiln_error_t *err)
{
    kiln_dockerfile_t *df = NULL;
    int r;

    assert_int_equal(kiln_dockerfile_parse(text, strlen(text), "Dockerfile", &df, err), 0);
    r = kiln_entitlement_check_dockerfile(df, granted, chroot, err);
    kiln_dockerfile_free(df);
    return r;
}

static void test_run_flags(void **state)
{
    kiln_error_t err = {0};
    const unsigned all = KILN_ENTITLEMENT_NETWORK_HOST | KILN_ENTITLEMENT_SECURITY_INSECURE;
    (void)state;

    assert_int_equal(check("FROM scratch\nRUN --network=none --security=sandbox true\n"
                           "RUN --network=default true\n",
                           0, false, &err),
                     0);
    assert_int_equal(check("FROM scratch\nRUN true\n\nRUN --network=host true\n", 0, false, &err),
                     -1);
    assert_string_equal(err.msg, "Dockerfile:4: RUN --network=host needs the network.host "
                                 "entitlement: start the build with --allow network.host");
    assert_int_equal(check("FROM scratch\nRUN --network=host true\n",
                           KILN_ENTITLEMENT_SECURITY_INSECURE, false, &err),
                     -1);
    assert_int_equal(check("FROM scratch\nRUN --network=host true\n", KILN_ENTITLEMENT_NETWORK_HOST,
                           false, &err),
                     0);
    assert_int_equal(check("FROM scratch AS a\nRUN x\nFROM a\nRUN --security=insecure true\n",
                           KILN_ENTITLEMENT_NETWORK_HOST, false, &err),
                     -1);
    assert_non_null(strstr(err.msg, "Dockerfile:4: RUN --security=insecure needs the "
                                    "security.insecure entitlement"));
    assert_int_equal(check("FROM scratch\nRUN --security=insecure true\n", all, false, &err), 0);
    assert_int_equal(check("FROM scratch\nRUN --security=insecure true\n", all, true, &err), -1);
    assert_non_null(strstr(err.msg, "needs user namespaces"));
    assert_int_equal(check("FROM scratch\nRUN --network=bridge true\n", all, false, &err), -1);
    assert_non_null(strstr(err.msg, "Dockerfile:2: RUN --network=bridge: unknown network mode"));
    assert_int_equal(check("FROM scratch\nRUN --security=privileged true\n", all, false, &err), -1);
    assert_non_null(strstr(err.msg, "unknown security mode"));
    /* an ONBUILD RUN is checked in the build that runs it */
    assert_int_equal(check("FROM scratch\nONBUILD RUN --network=host true\n", 0, false, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_run_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
