/* Unit tests for the server's configuration: request limits and sizes, the request and
 * connection bounds, and the build policy (egress addresses, source policy, entitlements and
 * isolation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/entitlement.h"
#include "src/server/cli.h"
#include "src/server/config.h"
#include "src/server/limits.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

/* Sizes, and the request limits against the server's defaults and maxima. */
/* A request's "limits" as the job codec reads it (job/limits), normalized (memory "2g"). */
static int limits_norm(json_t *v, json_t **out, kiln_error_t *err)
{
    kiln_job_limits_t l;

    if (kiln_job_limits_from_json(v, "limits", 1, &l, err) < 0)
        return -1;
    *out = kiln_job_limits_to_json(&l);
    return 0;
}

static void test_limits(void **state)
{
    kiln_limits_policy_t p = {0};
    kiln_error_t err = {0};
    json_t *norm = NULL, *stored;
    uint64_t v = 0;
    char buf[32];

    assert_int_equal(kiln_size_parse("512m", &v, &err), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(kiln_size_parse("2GiB", &v, &err), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(kiln_size_parse("100", &v, &err), 0);
    assert_int_equal(v, 100);
    assert_int_equal(kiln_size_parse("1x", &v, &err), -1);
    assert_int_equal(kiln_size_parse("-1m", &v, &err), -1);
    assert_int_equal(kiln_size_parse("99999999999999999999t", &v, &err), -1);
    kiln_size_format(512ull << 20, buf, sizeof(buf));
    assert_string_equal(buf, "512m");
    kiln_size_format(1000, buf, sizeof(buf));
    assert_string_equal(buf, "1000");

    assert_int_equal(kiln_limits_opt(&p, KILN_LIMITS_OPT_BASE, "1g", &err), 1);
    assert_int_equal(kiln_limits_opt(&p, KILN_LIMITS_OPT_BASE + 1, "0", &err), -1);
    assert_non_null(strstr(err.msg, "--build-pids"));
    assert_int_equal(kiln_limits_opt(&p, 'x', "1", &err), 0);
    assert_int_equal(kiln_limits_policy_finish(&p, &err), 0);
    assert_int_equal(p.max.memory, 1ull << 30);

    stored = json_object();
    assert_int_equal(kiln_limits_apply(stored, &p, &err), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(stored, "limits"), "memory")), "1g");
    json_t *req = json_pack("{s:s,s:i}", "memory", "2g", "pids", 10);
    assert_int_equal(limits_norm(req, &norm, &err), 0);
    json_object_set_new(stored, "limits", norm);
    assert_int_equal(kiln_limits_apply(stored, &p, &err), -1);
    assert_non_null(strstr(err.msg, "'limits.memory'"));
    json_decref(req);
    json_decref(stored);
}

/* Writes text to a temp file and loads it as the server config. */
static int load_config(const char *text, kiln_config_t **c, kiln_error_t *err)
{
    char path[] = "/tmp/kiln-config-XXXXXX";
    int fd = mkstemp(path), r;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    r = kiln_config_load(path, c, err);
    unlink(path);
    return r;
}

/* The request and connection bounds: defaults when absent, the given values, and a bad one
 * refused at load naming its key and range. */
