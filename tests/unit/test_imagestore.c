/* oci/imagestore: the index codec (names, digests, caps, order), names as people write them,
 * and the index under a store: tag, untag all or nothing, prune keeping named images, and
 * writers racing in two processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/image.h"
#include "oci/imagesize.h"
#include "oci/imagestore.h"
#include "oci/store.h"
#include "tmpdir.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static int parses(const char *text)
{
    kiln_imagestore_index_t ix = {0};
    kiln_error_t err = {0};
    int r = kiln_imagestore_index_parse(text, strlen(text), &ix, &err);
    kiln_imagestore_index_clear(&ix);
    return r;
}

static void test_roundtrip(void **state)
{
    const char *text = "{\"version\":1,\"images\":{"
                       "\"ghcr.io/o/app:2\":{\"digest\":\"" D2 "\",\"size\":5,\"tagged\":7},"
                       "\"ghcr.io/o/pulled:1\":{\"digest\":\"" D2 "\",\"tagged\":8},"
                       "\"docker.io/library/app:latest\":{\"digest\":\"" D1
                       "\",\"size\":1234,\"created\":\"2026-12-03T10:00:00Z\",\"tagged\":9}}}";
    kiln_imagestore_index_t ix = {0}, again = {0};
    kiln_error_t err = {0};
    _cleanup_free_ char *dump = NULL, *dump2 = NULL;
    char ds[KILN_DIGEST_STR_MAX];

    (void)state;
    assert_int_equal(kiln_imagestore_index_parse(text, strlen(text), &ix, &err), 0);
    assert_int_equal(ix.n, 3);
    /* sorted by name whatever the file's order */
    assert_string_equal(ix.entries[0].name, "docker.io/library/app:latest");
    assert_string_equal(ix.entries[1].name, "ghcr.io/o/app:2");
    /* no size: not measured yet (a pulled image), and kept so */
    assert_int_equal(ix.entries[1].size_unknown, 0);
    assert_int_equal(ix.entries[2].size_unknown, 1);
    assert_string_equal(kiln_digest_str(&ix.entries[0].digest, ds), D1);
    assert_int_equal(ix.entries[0].size, 1234);
    assert_string_equal(ix.entries[0].created, "2026-12-03T10:00:00Z");
    assert_null(ix.entries[1].created);
    assert_int_equal(ix.entries[1].tagged, 7);
    dump = kiln_imagestore_index_dump(&ix);
    assert_int_equal(kiln_imagestore_index_parse(dump, strlen(dump), &again, &err), 0);
    dump2 = kiln_imagestore_index_dump(&again);
    assert_string_equal(dump, dump2);
    assert_int_equal(again.entries[2].size_unknown, 1);
    assert_int_equal(again.entries[1].size, 5);
    kiln_imagestore_index_clear(&ix);
    kiln_imagestore_index_clear(&again);
}

static void test_refused(void **state)
{
    char *big;
    size_t n = KILN_IMAGESTORE_INDEX_MAX + 16;

    (void)state;
    assert_int_equal(parses("{\"version\":1,\"images\":{}}"), 0);
    assert_true(parses("{\"version\":2,\"images\":{}}") < 0);
    assert_true(parses("{\"version\":1,\"images\":[]}") < 0);
    assert_true(parses("[]") < 0);
    assert_true(parses("{\"version\":1,\"images\":{") < 0);
    /* a key not in its full form, a digest reference, a bad name */
    assert_true(parses("{\"version\":1,\"images\":{\"app:latest\":{\"digest\":\"" D1 "\"}}}") < 0);
    assert_true(parses("{\"version\":1,\"images\":{\"docker.io/library/app@" D2
                       "\":{\"digest\":\"" D1 "\"}}}") < 0);
    assert_true(parses("{\"version\":1,\"images\":{\"docker.io/library/A:1\":{\"digest\":\"" D1
                       "\"}}}") < 0);
    assert_true(parses("{\"version\":1,\"images\":{\"docker.io/library/../x:1\":{\"digest\":\"" D1
                       "\"}}}") < 0);
    /* entries: a digest that is not one, a size that is not a count, a created that is text */
    assert_true(
        parses("{\"version\":1,\"images\":{\"docker.io/library/a:1\":{\"digest\":\"md5:x\"}}}") <
        0);
    assert_true(parses("{\"version\":1,\"images\":{\"docker.io/library/a:1\":{}}}") < 0);
    assert_true(parses("{\"version\":1,\"images\":{\"docker.io/library/a:1\":{\"digest\":\"" D1
                       "\",\"size\":-1}}}") < 0);
    assert_true(parses("{\"version\":1,\"images\":{\"docker.io/library/a:1\":{\"digest\":\"" D1
                       "\",\"created\":\"<script>\"}}}") < 0);
    assert_true(parses("{\"version\":1,\"images\":{\"docker.io/library/a:1\":\"" D1 "\"}}") < 0);
    /* past the size cap: refused as a whole */
    big = kiln_xmalloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"version\":1,\"images\":{}}", 25);
    big[n] = '\0';
    assert_true(parses(big) < 0);
    free(big);
}

