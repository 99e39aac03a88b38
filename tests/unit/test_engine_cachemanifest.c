/* Unit tests: the remote cache mount manifest (engine/cachemanifest.c): a scan lists a tree
 * sorted with hashes (special files left out), the codec round-trips byte for byte, the diff
 * reuses the ranges of unchanged content and lists only new content, eviction drops the least
 * recently used files, a restore recreates the tree from blobs, and hostile manifests (.., an
 * absolute path, a range outside its blob, a link in a path) are refused without anything
 * written outside the root. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/cachemanifest.h"
#include "tests/unit/tmpdir.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

static char *make_tree(void)
{
    char *d = tmpdir_make("cm");
    _cleanup_free_ char *sub = kiln_xasprintf("%s/a/b", d);
    _cleanup_free_ char *lnk = kiln_xasprintf("%s/link", d);
    _cleanup_free_ char *fifo = kiln_xasprintf("%s/fifo", d);
    assert_non_null(d);
    assert_int_equal(kiln_fs_mkdir_p(sub, 0755, NULL), 0);
    assert_int_equal(tmpdir_put(d, "a/b/one.txt", "one\n", 0644), 0);
    assert_int_equal(tmpdir_put(d, "a/two.bin", "two two\n", 0600), 0);
    assert_int_equal(tmpdir_put(d, "a-c", "", 0644), 0);
    assert_int_equal(symlink("a/b/one.txt", lnk), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    return d;
}

static void scan_path(const char *d, kiln_cm_t *m)
{
    _cleanup_close_ int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    kiln_error_t err = {0};
    assert_true(fd >= 0);
    assert_int_equal(kiln_cm_scan(fd, NULL, m, &err), 0);
}

static void test_scan_sorted(void **state)
{
    _cleanup_free_ char *d = make_tree();
    kiln_cm_t m = {0};
    kiln_digest_t one;
    (void)state;
    scan_path(d, &m);
    /* byte order, the fifo left out */
    assert_int_equal(m.n, 6);
    assert_string_equal(m.e[0].path, "a");
    assert_string_equal(m.e[1].path, "a-c");
    assert_string_equal(m.e[2].path, "a/b");
    assert_string_equal(m.e[3].path, "a/b/one.txt");
    assert_string_equal(m.e[4].path, "a/two.bin");
    assert_string_equal(m.e[5].path, "link");
    assert_int_equal(m.e[0].type, 'd');
    assert_int_equal(m.e[3].type, 'f');
    assert_int_equal(m.e[5].type, 'l');
    assert_string_equal(m.e[5].link, "a/b/one.txt");
    assert_int_equal(m.e[4].mode, 0600);
    kiln_digest_bytes("one\n", 4, &one);
    assert_true(kiln_digest_equal(&m.e[3].hash, &one));
    assert_int_equal(kiln_cm_total(&m), 4 + 8);
    kiln_cm_clear(&m);
    kiln_fs_rm_rf(d, NULL);
}

/* Gives every file of m a range of one blob made of all their contents (in order), as a
 * save would; returns the blob (malloc'ed, *len bytes). */
static char *pack_all(kiln_cm_t *m, const char *dir, size_t *len)
{
    char *blob = NULL;
    kiln_digest_t d;
    uint32_t bi;
    *len = 0;
    for (size_t i = 0; i < m->n; i++) {
        _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, m->e[i].path);
        _cleanup_free_ char *c = NULL;
        size_t n = 0;
        if (m->e[i].type != 'f' || m->e[i].size == 0)
            continue;
        assert_int_equal(kiln_fs_read_file(p, 1 << 20, &c, &n, NULL), 0);
        blob = kiln_xrealloc(blob, *len + n + 1);
        memcpy(blob + *len, c, n);
        *len += n;
    }
    kiln_digest_bytes(blob, *len, &d);
    bi = kiln_cm_add_blob(m, &d, *len);
    for (size_t i = 0, off = 0; i < m->n; i++)
        if (m->e[i].type == 'f' && m->e[i].size) {
            kiln_cm_add_seg(m, i, bi, off, m->e[i].size);
            off += m->e[i].size;
        }
    return blob;
}

