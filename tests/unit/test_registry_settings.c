/* Unit tests for oci/registry_settings: the settings a lazy blob's fetch reaches its registry
 * with, made from a client and applied to a new one; no credentials kept, nothing that would
 * send the fetch to another host than the recording build's accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/registry_settings.h"
#include "utils/cleanup.h"

static kiln_registry_t *client(const char *const *mirrors, const char *const *insecure,
                               const char *ca)
{
    kiln_registry_opts_t o;
    kiln_registry_t *r = NULL;
    kiln_error_t err = {0};
    kiln_registry_opts_init(&o);
    o.mirrors = mirrors;
    o.insecure = insecure;
    o.ca_file = ca;
    if (kiln_registry_new(&o, &r, &err) < 0)
        fail_msg("%s", err.msg);
    return r;
}

/* The settings name only the source's mirrors, without userinfo; plain HTTP only for its
 * hosts; the CA absolute. */
static void test_for(void **state)
{
    const char *mirrors[] = {"docker.io=user:s3cret@mirror.example:5000/hub",
                             "quay.io=other.example", "127.0.0.1:9=127.0.0.1:7", NULL};
    const char *insecure[] = {"mirror.example:5000", "other.example", "127.0.0.1:7", NULL};
    kiln_registry_t *r = client(mirrors, insecure, "ca.pem");
    json_t *j = kiln_registry_settings_for(r, "docker.io");
    _cleanup_free_ char *text = NULL;
    (void)state;
    assert_non_null(j);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_null(strstr(text, "s3cret"));
    assert_null(strstr(text, "other.example"));
    assert_null(strstr(text, "127.0.0.1"));
    assert_non_null(strstr(text, "\"docker.io=mirror.example:5000/hub\""));
    assert_non_null(strstr(text, "\"insecure\":[\"mirror.example:5000\"]"));
    assert_string_equal(json_string_value(json_object_get(j, "ca")) +
                            strlen(json_string_value(json_object_get(j, "ca"))) - strlen("/ca.pem"),
                        "/ca.pem");
    assert_true(json_string_value(json_object_get(j, "ca"))[0] == '/');
    json_decref(j);
    kiln_registry_free(r);
    /* defaults only: nothing to record */
    r = client(NULL, NULL, NULL);
    assert_null(kiln_registry_settings_for(r, "docker.io"));
    kiln_registry_free(r);
}

static int apply(const char *text, const char *registry, kiln_registry_opts_t *o,
                 kiln_registry_settings_t *st, kiln_error_t *err)
{
    json_t *j = json_loads(text, 0, NULL);
    int r;
    assert_non_null(j);
    kiln_registry_opts_init(o);
    r = kiln_registry_settings_opts(j, registry, o, st, err);
    json_decref(j);
    return r;
}

/* Round trip, and what a record must not make the fetch do. */
static void test_opts(void **state)
{
    static const char *bad[] = {
        "{\"mirrors\":[\"quay.io=evil.example\"]}",          /* another source's mirror */
        "{\"mirrors\":[\"docker.io=http://evil.example\"]}", /* a scheme */
        "{\"mirrors\":[\"docker.io=u:p@evil.example\"]}",    /* userinfo */
        "{\"mirrors\":[\"docker.io=\"]}",                    /* nothing */
        "{\"mirrors\":[\"docker.io=a b\"]}",                 /* a space */
        "{\"insecure\":[\"evil.example\"]}",                 /* plain HTTP for another host */
        "{\"ca\":\"ca.pem\"}",                               /* a relative path */
        "{\"ca\":7}",                                        /* not a string */
        "{\"mirrors\":\"docker.io=m\"}",                     /* not a list */
        "{\"proxy\":\"evil.example\"}",                      /* an unknown key */
    };
    kiln_registry_opts_t o;
    kiln_registry_settings_t st = {0};
    kiln_error_t err = {0};
    (void)state;
    assert_int_equal(apply("{\"mirrors\":[\"docker.io=m.example/hub\"],\"insecure\":"
                           "[\"m.example\"],\"ca\":\"/etc/ca.pem\",\"certs\":\"/c\"}",
                           "docker.io", &o, &st, &err),
                     0);
    assert_string_equal(o.mirrors[0], "docker.io=m.example/hub");
    assert_null(o.mirrors[1]);
    assert_string_equal(o.insecure[0], "m.example");
    assert_string_equal(o.ca_file, "/etc/ca.pem");
    assert_string_equal(o.certs_dir, "/c");
    kiln_registry_settings_clear(&st);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_error_clear(&err);
        if (apply(bad[i], "docker.io", &o, &st, &err) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err.msg, "registry settings"));
        kiln_registry_settings_clear(&st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_for),
        cmocka_unit_test(test_opts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
