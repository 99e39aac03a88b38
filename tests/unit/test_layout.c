/* Unit tests for oci/layout and oci/docker_archive: writing several images
 * into one layout, resolving tags, importing back, archives. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/docker_archive.h"
#include "oci/image.h"
#include "oci/layout.h"
#include "oci/store.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

/* Puts a one-layer image labelled `label` and returns its manifest descriptor. */
static void put_image(kiln_store_t *s, const char *label, kiln_descriptor_t *md)
{
    kiln_error_t err = {0};
    kiln_descriptor_t cfg = {0}, layer = {0};
    json_t *config = kiln_image_config_new("amd64", "linux");
    json_t *m;
    _cleanup_free_ char *content = kiln_xasprintf("layer of %s", label);

    kiln_image_config_set_label(config, "name", label);
    assert_int_equal(kiln_store_put_bytes(s, content, strlen(content), &layer.digest, &err), 0);
    snprintf(layer.media_type, sizeof(layer.media_type), "%s", KILN_MT_OCI_LAYER);
    layer.size = strlen(content);
    kiln_image_config_add_diff_id(config, &layer.digest);
    assert_int_equal(kiln_image_store_put(s, config, KILN_MT_OCI_CONFIG, &cfg, &err), 0);
    m = kiln_image_manifest_new(&cfg, &layer, 1, NULL);
    assert_int_equal(kiln_image_store_put(s, m, KILN_MT_OCI_MANIFEST, md, &err), 0);
    json_decref(m);
    json_decref(config);
}

static const char *label_of(const kiln_layout_image_t *img)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(img->config, "config"), "Labels"), "name"));
}

static void test_tag_of(void **state)
{
    char *t;
    t = kiln_layout_tag_of("localhost:5000/a/b:v1");
    assert_string_equal(t, "v1");
    free(t);
    t = kiln_layout_tag_of("localhost:5000/a/b");
    assert_string_equal(t, "latest");
    free(t);
    assert_null(kiln_layout_tag_of("a/b@sha256:00"));
}

static void test_parse_ref(void **state)
{
    char *dir = NULL, *tag = NULL;
    assert_int_equal(kiln_layout_parse_ref("oci:/tmp/x:v1", &dir, &tag, NULL), 0);
    assert_string_equal(dir, "/tmp/x");
    assert_string_equal(tag, "v1");
    free(dir);
    free(tag);
    assert_int_equal(kiln_layout_parse_ref("oci:rel/dir", &dir, &tag, NULL), 0);
    assert_string_equal(dir, "rel/dir");
    assert_null(tag);
    free(dir);
    assert_int_equal(kiln_layout_parse_ref("oci:", &dir, &tag, NULL), -1);
}