static void test_codec_roundtrip(void **state)
{
    _cleanup_free_ char *d = make_tree();
    _cleanup_free_ char *blob = NULL;
    _cleanup_free_ char *a = NULL;
    _cleanup_free_ char *b = NULL;
    kiln_cm_t m = {0}, back = {0};
    kiln_error_t err = {0};
    size_t bl, al, bbl;
    (void)state;
    scan_path(d, &m);
    blob = pack_all(&m, d, &bl);
    a = kiln_cm_encode(&m, &al);
    assert_int_equal(kiln_cm_decode(a, al, 1 << 20, "test", &back, &err), 0);
    b = kiln_cm_encode(&back, &bbl);
    assert_int_equal(al, bbl);
    assert_memory_equal(a, b, al);
    assert_int_equal(back.nb, 1);
    assert_int_equal(back.e[4].n_segs, 1);
    assert_int_equal(back.e[4].segs[0].off, 4);
    /* the files total 12 bytes: a max-size of 10 refuses the manifest */
    kiln_cm_clear(&back);
    assert_int_equal(kiln_cm_decode(a, al, 10, "test", &back, &err), -1);
    assert_non_null(strstr(err.msg, "max-size"));
    kiln_cm_clear(&m);
    kiln_fs_rm_rf(d, NULL);
}

