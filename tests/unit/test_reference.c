/* Unit tests for oci/reference: docker's normalisation rules and clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/reference.h"
#include "utils/cleanup.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void expect_ref(const char *in, const char *reg, const char *repo, const char *tag,
                       const char *digest)
{
    kiln_reference_t r = {0};
    kiln_error_t err = {0};
    if (kiln_reference_parse(in, &r, &err) < 0)
        fail_msg("%s: %s", in, err.msg);
    assert_string_equal(r.registry, reg);
    assert_string_equal(r.repository, repo);
    if (tag)
        assert_string_equal(r.tag, tag);
    else
        assert_null(r.tag);
    if (digest)
        assert_string_equal(r.digest, digest);
    else
        assert_null(r.digest);
    kiln_reference_free(&r);
}

static void expect_bad(const char *in, const char *msg_part)
{
    kiln_reference_t r = {0};
    kiln_error_t err = {0};
    assert_int_equal(kiln_reference_parse(in, &r, &err), -1);
    assert_null(r.registry);
    if (strstr(err.msg, msg_part) == NULL)
        fail_msg("%s: error '%s' lacks '%s'", in, err.msg, msg_part);
}

static void test_normalise(void **state)
{
    expect_ref("alpine", "docker.io", "library/alpine", "latest", NULL);
    expect_ref("alpine:3.19", "docker.io", "library/alpine", "3.19", NULL);
    expect_ref("docker.io/alpine", "docker.io", "library/alpine", "latest", NULL);
    expect_ref("index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", NULL);
    expect_ref("bitnami/redis:7", "docker.io", "bitnami/redis", "7", NULL);
    expect_ref("ghcr.io/org/app/sub:v1", "ghcr.io", "org/app/sub", "v1", NULL);
    expect_ref("localhost/app", "localhost", "app", "latest", NULL);
    expect_ref("localhost:5000/app:x", "localhost:5000", "app", "x", NULL);
    expect_ref("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", "latest", NULL);
    expect_ref("[::1]:5000/a", "[::1]:5000", "a", "latest", NULL);
    expect_ref("ns/a.b-c__d", "docker.io", "ns/a.b-c__d", "latest", NULL);
    expect_ref("app@sha256:" D64, "docker.io", "library/app", NULL, "sha256:" D64);
    expect_ref("r.io/app:v2@sha256:" D64, "r.io", "app", "v2", "sha256:" D64);
}

static void test_format(void **state)
{
    kiln_reference_t r = {0};
    _cleanup_free_ char *s = NULL;
    _cleanup_free_ char *n = NULL;
    assert_int_equal(kiln_reference_parse("node:22", &r, NULL), 0);
    s = kiln_reference_format(&r);
    n = kiln_reference_name(&r);
    assert_string_equal(s, "docker.io/library/node:22");
    assert_string_equal(n, "docker.io/library/node");
    assert_string_equal(kiln_reference_endpoint(r.registry), "registry-1.docker.io");
    assert_string_equal(kiln_reference_endpoint("r.io:1"), "r.io:1");
    kiln_reference_free(&r);
}

static void test_invalid(void **state)
{
    char longname[400];
    expect_bad("", "empty");
    expect_bad("Alpine", "lowercase");
    expect_bad("alpine:", "bad tag");
    expect_bad("alpine:-x", "bad tag");
    expect_bad("alpine@sha256:abc", "bad digest");
    expect_bad("alpine@md5:" D64, "bad digest");
    expect_bad("a//b", "empty path component");
    expect_bad("a/b/", "empty path component");
    expect_bad("a..b", "separator");
    expect_bad("a_-b", "separator");
    expect_bad("-a", "start and end");
    expect_bad("host:99x/a", "bad registry");
    expect_bad("a b", "invalid character");
    expect_bad(":tag", "no repository");
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect_bad(longname, "longer than");
}

static void test_validators(void **state)
{
    assert_true(kiln_reference_digest_valid("sha256:" D64));
    assert_false(kiln_reference_digest_valid("sha256:" D64 "0"));
    assert_false(kiln_reference_digest_valid("SHA256:" D64));
    assert_true(kiln_reference_tag_valid("_a.b-C"));
    assert_false(kiln_reference_tag_valid(".a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_validators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