static void test_layout_multi(void **state)
{
    _cleanup_free_ char *root = NULL;
    _cleanup_free_ char *root2 = NULL;
    _cleanup_free_ char *dir = NULL;
    kiln_store_t *s = NULL, *s2 = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t a = {0}, b = {0}, c = {0};
    kiln_layout_image_t *img = NULL;

    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-layout.", &root, NULL), 0);
    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-layout2.", &root2, NULL), 0);
    dir = kiln_xasprintf("%s/out", root);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    put_image(s, "a", &a);
    put_image(s, "b", &b);
    put_image(s, "c", &c);
    assert_int_equal(kiln_layout_write(s, dir, 0, &a, "example.com/app:one", &err), 0);
    assert_int_equal(kiln_layout_write(s, dir, 0, &b, "example.com/app:two", &err), 0);
    /* same tag again: replaces image a */
    assert_int_equal(kiln_layout_write(s, dir, 0, &c, "example.com/app:one", &err), 0);

    /* an untagged image written twice is listed once */
    {
        _cleanup_free_ char *d2 = kiln_xasprintf("%s/untagged", root);
        assert_int_equal(kiln_layout_write(s, d2, 0, &b, NULL, &err), 0);
        assert_int_equal(kiln_layout_write(s, d2, 0, &b, NULL, &err), 0);
        assert_int_equal(kiln_layout_resolve(d2, NULL, &img, &err), 0);
        assert_null(img->name);
        kiln_layout_image_free(img);
    }
    assert_int_equal(kiln_layout_resolve(dir, NULL, &img, &err), -1); /* ambiguous */
    assert_non_null(strstr(err.msg, "two"));
    assert_int_equal(kiln_layout_resolve(dir, "one", &img, &err), 0);
    assert_string_equal(label_of(img), "c");
    assert_string_equal(img->name, "one");
    kiln_layout_image_free(img);
    assert_int_equal(kiln_layout_resolve(dir, "example.com/app:two", &img, &err), 0);
    assert_string_equal(label_of(img), "b");
    assert_true(kiln_digest_equal(&img->manifest_desc.digest, &b.digest));

    /* import into a fresh store */
    assert_int_equal(kiln_store_open(root2, &s2, &err), 0);
    assert_int_equal(kiln_layout_import(s2, img, &err), 0);
    assert_int_equal(kiln_store_has(s2, &b.digest, NULL), 1);
    assert_int_equal(kiln_store_has(s2, &img->manifest->layers[0].digest, NULL), 1);
    kiln_layout_image_free(img);
    assert_int_equal(kiln_layout_resolve(dir, "three", &img, &err), -1);
    assert_non_null(strstr(err.msg, "no image tagged 'three'"));

    /* a layer whose content does not match its digest: import fails and
     * leaves neither the blob nor a temp file in the store */
    {
        kiln_store_t *s3 = NULL;
        _cleanup_free_ char *root3 = NULL;
        _cleanup_free_ char *lp = NULL;
        _cleanup_free_ char *tmpd = NULL;
        kiln_digest_t ld;
        assert_int_equal(kiln_layout_resolve(dir, "two", &img, &err), 0);
        ld = img->manifest->layers[0].digest;
        lp = kiln_xasprintf("%s/blobs/sha256/%s", dir, ld.hex);
        unlink(lp);
        assert_int_equal(kiln_fs_write_file_atomic(lp, "layer of X", 10, 0644, &err), 0);
        assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-layout3.", &root3, NULL), 0);
        assert_int_equal(kiln_store_open(root3, &s3, &err), 0);
        assert_int_equal(kiln_layout_import(s3, img, &err), -1);
        assert_non_null(strstr(err.msg, "does not match"));
        assert_int_equal(kiln_store_has(s3, &ld, NULL), 0);
        tmpd = kiln_xasprintf("%s/tmp", root3);
        {
            _cleanup_closedir_ DIR *d = opendir(tmpd);
            struct dirent *de;
            int n = 0;
            while ((de = readdir(d)) != NULL)
                n += de->d_name[0] != '.';
            assert_int_equal(n, 0);
        }
        kiln_layout_image_free(img);
        kiln_store_close(s3);
        kiln_fs_rm_rf(root3, NULL);
    }

    /* a corrupted blob is detected when resolving */
    {
        _cleanup_free_ char *p = kiln_xasprintf("%s/blobs/sha256/%s", dir, b.digest.hex);
        unlink(p);
        assert_int_equal(kiln_fs_write_file_atomic(p, "{}", 2, 0644, &err), 0);
        assert_int_equal(kiln_layout_resolve(dir, "two", &img, &err), -1);
        assert_non_null(strstr(err.msg, "does not match"));
    }
    kiln_store_close(s);
    kiln_store_close(s2);
    kiln_fs_rm_rf(root, NULL);
    kiln_fs_rm_rf(root2, NULL);
}

