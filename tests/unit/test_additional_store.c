/* oci/additional_store: the ChainID (OCI image spec), the checks made when a store is opened
 * (marker, owner and mode of the store and its fixed directories, an empty empty/), and a chain
 * used only when its metadata names exactly the layers asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/additional_store.h"
#include "tmpdir.h"

static void digest_of(const char *s, kiln_digest_t *d)
{
    kiln_digest_bytes(s, strlen(s), d);
}

/* A store of one chain (layers l, n) made by hand as kiln store add writes it. */
static char *make_store(const kiln_astore_layer_t *l, size_t n, kiln_digest_t *id)
{
    char *dir = tmpdir_make("astore");
    char ds[KILN_DIGEST_STR_MAX], ds2[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *meta = NULL, *tree = NULL, *body = NULL;

    assert_non_null(dir);
    assert_int_equal(chmod(dir, 0755), 0);
    kiln_astore_chain_id(l, n, id);
    assert_int_equal(tmpdir_put(dir, KILN_ASTORE_MARKER, KILN_ASTORE_VERSION, 0644), 0);
    tree = kiln_xasprintf("%s/chains/%s", dir, id->hex);
    assert_int_equal(kiln_fs_mkdir_p(tree, 0755, NULL), 0);
    meta = kiln_xasprintf("chains/%s.json", id->hex);
    body =
        kiln_xasprintf("{\"chain_id\":\"%s\",\"layers\":[{\"digest\":\"%s\",\"diff_id\":\"%s\"}]}",
                       kiln_digest_str(id, ds), kiln_digest_str(&l[0].digest, ds2),
                       kiln_digest_str(&l[0].diff_id, (char[KILN_DIGEST_STR_MAX]){0}));
    assert_int_equal(tmpdir_put(dir, meta, body, 0644), 0);
    {
        _cleanup_free_ char *b = kiln_xasprintf("%s/blobs/sha256", dir);
        _cleanup_free_ char *e = kiln_xasprintf("%s/empty", dir);
        assert_int_equal(kiln_fs_mkdir_p(b, 0755, NULL), 0);
        assert_int_equal(kiln_fs_mkdir_p(e, 0755, NULL), 0);
        _cleanup_free_ char *bl = kiln_xasprintf("%s/blobs", dir);
        _cleanup_free_ char *ch = kiln_xasprintf("%s/chains", dir);
        assert_int_equal(chmod(bl, 0755), 0);
        assert_int_equal(chmod(ch, 0755), 0);
    }
    return dir;
}

static void test_chain_id(void **state)
{
    kiln_astore_layer_t l[2];
    kiln_digest_t id, want;
    char a[KILN_DIGEST_STR_MAX], b[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *s = NULL;
    (void)state;

    digest_of("one", &l[0].diff_id);
    digest_of("two", &l[1].diff_id);
    kiln_astore_chain_id(l, 1, &id);
    assert_true(kiln_digest_equal(&id, &l[0].diff_id));
    s = kiln_xasprintf("%s %s", kiln_digest_str(&l[0].diff_id, a),
                       kiln_digest_str(&l[1].diff_id, b));
    digest_of(s, &want);
    kiln_astore_chain_id(l, 2, &id);
    assert_true(kiln_digest_equal(&id, &want));
}

static void test_open_checks(void **state)
{
    kiln_astore_layer_t l[1];
    kiln_digest_t id;
    kiln_astore_t *a = NULL;
    kiln_error_t err = {0};
    _cleanup_free_ char *dir = NULL, *junk = NULL;
    (void)state;

    digest_of("blob", &l[0].digest);
    digest_of("diff", &l[0].diff_id);
    dir = make_store(l, 1, &id);
    assert_int_equal(kiln_astore_open(dir, &a, &err), 0);
    kiln_astore_free(a);

    assert_int_equal(kiln_astore_open("relative", &a, &err), -1);
    assert_non_null(strstr(err.msg, "must be an absolute path"));

    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(kiln_astore_open(dir, &a, &err), -1);
    assert_non_null(strstr(err.msg, "is writable by others (mode 0777)"));
    assert_non_null(strstr(err.msg, "chmod go-w"));
    assert_int_equal(chmod(dir, 0755), 0);

    junk = kiln_xasprintf("%s/empty", dir);
    assert_int_equal(chmod(junk, 0775), 0);
    assert_int_equal(kiln_astore_open(dir, &a, &err), -1);
    assert_non_null(strstr(err.msg, "empty is writable by its group"));
    assert_int_equal(chmod(junk, 0755), 0);
    assert_int_equal(tmpdir_put(dir, "empty/x", "x", 0644), 0);
    assert_int_equal(kiln_astore_open(dir, &a, &err), -1);
    assert_non_null(strstr(err.msg, "is not empty (it holds x)"));
    assert_int_equal(tmpdir_put(dir, KILN_ASTORE_MARKER, "kiln additional store v9\n", 0644), 0);
    assert_int_equal(kiln_astore_open(dir, &a, &err), -1);
    assert_non_null(strstr(err.msg, "not a store of this kiln's version"));
    kiln_fs_rm_rf(dir, NULL);
}

static void test_chain_lookup(void **state)
{
    kiln_astore_layer_t l[2], other[1];
    kiln_digest_t id;
    kiln_astore_t *a = NULL;
    kiln_error_t err = {0};
    _cleanup_free_ char *dir = NULL, *meta = NULL;
    char *path = NULL;
    (void)state;

    digest_of("blob", &l[0].digest);
    digest_of("diff", &l[0].diff_id);
    digest_of("blob2", &l[1].digest);
    digest_of("diff2", &l[1].diff_id);
    dir = make_store(l, 1, &id);
    assert_int_equal(kiln_astore_open(dir, &a, &err), 0);
    assert_int_equal(kiln_astore_chain(a, l, 1, &path, &err), 1);
    assert_non_null(strstr(path, id.hex));
    free(path);
    /* a chain the store does not hold */
    assert_int_equal(kiln_astore_chain(a, l, 2, &path, &err), 0);
    /* the same diff_id from another blob: the entry is not used */
    other[0] = l[0];
    digest_of("another blob", &other[0].digest);
    assert_int_equal(kiln_astore_chain(a, other, 1, &path, &err), -1);
    assert_non_null(strstr(err.msg, "was unpacked from another blob"));
    /* metadata naming another diff_id under the chain's name */
    meta = kiln_xasprintf("chains/%s.json", id.hex);
    assert_int_equal(tmpdir_put(dir, meta,
                                "{\"chain_id\":\"sha256:"
                                "0000000000000000000000000000000000000000000000000000000000000000"
                                "\",\"layers\":[]}",
                                0644),
                     0);
    assert_int_equal(kiln_astore_chain(a, l, 1, &path, &err), -1);
    assert_non_null(strstr(err.msg, "names another chain_id"));
    /* metadata writable by others */
    {
        _cleanup_free_ char *mp = kiln_xasprintf("%s/%s", dir, meta);
        assert_int_equal(chmod(mp, 0666), 0);
    }
    assert_int_equal(kiln_astore_chain(a, l, 1, &path, &err), -1);
    assert_non_null(strstr(err.msg, "is writable by others"));
    kiln_astore_free(a);
    kiln_fs_rm_rf(dir, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_id),
        cmocka_unit_test(test_open_checks),
        cmocka_unit_test(test_chain_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
