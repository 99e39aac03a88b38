/* Unit tests for oci/image: building, canonical serialization, parsing and
 * validation of manifests, indexes and configs (OCI and Docker v2s2). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/image.h"
#include "utils/cleanup.h"
#include "utils/json.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"

static void test_config_build_roundtrip(void **state)
{
    json_t *cfg = kiln_image_config_new("amd64", "linux");
    const char *ep[] = {"/bin/sh", "-c", NULL};
    const char *cmd[] = {"echo hi", NULL};
    kiln_error_t err = {0};
    kiln_digest_t d, d2, diff;
    _cleanup_free_ char *s1 = NULL;
    _cleanup_free_ char *s2 = NULL;
    size_t n1, n2;
    json_t *back = NULL;

    assert_int_equal(kiln_image_config_set_env(cfg, "PATH=/bin", &err), 0);
    assert_int_equal(kiln_image_config_set_env(cfg, "A=1", &err), 0);
    assert_int_equal(kiln_image_config_set_env(cfg, "PATH=/usr/bin:/bin", &err), 0);
    assert_int_equal(kiln_image_config_set_env(cfg, "novalue", &err), -1);
    kiln_image_config_set_entrypoint(cfg, ep);
    kiln_image_config_set_cmd(cfg, cmd);
    kiln_image_config_set_string(cfg, "WorkingDir", "/app");
    kiln_image_config_set_string(cfg, "User", "1000:1000");
    kiln_image_config_set_string(cfg, "StopSignal", "SIGTERM");
    assert_int_equal(kiln_image_config_add_port(cfg, "8080", &err), 0);
    assert_int_equal(kiln_image_config_add_port(cfg, "53/udp", &err), 0);
    assert_int_equal(kiln_image_config_add_port(cfg, "70000", &err), -1);
    assert_int_equal(kiln_image_config_add_port(cfg, "80/xyz", &err), -1);
    kiln_image_config_add_volume(cfg, "/data");
    kiln_image_config_set_label(cfg, "org.example", "ü");
    kiln_image_config_add_onbuild(cfg, "RUN true");
    kiln_image_config_set_shell(cfg, ep);
    kiln_image_config_set_healthcheck(cfg, json_pack("{s:[s,s]}", "Test", "CMD", "true"));
    kiln_digest_bytes("layer", 5, &diff);
    kiln_image_config_add_diff_id(cfg, &diff);
    assert_int_equal(kiln_image_config_set_created(cfg, 1700000000, &err), 0);
    assert_int_equal(kiln_image_config_add_history(cfg, 1700000000, "ADD x", NULL, 0, &err), 0);
    assert_int_equal(kiln_image_config_add_history(cfg, 0, "ENV A=1", "c", 1, &err), 0);

    assert_int_equal(kiln_image_serialize(cfg, &s1, &n1, &d, &err), 0);
    assert_non_null(strstr(s1, "\"created\":\"2023-11-14T22:13:20Z\""));
    assert_non_null(strstr(s1, "\"Env\":[\"PATH=/usr/bin:/bin\",\"A=1\"]"));
    assert_non_null(strstr(s1, "\"ExposedPorts\":{\"53/udp\":{},\"8080/tcp\":{}}"));
    assert_non_null(strstr(s1, "\"empty_layer\":true"));
    assert_null(strchr(s1, '\n')); /* compact */
    assert_int_equal(kiln_image_validate(KILN_MT_OCI_CONFIG, s1, n1, &err), 0);
    assert_int_equal(kiln_image_parse_config(s1, n1, &back, &err), 0);
    assert_int_equal(kiln_image_serialize(back, &s2, &n2, &d2, &err), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(s1, s2, n1); /* stable: same bytes, same digest */
    assert_true(kiln_digest_equal(&d, &d2));
    json_decref(back);
    json_decref(cfg);
}

static void test_manifest_roundtrip(void **state)
{
    kiln_descriptor_t cfg = {0}, layers[1] = {{{0}}};
    kiln_manifest_t *m = NULL;
    kiln_error_t err = {0};
    _cleanup_free_ char *s = NULL;
    size_t n;
    json_t *doc, *ann = json_pack("{s:s}", "k", "v");

    snprintf(cfg.media_type, sizeof(cfg.media_type), "%s", KILN_MT_OCI_CONFIG);
    kiln_digest_parse_hex(H1, &cfg.digest, NULL);
    cfg.size = 10;
    snprintf(layers[0].media_type, sizeof(layers[0].media_type), "%s", KILN_MT_OCI_LAYER_GZIP);
    kiln_digest_parse_hex(H2, &layers[0].digest, NULL);
    layers[0].size = 1ULL << 40;
    doc = kiln_image_manifest_new(&cfg, layers, 1, ann);
    assert_int_equal(kiln_image_serialize(doc, &s, &n, NULL, &err), 0);
    assert_int_equal(kiln_image_validate(KILN_MT_OCI_MANIFEST, s, n, &err), 0);
    assert_int_equal(kiln_image_parse_manifest(s, n, &m, &err), 0);
    assert_string_equal(m->media_type, KILN_MT_OCI_MANIFEST);
    assert_string_equal(m->config.digest.hex, H1);
    assert_int_equal(m->n_layers, 1);
    assert_int_equal(m->layers[0].size, 1ULL << 40);
    assert_string_equal(m->layers[0].media_type, KILN_MT_OCI_LAYER_GZIP);
    assert_int_equal(kiln_image_doc_kind(m->json), KILN_DOC_MANIFEST);
    kiln_manifest_free(m);
    json_decref(doc);
    json_decref(ann);
}