static void test_archives(void **state)
{
    _cleanup_free_ char *root = NULL;
    _cleanup_free_ char *tarp = NULL;
    _cleanup_free_ char *dockp = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t a = {0};
    kiln_docker_archive_image_t *img = NULL;
    const char *tags[] = {"example.com/app:one", NULL};
    struct stat st;

    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-arch.", &root, NULL), 0);
    tarp = kiln_xasprintf("%s/image.tar", root);
    dockp = kiln_xasprintf("%s/docker.tar", root);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    put_image(s, "a", &a);
    assert_int_equal(kiln_layout_write(s, tarp, 0, &a, "example.com/app:one", &err), 0);
    assert_int_equal(stat(tarp, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* the OCI archive resolves like a directory and imports in one pass */
    {
        kiln_layout_image_t *li = NULL;
        kiln_store_t *s2 = NULL;
        _cleanup_free_ char *root2 = NULL;
        assert_int_equal(kiln_layout_resolve(tarp, "one", &li, &err), 0);
        assert_true(li->archive);
        assert_true(kiln_digest_equal(&li->manifest_desc.digest, &a.digest));
        assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-arch2.", &root2, NULL), 0);
        assert_int_equal(kiln_store_open(root2, &s2, &err), 0);
        assert_int_equal(kiln_layout_import(s2, li, &err), 0);
        assert_int_equal(kiln_store_has(s2, &a.digest, NULL), 1);
        assert_int_equal(kiln_store_has(s2, &li->manifest->layers[0].digest, NULL), 1);
        assert_int_equal(kiln_store_has(s2, &li->manifest->config.digest, NULL), 1);
        kiln_layout_image_free(li);
        kiln_store_close(s2);
        kiln_fs_rm_rf(root2, NULL);
        assert_int_equal(kiln_layout_resolve(tarp, "two", &li, &err), -1);
    }
    assert_int_equal(kiln_docker_archive_write(s, dockp, &a, tags, &err), 0);
    assert_int_equal(kiln_docker_archive_read(dockp, 0, NULL, &img, &err), 0);
    assert_string_equal(json_string_value(json_array_get(img->repo_tags, 0)), tags[0]);
    /* the re-synthesised manifest is the original one (same canonical bytes) */
    assert_true(kiln_digest_equal(&img->manifest_desc.digest, &a.digest));
    kiln_docker_archive_image_free(img);
    assert_int_equal(kiln_docker_archive_read(dockp, 1, NULL, &img, &err), -1);
    assert_int_equal(kiln_docker_archive_read(tarp, 0, NULL, &img, &err),
                     -1); /* no manifest.json */
    assert_non_null(strstr(err.msg, "manifest.json"));
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

/* Store and layout on different filesystems: blobs are copied (and verified),
 * not hardlinked. Runs only when /dev/shm is another filesystem than /tmp. */
/* A store under /tmp with image "x" (*a) and a layout directory on /dev/shm (another
 * filesystem: blobs are copied, not linked). Returns 0 when /dev/shm is not another
 * writable filesystem here (the caller returns: the test does not apply). */
static int xdev_setup(char **root, char **dir, kiln_store_t **s, kiln_descriptor_t *a)
{
    kiln_error_t err = {0};
    struct stat t1, t2;

    if (stat("/tmp", &t1) < 0 || stat("/dev/shm", &t2) < 0 || t1.st_dev == t2.st_dev ||
        access("/dev/shm", W_OK) < 0)
        return 0;
    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-xdev.", root, NULL), 0);
    assert_int_equal(kiln_fs_mkdtemp("/dev/shm", "kiln-test-xdev.", dir, NULL), 0);
    assert_int_equal(kiln_store_open(*root, s, &err), 0);
    put_image(*s, "x", a);
    return 1;
}

static void test_layout_cross_device(void **state)
{
    _cleanup_free_ char *root = NULL;
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *blob = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t a = {0};
    kiln_layout_image_t *img = NULL;
    struct stat st;

    /* (cmocka's skip() reads as "not ok" to the TAP runner: return instead) */
    if (!xdev_setup(&root, &dir, &s, &a))
        return;
    assert_int_equal(kiln_layout_write(s, dir, 0, &a, "x:1", &err), 0);
    blob = kiln_xasprintf("%s/blobs/sha256/%s", dir, a.digest.hex);
    assert_int_equal(stat(blob, &st), 0);
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(kiln_layout_resolve(dir, "1", &img, &err), 0);
    kiln_layout_image_free(img);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
    kiln_fs_rm_rf(dir, NULL);
}

/* A fresh layout whose writes fail part way (RLIMIT_FSIZE stands in for a full disk: the
 * blob copies to another filesystem fail) leaves nothing: no header, index or blobs. */
static void test_layout_write_fails_clean(void **state)
{
    _cleanup_free_ char *root = NULL;
    _cleanup_free_ char *dir = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t a = {0};
    struct rlimit old, small = {.rlim_cur = 12, .rlim_max = RLIM_INFINITY};
    struct dirent *de;
    DIR *d;
    int entries = 0;

    if (!xdev_setup(&root, &dir, &s, &a))
        return;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    assert_int_equal(kiln_layout_write(s, dir, 0, &a, "x:1", &err), -1);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_non_null(strstr(err.msg, dir));
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            entries++;
    closedir(d);
    assert_int_equal(entries, 0);
    /* with room again the same write succeeds */
    assert_int_equal(kiln_layout_write(s, dir, 0, &a, "x:1", &err), 0);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
    kiln_fs_rm_rf(dir, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_of),
        cmocka_unit_test(test_parse_ref),
        cmocka_unit_test(test_layout_multi),
        cmocka_unit_test(test_archives),
        cmocka_unit_test(test_layout_cross_device),
        cmocka_unit_test(test_layout_write_fails_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