static void test_set_remove(void **state)
{
    kiln_imagestore_index_t ix = {0};
    kiln_error_t err = {0};
    kiln_imagestore_entry_t e = {0};
    const char *names[] = {"docker.io/library/b:1", "docker.io/library/a:1", "ghcr.io/x/c:1",
                           "docker.io/library/a:0"};

    (void)state;
    assert_int_equal(kiln_digest_parse(D1, &e.digest, &err), 0);
    for (size_t i = 0; i < 4; i++) {
        e.name = (char *)names[i];
        assert_int_equal(kiln_imagestore_index_set(&ix, &e, &err), 0);
    }
    assert_int_equal(ix.n, 4);
    for (size_t i = 1; i < ix.n; i++)
        assert_true(strcmp(ix.entries[i - 1].name, ix.entries[i].name) < 0);
    /* replacing keeps one entry and takes the new digest */
    assert_int_equal(kiln_digest_parse(D2, &e.digest, &err), 0);
    e.name = (char *)"docker.io/library/b:1";
    assert_int_equal(kiln_imagestore_index_set(&ix, &e, &err), 0);
    assert_int_equal(ix.n, 4);
    assert_memory_equal(kiln_imagestore_index_find(&ix, "docker.io/library/b:1")->digest.hex,
                        D2 + 7, 64);
    assert_int_equal(kiln_imagestore_index_remove(&ix, "docker.io/library/a:1"), 1);
    assert_int_equal(kiln_imagestore_index_remove(&ix, "docker.io/library/a:1"), 0);
    assert_null(kiln_imagestore_index_find(&ix, "docker.io/library/a:1"));
    assert_non_null(kiln_imagestore_index_find(&ix, "docker.io/library/a:0"));
    assert_int_equal(ix.n, 3);
    kiln_imagestore_index_clear(&ix);
}

static void test_names(void **state)
{
    kiln_error_t err = {0};
    char *full = NULL, *repo = NULL, *tag = NULL;

    (void)state;
    assert_int_equal(kiln_imagestore_normalize("app", &full, &err), 0);
    assert_string_equal(full, "docker.io/library/app:latest");
    kiln_imagestore_familiar(full, &repo, &tag);
    assert_string_equal(repo, "app");
    assert_string_equal(tag, "latest");
    free(full), free(repo), free(tag);
    assert_int_equal(kiln_imagestore_normalize("127.0.0.1:5000/ns/app:v1.2", &full, &err), 0);
    assert_string_equal(full, "127.0.0.1:5000/ns/app:v1.2");
    kiln_imagestore_familiar(full, &repo, &tag);
    assert_string_equal(repo, "127.0.0.1:5000/ns/app");
    assert_string_equal(tag, "v1.2");
    free(full), free(repo), free(tag);
    assert_int_equal(kiln_imagestore_normalize("me/app:2", &full, &err), 0);
    kiln_imagestore_familiar(full, &repo, &tag);
    assert_string_equal(repo, "me/app");
    free(full), free(repo), free(tag);
    assert_true(kiln_imagestore_normalize("app@" D1, &full, &err) < 0);
    assert_non_null(strstr(err.msg, "a digest reference cannot name an image"));
    assert_true(kiln_imagestore_normalize("App:1", &full, &err) < 0);
    assert_true(kiln_imagestore_normalize("", &full, &err) < 0);
}