static void test_docker_manifest_and_list(void **state)
{
    const char *dm =
        "{\"schemaVersion\":2,\"mediaType\":\"" KILN_MT_DOCKER_MANIFEST "\","
        "\"config\":{\"mediaType\":\"" KILN_MT_DOCKER_CONFIG "\",\"size\":7,"
        "\"digest\":\"sha256:" H1 "\"},\"layers\":[{\"mediaType\":\"" KILN_MT_DOCKER_LAYER_GZIP
        "\",\"size\":9,\"digest\":\"sha256:" H2 "\"}]}";
    const char *dl =
        "{\"schemaVersion\":2,\"mediaType\":\"" KILN_MT_DOCKER_LIST "\","
        "\"manifests\":[{\"mediaType\":\"" KILN_MT_DOCKER_MANIFEST "\",\"size\":7,"
        "\"digest\":\"sha256:" H1 "\",\"platform\":{\"architecture\":\"arm64\","
        "\"os\":\"linux\",\"variant\":\"v8\"}},{\"mediaType\":\"" KILN_MT_DOCKER_MANIFEST
        "\",\"size\":8,\"digest\":\"sha256:" H2 "\",\"platform\":{\"architecture\":"
        "\"amd64\",\"os\":\"linux\"}}]}";
    kiln_manifest_t *m = NULL;
    kiln_index_t *ix = NULL;
    kiln_error_t err = {0};

    assert_int_equal(kiln_image_parse_manifest(dm, strlen(dm), &m, &err), 0);
    assert_string_equal(m->media_type, KILN_MT_DOCKER_MANIFEST);
    assert_string_equal(m->layers[0].media_type, KILN_MT_DOCKER_LAYER_GZIP);
    kiln_manifest_free(m);
    assert_int_equal(kiln_image_parse_index(dl, strlen(dl), &ix, &err), 0);
    assert_int_equal(ix->n_manifests, 2);
    assert_int_equal(kiln_image_index_select(ix, "linux", "amd64", NULL, &err), 1);
    assert_int_equal(kiln_image_index_select(ix, "linux", "arm64", "v8", &err), 0);
    assert_int_equal(kiln_image_index_select(ix, "linux", "s390x", NULL, &err), -1);
    assert_non_null(strstr(err.msg, "linux/arm64/v8"));
    kiln_index_free(ix);
}

static void test_rejects(void **state)
{
    static const struct {
        const char *doc;
        const char *msg;
    } bad[] = {
        {"{", "invalid JSON"},
        {"[]", "object"},
        {"{\"schemaVersion\":1,\"config\":{},\"layers\":[]}", "schemaVersion"},
        {"{\"schemaVersion\":2,\"layers\":[]}", "config"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"size\":1,\"digest\":"
         "\"sha256:" H1 "\"},\"layers\":[{\"mediaType\":\"a/b\",\"size\":-1,\"digest\":\"sha256:" H2
         "\"}]}",
         "layers[0]: size"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"size\":1,\"digest\":"
         "\"sha512:" H1 "\"},\"layers\":[]}",
         "config"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"ab\",\"size\":1,\"digest\":"
         "\"sha256:" H1 "\"},\"layers\":[]}",
         "media type"},
        {"{\"schemaVersion\":2,\"mediaType\":\"application/x\",\"config\":{\"mediaType\":\"a/b\","
         "\"size\":1,\"digest\":\"sha256:" H1 "\"},\"layers\":[]}",
         "mediaType"},
        {"{\"a\":1,\"a\":2}", "invalid JSON"},
    };
    kiln_manifest_t *m = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_error_t err = {0};
        assert_int_equal(kiln_image_parse_manifest(bad[i].doc, strlen(bad[i].doc), &m, &err), -1);
        if (strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
    }
    assert_null(m);
}

static void test_config_rejects(void **state)
{
    static const char *bad[] = {
        "{\"architecture\":\"amd64\",\"os\":\"linux\"}",
        "{\"architecture\":\"amd64\",\"os\":1,\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"x\",\"diff_ids\":[]}}",
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[\"sha256:abc\"]}}",
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]},\"history\":\"x\"}",
    };
    json_t *out = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_error_t err = {0};
        if (kiln_image_parse_config(bad[i], strlen(bad[i]), &out, &err) != -1)
            fail_msg("config case %zu accepted", i);
        assert_true(strncmp(err.msg, "config", 6) == 0 || strstr(err.msg, "config") != NULL);
    }
    assert_null(out);
}

/* What Docker tolerates is read (parse) but flagged by the spec validator. */
static void test_config_lenient_parse(void **state)
{
    static const char *docs[] = {
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]},\"config\":{\"Env\":[\"foo\"]}}",
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]},\"created\":\"yesterday\"}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        kiln_error_t err = {0};
        json_t *out = NULL;
        assert_int_equal(kiln_image_parse_config(docs[i], strlen(docs[i]), &out, &err), 0);
        json_decref(out);
        assert_int_equal(kiln_image_validate(KILN_MT_OCI_CONFIG, docs[i], strlen(docs[i]), &err),
                         -1);
    }
}

static void test_cap(void **state)
{
    size_t n = KILN_IMAGE_MANIFEST_MAX + 10;
    char *big = malloc(n);
    kiln_manifest_t *m = NULL;
    kiln_error_t err = {0};

    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    assert_int_equal(kiln_image_parse_manifest(big, n, &m, &err), -1);
    assert_int_equal(err.code, EFBIG);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_build_roundtrip),
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_docker_manifest_and_list),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_config_rejects),
        cmocka_unit_test(test_config_lenient_parse),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