static void test_config_bounds(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    (void)state;

    assert_int_equal(load_config("{}", &c, &err), 0);
    assert_int_equal(c->bounds.max_webhook_bytes, 5LL << 20);
    assert_int_equal(c->bounds.connection_timeout, 30);
    assert_int_equal(c->bounds.max_connections, 4096);
    assert_int_equal(c->bounds.max_connections_per_address, 128);
    assert_int_equal(c->bounds.max_context_unpacked_bytes, 2LL << 30);
    assert_int_equal(c->bounds.max_context_entries, 100000);
    assert_int_equal(c->bounds.build_log_retention, 0);
    assert_int_equal(c->bounds.access_log_retention, 0);
    kiln_config_free(c);
    c = NULL;
    assert_int_equal(load_config("{\"max_webhook_bytes\": 65536, \"max_context_entries\": 7, "
                                 "\"build_log_retention\": 86400, \"access_log_retention\": 60}",
                                 &c, &err),
                     0);
    assert_int_equal(c->bounds.max_webhook_bytes, 65536);
    assert_int_equal(c->bounds.max_context_entries, 7);
    assert_int_equal(c->bounds.build_log_retention, 86400);
    assert_int_equal(c->bounds.access_log_retention, 60);
    kiln_config_free(c);
    c = NULL;
    assert_int_equal(load_config("{\"max_connections\": \"many\"}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "max_connections: must be an integer from 16 to 65536"));
    assert_int_equal(load_config("{\"connection_timeout\": 0}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "connection_timeout"));
    assert_int_equal(load_config("{\"access_log_retention\": -1}", &c, &err), -1);
    assert_non_null(
        strstr(err.msg, "access_log_retention: must be an integer from 0 to 315360000"));
    assert_null(c);
}

/* policy.allow_addresses: CIDRs with an optional port, checked at load (a bad entry named);
 * --allow-address options for the build. */
static void test_config_policy(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    char **opts = NULL;
    unsigned n = 0;
    json_t *list;
    (void)state;

    assert_int_equal(load_config("{\"policy\": {\"allow_addresses\": [\"10.8.0.0/16:3128\", "
                                 "\"[fd00::1]:443\"]}}",
                                 &c, &err),
                     0);
    list = kiln_config_allow_addresses(c);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_array_get(list, 0)), "10.8.0.0/16:3128");
    kiln_config_free(c);
    c = NULL;

    /* a bad entry fails at startup naming it and its place */
    assert_int_equal(
        load_config("{\"policy\": {\"allow_addresses\": [\"10.0.0.0/8\", \"10.0.0.0/33\"]}}", &c,
                    &err),
        -1);
    assert_null(c);
    assert_non_null(strstr(err.msg, "policy.allow_addresses[1]"));
    assert_non_null(strstr(err.msg, "10.0.0.0/33"));
    assert_int_equal(load_config("{\"policy\": {\"allow_addresses\": \"10.0.0.0/8\"}}", &c, &err),
                     -1);
    assert_non_null(strstr(err.msg, "must be an array"));
    assert_int_equal(load_config("{\"policy\": [1]}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy: must be an object"));

    /* no policy: an empty allowlist */
    assert_int_equal(load_config("{}", &c, &err), 0);
    assert_null(kiln_config_allow_addresses(c));
    kiln_config_free(c);

    /* the option a build child gets */
    assert_int_equal(kiln_server_allow_address(&opts, &n, "127.0.0.1:8080", &err), 0);
    assert_int_equal(kiln_server_allow_address(&opts, &n, "localhost", &err), -1);
    assert_non_null(strstr(err.msg, "localhost"));
    assert_int_equal(n, 1);
    assert_string_equal(opts[0], "--allow-address=127.0.0.1:8080");
    assert_null(opts[1]);
    kiln_strv_free(opts);
}

/* policy.allow_http_git / policy.oci_dirs: checked at load, turned into build
 * options (a default image directory when oci_dirs is absent); which options
 * also go to `kiln checkout`. */
static void test_config_source_policy(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    char **opts = NULL;
    unsigned n = 0;
    (void)state;

    assert_int_equal(load_config("{\"policy\": {\"allow_http_git\": true, "
                                 "\"oci_dirs\": [\"/srv/images\", \"/opt/layouts\"]}}",
                                 &c, &err),
                     0);
    kiln_server_policy_options(c->policy, &opts, &n);
    assert_int_equal(n, 3);
    assert_string_equal(opts[0], "--allow-http-git");
    assert_string_equal(opts[1], "--oci-dir=/srv/images");
    assert_string_equal(opts[2], "--oci-dir=/opt/layouts");
    kiln_strv_free(opts);
    opts = NULL;
    n = 0;
    kiln_config_free(c);
    c = NULL;

    unsetenv("KILN_IMAGES_DIR");
    kiln_server_policy_options(NULL, &opts, &n);
    assert_int_equal(n, 1);
    assert_string_equal(opts[0], "--oci-dir=" KILN_SERVER_DEFAULT_OCI_DIR);
    kiln_strv_free(opts);

    assert_int_equal(load_config("{\"policy\": {\"allow_http_git\": \"yes\"}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.allow_http_git"));
    assert_int_equal(load_config("{\"policy\": {\"oci_dirs\": [\"/ok\", \"rel/dir\"]}}", &c, &err),
                     -1);
    assert_non_null(strstr(err.msg, "policy.oci_dirs[1]"));
    assert_int_equal(load_config("{\"policy\": {\"oci_dirs\": \"/x\"}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.oci_dirs"));
    assert_null(c);

    /* policy.additional_stores: the operator's read-only image stores for every build */
    assert_int_equal(load_config("{\"policy\": {\"additional_stores\": [\"/srv/store\"], "
                                 "\"oci_dirs\": [\"/srv/images\"]}}",
                                 &c, &err),
                     0);
    opts = NULL;
    n = 0;
    kiln_server_policy_options(c->policy, &opts, &n);
    assert_int_equal(n, 2);
    assert_string_equal(opts[0], "--additional-store=/srv/store");
    assert_string_equal(opts[1], "--oci-dir=/srv/images");
    kiln_strv_free(opts);
    /* the stores alone */
    opts = NULL;
    n = 0;
    kiln_server_store_options(c->policy, &opts, &n);
    assert_int_equal(n, 1);
    assert_string_equal(opts[0], "--additional-store=/srv/store");
    kiln_strv_free(opts);
    kiln_config_free(c);
    c = NULL;

    /* policy.allow_addresses: an --allow-address= for each (kiln serve and kiln worker
     * --config alike) */
    assert_int_equal(load_config("{\"policy\": {\"allow_addresses\": [\"10.8.0.0/16\", "
                                 "\"127.0.0.1:3128\"], \"oci_dirs\": [\"/srv/images\"]}}",
                                 &c, &err),
                     0);
    opts = NULL;
    n = 0;
    kiln_server_policy_options(c->policy, &opts, &n);
    assert_int_equal(n, 3);
    assert_string_equal(opts[0], "--allow-address=10.8.0.0/16");
    assert_string_equal(opts[1], "--allow-address=127.0.0.1:3128");
    assert_string_equal(opts[2], "--oci-dir=/srv/images");
    kiln_strv_free(opts);
    kiln_config_free(c);
    c = NULL;
    assert_int_equal(
        load_config("{\"policy\": {\"additional_stores\": [\"/ok\", \"store\"]}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.additional_stores[1]: must be an absolute path"));
    assert_int_equal(load_config("{\"policy\": {\"additional_stores\": \"/x\"}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.additional_stores: must be an array"));
    assert_null(c);
}

/* "policy": entitlements and isolation; chroot only through the policy. */
static void test_config_confinement(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    char **opts = NULL;
    unsigned n = 0;
    (void)state;

    assert_int_equal(load_config("{\"policy\": {\"entitlements\": [\"network.host\"], "
                                 "\"isolation\": \"chroot\"}}",
                                 &c, &err),
                     0);
    assert_int_equal(kiln_config_entitlements(c), KILN_ENTITLEMENT_NETWORK_HOST);
    assert_string_equal(kiln_config_isolation(c), "chroot");
    kiln_config_free(c);
    assert_int_equal(load_config("{}", &c, &err), 0);
    assert_int_equal(kiln_config_entitlements(c), 0);
    assert_string_equal(kiln_config_isolation(c), "sandbox");
    kiln_config_free(c);
    c = NULL;
    assert_int_equal(load_config("{\"policy\": {\"entitlements\": [\"all\"]}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.entitlements[0]"));
    assert_int_equal(load_config("{\"policy\": {\"isolation\": \"none\"}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.isolation"));
    assert_null(c);

    /* an operator's --build-option cannot pick chroot; the policy can */
    kiln_server_strv_add(&opts, &n, "--isolation=sandbox");
    assert_int_equal(kiln_server_isolation(&opts, &n, "sandbox", "the policy", &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kiln_server_isolation(&opts, &n, "chroot", "the policy", &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(opts[1], "--isolation=chroot");
    kiln_strv_free(opts);
    opts = NULL;
    n = 0;
    kiln_server_strv_add(&opts, &n, "--isolation=chroot");
    assert_int_equal(kiln_server_isolation(&opts, &n, NULL, "the policy", &err), -1);
    assert_non_null(strstr(err.msg, "--isolation=chroot"));
    assert_non_null(strstr(err.msg, "real root"));
    assert_non_null(strstr(err.msg, "the policy"));
    kiln_strv_free(opts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_config_policy),
        cmocka_unit_test(test_config_bounds),
        cmocka_unit_test(test_config_confinement),
        cmocka_unit_test(test_config_source_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