/* A one-layer image put into the store; its manifest digest in *d. */
static void put_image(kiln_store_t *s, const char *content, kiln_digest_t *d)
{
    kiln_error_t err = {0};
    kiln_descriptor_t cfg = {0}, layer = {0}, man = {0};
    json_t *config =
        json_pack("{s:s,s:s,s:s,s:{s:s,s:[s]}}", "architecture", "amd64", "os", "linux", "created",
                  "2026-12-03T10:00:00Z", "rootfs", "type", "layers", "diff_ids", "sha256:x");
    json_t *m;
    _cleanup_free_ char *ctext = NULL;

    assert_int_equal(kiln_store_put_bytes(s, content, strlen(content), &layer.digest, &err), 0);
    layer.size = strlen(content);
    snprintf(layer.media_type, sizeof(layer.media_type), "%s", KILN_MT_OCI_LAYER);
    json_array_set_new(json_object_get(json_object_get(config, "rootfs"), "diff_ids"), 0,
                       json_string(kiln_digest_str(&layer.digest, (char[80]){0})));
    ctext = json_dumps(config, JSON_COMPACT);
    assert_int_equal(kiln_store_put_bytes(s, ctext, strlen(ctext), &cfg.digest, &err), 0);
    cfg.size = strlen(ctext);
    snprintf(cfg.media_type, sizeof(cfg.media_type), "%s", KILN_MT_OCI_CONFIG);
    m = kiln_image_manifest_new(&cfg, &layer, 1, NULL);
    assert_int_equal(kiln_image_store_put(s, m, KILN_MT_OCI_MANIFEST, &man, &err), 0);
    *d = man.digest;
    json_decref(m);
    json_decref(config);
}

static void test_store(void **state)
{
    _cleanup_free_ char *root = tmpdir_make("imagestore");
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t d1, d2, got[2];
    kiln_imagestore_entry_t e = {0};
    kiln_store_prune_stats_t st;
    const char *two[] = {"app:1", "ghcr.io/o/app:1"};
    const char *bad[] = {"app:1", "nope"};

    (void)state;
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    put_image(s, "layer one", &d1);
    put_image(s, "layer two", &d2);
    assert_int_equal(kiln_imagestore_tag(s, two, 2, &d1, &err), 0);
    assert_int_equal(kiln_imagestore_lookup(s, "app:1", &e, &err), 1);
    assert_true(kiln_digest_equal(&e.digest, &d1));
    assert_string_equal(e.created, "2026-12-03T10:00:00Z");
    kiln_imagestore_entry_clear(&e);
    assert_int_equal(kiln_imagestore_lookup(s, "app:2", &e, &err), 0);
    /* an unknown name: nothing removed, the message names it */
    assert_true(kiln_imagestore_untag(s, bad, 2, NULL, &err) < 0);
    assert_string_equal(err.msg, "no image named docker.io/library/nope:latest in kiln's store "
                                 "(kiln images lists them)");
    assert_int_equal(kiln_imagestore_lookup(s, "app:1", &e, &err), 1);
    kiln_imagestore_entry_clear(&e);
    /* a manifest that is not in the store names nothing */
    assert_true(kiln_imagestore_tag(s, two, 1, &(kiln_digest_t){.hex = "33"}, &err) < 0);
    kiln_store_close(s);

    /* prune keeps the named image and removes the unnamed one */
    assert_int_equal(kiln_store_prune(root, 1, 0, &st, &err), 0);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_has(s, &d1, NULL), 1);
    assert_int_equal(kiln_store_has(s, &d2, NULL), 0);
    assert_int_equal(kiln_imagestore_untag(s, two, 2, got, &err), 0);
    assert_true(kiln_digest_equal(&got[0], &d1) && kiln_digest_equal(&got[1], &d1));
    /* untagged: the blobs stay until prune */
    assert_int_equal(kiln_store_has(s, &d1, NULL), 1);
    kiln_store_close(s);
    assert_int_equal(kiln_store_prune(root, 1, 0, &st, &err), 0);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_has(s, &d1, NULL), 0);
    kiln_store_close(s);

    /* a damaged index stops prune instead of taking its images for garbage */
    assert_int_equal(tmpdir_put(root, "images/index.json", "{\"version\":1,\"images\":{", 0600), 0);
    assert_true(kiln_store_prune(root, 1, 0, &st, &err) < 0);
    assert_non_null(strstr(err.msg, "images/index.json"));
    kiln_fs_rm_rf(root, NULL);
}