static void test_diff(void **state)
{
    _cleanup_free_ char *d = make_tree();
    _cleanup_free_ char *blob = NULL;
    _cleanup_free_ char *e1 = NULL;
    _cleanup_free_ char *e2 = NULL;
    _cleanup_free_ size_t *missing = NULL;
    _cleanup_free_ size_t *missing2 = NULL;
    kiln_cm_t old = {0}, now = {0}, same = {0};
    size_t bl, n_missing = 9, l1, l2;
    (void)state;
    scan_path(d, &old);
    blob = pack_all(&old, d, &bl);

    /* unchanged: nothing to upload, the same manifest bytes */
    scan_path(d, &same);
    kiln_cm_diff(&old, &same, &missing, &n_missing);
    assert_int_equal(n_missing, 0);
    e1 = kiln_cm_encode(&old, &l1);
    e2 = kiln_cm_encode(&same, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(e1, e2, l1);

    /* one file changed, one added: only they are missing; the unchanged one keeps its range */
    assert_int_equal(tmpdir_put(d, "a/two.bin", "changed\n", 0600), 0);
    assert_int_equal(tmpdir_put(d, "new.txt", "new\n", 0644), 0);
    scan_path(d, &now);
    kiln_cm_diff(&old, &now, &missing2, &n_missing);
    assert_int_equal(n_missing, 2);
    assert_string_equal(now.e[missing2[0]].path, "a/two.bin");
    assert_string_equal(now.e[missing2[1]].path, "new.txt");
    assert_int_equal(now.nb, 1);
    assert_int_equal(now.e[3].n_segs, 1); /* a/b/one.txt */
    assert_int_equal(now.e[3].segs[0].off, 0);
    assert_int_equal(now.e[4].n_segs, 0);
    kiln_cm_clear(&old);
    kiln_cm_clear(&now);
    kiln_cm_clear(&same);
    kiln_fs_rm_rf(d, NULL);
}

static void test_evict(void **state)
{
    kiln_cm_t m = {0};
    const char *names[] = {"old", "new", "mid"};
    int64_t used[] = {100, 300, 200};
    (void)state;
    for (int i = 0; i < 3; i++) {
        kiln_cm_entry_t x = {0};
        m.e = kiln_xrealloc(m.e, (m.n + 1) * sizeof(*m.e));
        x.path = kiln_xstrdup(names[i]);
        x.type = 'f';
        x.size = 10;
        x.used = used[i];
        m.e[m.n++] = x;
    }
    assert_int_equal(kiln_cm_evict(&m, 30), 0);
    assert_int_equal(kiln_cm_evict(&m, 25), 1); /* "old" goes */
    assert_int_equal(m.n, 2);
    assert_string_equal(m.e[0].path, "new");
    assert_string_equal(m.e[1].path, "mid");
    assert_int_equal(kiln_cm_evict(&m, 10), 1); /* then "mid" */
    assert_string_equal(m.e[0].path, "new");
    kiln_cm_clear(&m);
}

static const char *the_blob;
static size_t the_blob_len;

static int fetch_mem(void *ud, void *http, const kiln_cm_blob_t *b, char **buf, kiln_error_t *err)
{
    (void)ud;
    (void)http;
    (void)err;
    assert_int_equal(b->size, the_blob_len);
    *buf = kiln_xmalloc(the_blob_len + 1);
    memcpy(*buf, the_blob, the_blob_len);
    return 0;
}

static void test_restore(void **state)
{
    _cleanup_free_ char *d = make_tree();
    _cleanup_free_ char *out = tmpdir_make("cmout");
    _cleanup_free_ char *blob = NULL;
    _cleanup_free_ char *got = NULL;
    _cleanup_free_ char *p = NULL;
    _cleanup_close_ int rootfd = -1;
    kiln_cm_t m = {0};
    kiln_error_t err = {0};
    char lbuf[64];
    ssize_t ln;
    size_t bl, gl;
    struct stat sb;
    (void)state;
    scan_path(d, &m);
    blob = pack_all(&m, d, &bl);
    the_blob = blob;
    the_blob_len = bl;
    assert_int_equal(kiln_pathres_open_root(out, &rootfd, &err), 0);
    assert_int_equal(kiln_cm_restore(rootfd, &m, 2, fetch_mem, NULL, NULL, NULL, &err), 0);
    p = kiln_xasprintf("%s/a/two.bin", out);
    assert_int_equal(kiln_fs_read_file(p, 100, &got, &gl, NULL), 0);
    assert_int_equal(gl, 8);
    assert_memory_equal(got, "two two\n", 8);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    free(p);
    p = kiln_xasprintf("%s/link", out);
    ln = readlink(p, lbuf, sizeof(lbuf) - 1);
    assert_int_equal(ln, 11);
    lbuf[ln] = '\0';
    assert_string_equal(lbuf, "a/b/one.txt");
    {
        /* the save's scan reuses the hash of a file restored and not changed since (a marker
         * hash shows it was not read), and reads one that changed */
        kiln_cm_t again = {0}, again2 = {0};
        kiln_digest_t marker, real;
        kiln_digest_bytes("marker", 6, &marker);
        m.e[3].hash = marker; /* a/b/one.txt */
        m.e[4].hash = marker; /* a/two.bin */
        assert_true(m.e[4].ctime_ns != 0);
        scan_path(out, &again);
        assert_true(kiln_digest_equal(&again.e[4].hash, &m.e[4].hash) == 0); /* no known */
        kiln_cm_clear(&again);
        {
            _cleanup_close_ int fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            assert_int_equal(kiln_cm_scan(fd, &m, &again, &err), 0);
        }
        assert_true(kiln_digest_equal(&again.e[3].hash, &marker));
        assert_true(kiln_digest_equal(&again.e[4].hash, &marker));
        assert_int_equal(tmpdir_put(out, "a/two.bin", "two two\n", 0600), 0); /* new ctime */
        {
            _cleanup_close_ int fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            assert_int_equal(kiln_cm_scan(fd, &m, &again2, &err), 0);
        }
        kiln_digest_bytes("two two\n", 8, &real);
        assert_true(kiln_digest_equal(&again2.e[4].hash, &real));
        assert_true(kiln_digest_equal(&again2.e[3].hash, &marker));
        kiln_cm_clear(&again);
        kiln_cm_clear(&again2);
    }
    kiln_cm_clear(&m);
    kiln_fs_rm_rf(d, NULL);
    kiln_fs_rm_rf(out, NULL);
}

/* A manifest of one blob "hello" and the entries given as JSON text. */
static int decode_entries(const char *entries, kiln_cm_t *m, kiln_error_t *err)
{
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *text = NULL;
    kiln_digest_bytes("hello", 5, &d);
    text = kiln_xasprintf("{\"kiln.cachemount.v1\":1,\"blobs\":[[\"%s\",5]],\"entries\":[%s]}",
                          kiln_digest_str(&d, ds), entries);
    return kiln_cm_decode(text, strlen(text), 1 << 20, "hostile", m, err);
}

#define FILE_ENTRY(P, S, RANGE)                                                                    \
    "{\"p\":\"" P "\",\"t\":\"f\",\"m\":420,\"u\":0,\"g\":0,\"mt\":1,\"s\":" S ",\"h\":"           \
    "\"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\",\"c\":[" RANGE    \
    "]}"

static void test_decode_hostile(void **state)
{
    static const struct {
        const char *entries, *want;
    } cases[] = {
        {FILE_ENTRY("../escape", "5", "[0,0,5]"), "\"..\" component"},
        {FILE_ENTRY("a/../../escape", "5", "[0,0,5]"), "\"..\" component"},
        {FILE_ENTRY("/etc/passwd", "5", "[0,0,5]"), "is absolute"},
        {FILE_ENTRY("a//b", "5", "[0,0,5]"), "empty component"},
        {FILE_ENTRY("a/./b", "5", "[0,0,5]"), "\".\" component"},
        {FILE_ENTRY("x", "5", "[0,3,5]"), "outside its blob"},
        {FILE_ENTRY("x", "5", "[1,0,5]"), "outside its blob"},
        {FILE_ENTRY("x", "4", "[0,0,5]"), "ranges make 5 bytes, not 4"},
        {FILE_ENTRY("x", "2000000", "[0,0,5]"), "max-size"},
        {"{\"p\":\"x\",\"t\":\"c\",\"m\":420,\"u\":0,\"g\":0,\"mt\":1}", "type must be f, d or l"},
        {"{\"p\":\"x\",\"t\":\"l\",\"m\":420,\"u\":0,\"g\":0,\"mt\":1}", "bad target"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kiln_cm_t m = {0};
        kiln_error_t err = {0};
        assert_int_equal(decode_entries(cases[i].entries, &m, &err), -1);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].want);
        assert_non_null(strstr(err.msg, "hostile"));
    }
    {
        kiln_cm_t m = {0};
        kiln_error_t err = {0};
        assert_int_equal(kiln_cm_decode("{", 1, 10, "hostile", &m, &err), -1);
        assert_int_equal(
            kiln_cm_decode("{\"blobs\":[],\"entries\":[]}", 25, 10, "hostile", &m, &err), -1);
        assert_non_null(strstr(err.msg, "not a kiln cache mount manifest"));
    }
}

