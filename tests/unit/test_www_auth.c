/* Unit tests for oci/www_auth: the WWW-Authenticate forms registries send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/www_auth.h"

static void test_bearer(void **state)
{
    kiln_www_auth_t a = {0};
    kiln_error_t err = {0};
    assert_int_equal(
        kiln_www_auth_parse("Bearer realm=\"https://auth.docker.io/token\",service=\"registry."
                            "docker.io\",scope=\"repository:library/alpine:pull\"",
                            &a, &err),
        0);
    assert_int_equal(a.scheme, KILN_WWW_AUTH_BEARER);
    assert_string_equal(a.realm, "https://auth.docker.io/token");
    assert_string_equal(a.service, "registry.docker.io");
    assert_string_equal(a.scope, "repository:library/alpine:pull");
    assert_null(a.error);
    kiln_www_auth_free(&a);

    /* odd spacing, case, token values, escapes, an error param */
    assert_int_equal(kiln_www_auth_parse("  bearer  REALM = \"http://x/t\\\"q\" , service=svc ,"
                                         "error=\"insufficient_scope\"",
                                         &a, &err),
                     0);
    assert_string_equal(a.realm, "http://x/t\"q");
    assert_string_equal(a.service, "svc");
    assert_string_equal(a.error, "insufficient_scope");
    assert_null(a.scope);
    kiln_www_auth_free(&a);
}

static void test_basic_and_multi(void **state)
{
    kiln_www_auth_t a = {0};
    assert_int_equal(kiln_www_auth_parse("Basic realm=\"Registry Realm\"", &a, NULL), 0);
    assert_int_equal(a.scheme, KILN_WWW_AUTH_BASIC);
    assert_string_equal(a.realm, "Registry Realm");
    kiln_www_auth_free(&a);
    assert_int_equal(kiln_www_auth_parse("Basic", &a, NULL), 0);
    assert_int_equal(a.scheme, KILN_WWW_AUTH_BASIC);
    kiln_www_auth_free(&a);
    /* Bearer preferred over Basic; an unknown scheme with a token68 is skipped */
    assert_int_equal(kiln_www_auth_parse("Negotiate abc==, Basic realm=\"r\", Bearer "
                                         "realm=\"https://t\",service=\"s\"",
                                         &a, NULL),
                     0);
    assert_int_equal(a.scheme, KILN_WWW_AUTH_BEARER);
    assert_string_equal(a.realm, "https://t");
    kiln_www_auth_free(&a);
}

static void expect_bad(const char *in, const char *part)
{
    kiln_www_auth_t a = {0};
    kiln_error_t err = {0};
    assert_int_equal(kiln_www_auth_parse(in, &a, &err), -1);
    assert_int_equal(a.scheme, 0);
    if (strstr(err.msg, part) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", in, err.msg, part);
}

static void test_malformed(void **state)
{
    expect_bad("", "no Basic or Bearer");
    expect_bad("Bearer", "without realm");
    expect_bad("Bearer service=\"x\"", "without realm");
    expect_bad("Bearer realm=\"unterminated", "unterminated");
    expect_bad("Bearer realm=\"x\" service=\"y\"", "expected ','");
    expect_bad("=x", "unexpected");
    expect_bad("Digest realm=\"x\"", "no Basic or Bearer");
    expect_bad("Bearer realm=\"a\x01\"", "control character");
    expect_bad(NULL, "missing");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_basic_and_multi),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