/* A layer's uncompressed size noted by its writer is what kiln_image_size counts: the blob
 * (here no valid gzip at all) is never decompressed to measure it. */
static void test_size_note(void **state)
{
    _cleanup_free_ char *root = tmpdir_make("imagesize");
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t layer = {0};
    kiln_image_size_t sz = {0};
    const char *blob = "\x1f\x8b not a gzip stream";

    (void)state;
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_put_bytes(s, blob, strlen(blob), &layer.digest, &err), 0);
    layer.size = strlen(blob);
    /* naming a pulled image: nothing decompressed, the layer counted as not measured */
    assert_int_equal(kiln_image_size_noted(s, NULL, NULL, &layer, 1, &sz, &err), 0);
    assert_int_equal(sz.unmemoized, 1);
    assert_int_equal(sz.uncompressed, 0);
    assert_int_equal(kiln_image_size(s, NULL, NULL, &layer, 1, &sz, &err), -1);
    assert_non_null(strstr(err.msg, "measuring layer sha256:"));
    kiln_image_size_note(s, &layer.digest, 12345);
    _cleanup_free_ char *path = kiln_xasprintf("%s/blobs/sha256/%s", root, layer.digest.hex);
    char v[32];
    if (getxattr(path, "user.kiln.usize", v, sizeof(v)) < 0) {
        kiln_store_close(s);
        kiln_fs_rm_rf(root, NULL);
        skip(); /* no user xattrs on /tmp here: the size is measured instead */
    }
    assert_int_equal(kiln_image_size(s, NULL, NULL, &layer, 1, &sz, &err), 0);
    assert_int_equal(sz.uncompressed, 12345);
    assert_int_equal(kiln_image_size_noted(s, NULL, NULL, &layer, 1, &sz, &err), 0);
    assert_int_equal(sz.uncompressed, 12345);
    assert_int_equal(sz.unmemoized, 0);
    assert_int_equal(sz.compressed, strlen(blob));
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

/* Two processes tagging 40 names each at once: every name is in the index after. */
static void test_concurrent(void **state)
{
    _cleanup_free_ char *root = tmpdir_make("imagestore-race");
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_imagestore_index_t ix = {0};
    kiln_digest_t d;
    pid_t kids[2];

    (void)state;
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    put_image(s, "race", &d);
    kiln_store_close(s);
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            kiln_store_t *cs = NULL;
            if (kiln_store_open(root, &cs, NULL) < 0)
                _exit(2);
            for (int i = 0; i < 40; i++) {
                char name[64];
                const char *one = name;
                snprintf(name, sizeof(name), "p%d/app:%d", k, i);
                if (kiln_imagestore_tag(cs, &one, 1, &d, NULL) < 0)
                    _exit(1);
            }
            kiln_store_close(cs);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status = 0;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(kiln_imagestore_load(root, &ix, &err), 0);
    assert_int_equal(ix.n, 80);
    kiln_imagestore_index_clear(&ix);
    kiln_fs_rm_rf(root, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),  cmocka_unit_test(test_refused),
        cmocka_unit_test(test_set_remove), cmocka_unit_test(test_names),
        cmocka_unit_test(test_store),      cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_size_note),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