/* A link to the outside and a file "through" it: the file's parent is made a directory
 * inside the root first, so the link cannot be made and nothing leaves the root. */
static void test_restore_link_escape(void **state)
{
    _cleanup_free_ char *out = tmpdir_make("cmesc");
    _cleanup_free_ char *outside = tmpdir_make("cmoutside");
    _cleanup_free_ char *entries = NULL;
    _cleanup_free_ char *marker = NULL;
    _cleanup_close_ int rootfd = -1;
    kiln_cm_t m = {0};
    kiln_error_t err = {0};
    (void)state;
    entries = kiln_xasprintf("{\"p\":\"esc\",\"t\":\"l\",\"m\":511,\"u\":0,\"g\":0,\"mt\":1,"
                             "\"l\":\"%s\"}," FILE_ENTRY("esc/planted", "5", "[0,0,5]"),
                             outside);
    assert_int_equal(decode_entries(entries, &m, &err), 0);
    the_blob = "hello";
    the_blob_len = 5;
    assert_int_equal(kiln_pathres_open_root(out, &rootfd, &err), 0);
    assert_int_equal(kiln_cm_restore(rootfd, &m, 1, fetch_mem, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "link esc: other entries are under it"));
    marker = kiln_xasprintf("%s/planted", outside);
    assert_int_equal(access(marker, F_OK), -1);
    kiln_cm_clear(&m);
    kiln_fs_rm_rf(out, NULL);
    kiln_fs_rm_rf(outside, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_sorted),
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_evict),
        cmocka_unit_test(test_restore),
        cmocka_unit_test(test_decode_hostile),
        cmocka_unit_test(test_restore_link_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
