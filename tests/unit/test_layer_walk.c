/* Unit tests for oci/layer_walk: the read-ahead walk (a thread opening,
 * stating and listing ahead of the tar) gives byte for byte the layer of the
 * plain walk on a tree of many small files, big files past the read-ahead's
 * byte cap, hardlinks, symlinks, empty files and directories, a fifo, xattrs,
 * deep nesting and overlay whiteouts; files that grow, shrink, vanish or
 * change type while the tree is walked give the same layer or the same error
 * either way; the deepest tree taken (512 levels) and one level more alike;
 * no fd is left open, and the fds held stay under the cap. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/layer_write.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static char *tmpdir;
static char *shared; /* the tree most cases share, made once */

static int setup(void **state)
{
    kiln_error_t err = {0};
    return kiln_fs_mkdtemp("/var/tmp", "kiln-test-layer-walk-", &tmpdir, &err);
}

static int teardown(void **state)
{
    kiln_error_t err = {0};
    kiln_fs_rm_rf(tmpdir, &err);
    free(tmpdir);
    free(shared);
    return 0;
}

static char *path_of(const char *dir, const char *rel)
{
    return kiln_xasprintf("%s/%s", dir, rel);
}

static void put_n(const char *dir, const char *rel, size_t len, unsigned seed)
{
    _cleanup_free_ char *p = path_of(dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    _cleanup_free_ unsigned char *buf = kiln_xmalloc(len ? len : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        /* compressible but not trivially so */
        buf[i] = (unsigned char)((x >> 16) % 23 + 'a');
    }
    kiln_error_t err = {0};
    assert_int_equal(kiln_fs_write_all(fd, buf, len, &err), 0);
    close(fd);
}

static void mkdirs(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = path_of(dir, rel);
    kiln_error_t err = {0};
    assert_int_equal(kiln_fs_mkdir_p(p, 0755, &err), 0);
}

/* The open fds of this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the listing's own fd */
}

/* A sink that only counts (the writer hashes what it gets). With slow set,
 * its first writes sleep, so that the walk thread runs ahead and fills its
 * queue (what the fd bound is checked on). */
struct count_sink {
    uint64_t bytes;
    int slow;
};

static int count_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    struct count_sink *c = ctx;
    c->bytes += len;
    if (c->slow > 0) {
        c->slow--;
        usleep(2000);
    }
    return 0;
}

/* What a filter does while the walk passes: at entry `at`, run `act` on `arg`. */
struct mutate {
    const char *at;
    int (*act)(const char *dir, const char *arg);
    const char *dir;
    const char *arg;
    int fail; /* the filter refuses `at` */
    int max_fds, seen;
    int count; /* measure the fds held at each entry */
};

static int mutate_filter(void *ctx, const char *path, const struct stat *st, kiln_error_t *err)
{
    struct mutate *m = ctx;
    m->seen++;
    if (m->count) {
        int n = count_fds();
        if (n > m->max_fds)
            m->max_fds = n;
    }
    if (m->at != NULL && strcmp(path, m->at) == 0) {
        if (m->fail)
            return kiln_error_set(err, EPERM, "the filter refuses %s", path);
        if (m->act != NULL)
            assert_int_equal(m->act(m->dir, m->arg), 0);
    }
    return 1;
}

struct outcome {
    int r;
    kiln_layer_info_t info;
    char msg[KILN_ERROR_MSG_MAX];
    uint64_t bytes;
};

static void write_tree(const char *dir, kiln_layer_opts_t *o, int readahead, struct outcome *out)
{
    struct count_sink c = {0};
    kiln_sink_t s = {count_write, &c, NULL};
    kiln_error_t err = {0};
    o->readahead = readahead;
    memset(out, 0, sizeof(*out));
    int before = count_fds();
    out->r = kiln_layer_write_dir(dir, o, &s, &out->info, &err);
    assert_int_equal(count_fds(), before);
    snprintf(out->msg, sizeof(out->msg), "%s", err.msg);
    out->bytes = c.bytes;
}

/* The plain and the read-ahead walk of dir with o: the same layer, or the same error. */
static void assert_same(const char *dir, kiln_layer_opts_t *o, struct outcome *ra)
{
    struct outcome plain;
    write_tree(dir, o, 0, &plain);
    write_tree(dir, o, 1, ra);
    assert_int_equal(plain.r, ra->r);
    assert_string_equal(plain.msg, ra->msg);
    if (plain.r == 0) {
        assert_memory_equal(&plain.info.digest, &ra->info.digest, sizeof(plain.info.digest));
        assert_memory_equal(&plain.info.diff_id, &ra->info.diff_id, sizeof(plain.info.diff_id));
        assert_int_equal(plain.info.size, ra->info.size);
        assert_int_equal(plain.info.entries, ra->info.entries);
        assert_int_equal(plain.bytes, ra->bytes);
    }
}

/* 40 directories of nfiles files of 0-3000 bytes, 3 files of big bytes (6 MiB:
 * past the 16 MiB read-ahead cap together), links of every kind, a fifo,
 * xattrs, a chain of 36 directories, empty directories. Returns its path. */
static char *make_tree_n(const char *name, int nfiles, size_t big)
{
    char *d = path_of(tmpdir, name);
    mkdirs(d, "");
    for (int i = 0; i < 40; i++) {
        _cleanup_free_ char *sd = kiln_xasprintf("d%02d", i);
        mkdirs(d, sd);
        for (int j = 0; j < nfiles; j++) {
            _cleanup_free_ char *f = kiln_xasprintf("d%02d/f%03d.js", i, j);
            put_n(d, f, (size_t)((i * 131 + j * 37) % 3001), (unsigned)(i * 100 + j));
        }
    }
    for (int i = 0; i < 3; i++) {
        _cleanup_free_ char *f = kiln_xasprintf("big%d.bin", i);
        put_n(d, f, big, (unsigned)i);
    }
    put_n(d, "empty", 0, 0);
    mkdirs(d, "emptydir");
    mkdirs(d, "deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0/1/2/3/4/5/6/7/8/9");
    put_n(d, "deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0/1/2/3/4/5/6/7/8/9/leaf",
          100, 9);
    _cleanup_free_ char *a = path_of(d, "d00/f001.js");
    _cleanup_free_ char *h1 = path_of(d, "d39/hard");
    _cleanup_free_ char *h2 = path_of(d, "hard-top");
    assert_int_equal(link(a, h1), 0);
    assert_int_equal(link(a, h2), 0);
    _cleanup_free_ char *e = path_of(d, "empty");
    _cleanup_free_ char *he = path_of(d, "d05/hard-empty");
    assert_int_equal(link(e, he), 0);
    const char *links[][2] = {{"d01/rel", "../d02/f003.js"},
                              {"abs", "/etc/passwd"},
                              {"dangling", "nowhere/at/all"},
                              {"todir", "d03"},
                              {"self", "self"}};
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        _cleanup_free_ char *l = path_of(d, links[i][0]);
        assert_int_equal(symlink(links[i][1], l), 0);
    }
    _cleanup_free_ char *fifo = path_of(d, "d04/fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    _cleanup_free_ char *x1 = path_of(d, "d06/f010.js");
    _cleanup_free_ char *x2 = path_of(d, "d07");
    assert_int_equal(setxattr(x1, "user.kiln", "v1", 2, 0), 0);
    assert_int_equal(setxattr(x2, "user.kiln.dir", "v2", 2, 0), 0);
    return d;
}

static const char *make_tree(void)
{
    if (shared == NULL)
        shared = make_tree_n("shared", 80, 6u << 20);
    return shared;
}

static void test_same_bytes(void **state)
{
    const char *d = make_tree();
    kiln_layer_opts_t o;
    struct outcome ra;
    const kiln_compression_t comps[] = {KILN_COMPRESSION_GZIP, KILN_COMPRESSION_NONE};
    for (size_t i = 0; i < 2; i++) {
        kiln_layer_opts_init(&o);
        o.compression = comps[i];
        o.source_date_epoch = 1700000000;
        assert_same(d, &o, &ra);
        assert_int_equal(ra.r, 0);
        assert_true(ra.info.entries > 3250);
    }
    /* under a prefix, with the mtimes kept */
    kiln_layer_opts_init(&o);
    o.prefix = "/usr/src/app/";
    assert_same(d, &o, &ra);
    assert_int_equal(ra.r, 0);
    /* a tree that is one file, a symlink at its root, a missing one */
    _cleanup_free_ char *f = path_of(d, "d00/f001.js");
    _cleanup_free_ char *l = path_of(tmpdir, "rootlink");
    assert_int_equal(symlink(d, l), 0);
    assert_same(l, &o, &ra);
    assert_int_equal(ra.r, 0);
    assert_same(f, &o, &ra);
    assert_int_equal(ra.r, -1);
    assert_non_null(strstr(ra.msg, "Not a directory"));
    _cleanup_free_ char *missing = path_of(d, "missing");
    assert_same(missing, &o, &ra);
    assert_int_equal(ra.r, -1);
}

/* The incremental writer's add_tree: a directory through the walk thread, a
 * file in the caller's thread; the same bytes. */
static void test_add_tree(void **state)
{
    const char *d = make_tree();
    kiln_layer_info_t info[2];
    for (int ra = 0; ra < 2; ra++) {
        kiln_layer_opts_t o;
        kiln_layer_opts_init(&o);
        o.readahead = ra;
        struct count_sink c = {0};
        kiln_sink_t s = {count_write, &c, NULL};
        kiln_error_t err = {0};
        kiln_layer_writer_t *w = NULL;
        _cleanup_close_ int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(kiln_layer_writer_new(&o, &s, &w, &err), 0);
        assert_int_equal(kiln_layer_writer_add_tree(w, dfd, "d10", "x/d10", &err), 0);
        assert_int_equal(kiln_layer_writer_add_tree(w, dfd, "big0.bin", "x/big", &err), 0);
        assert_int_equal(kiln_layer_writer_add_tree(w, dfd, "deep", "x/deep", &err), 0);
        assert_int_equal(kiln_layer_writer_finish(w, &info[ra], &err), 0);
        kiln_layer_writer_free(w);
    }
    assert_memory_equal(&info[0].digest, &info[1].digest, sizeof(info[0].digest));
    assert_int_equal(info[0].entries, info[1].entries);
}

static int act_unlink(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = path_of(dir, rel);
    return unlink(p);
}

static int act_truncate(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = path_of(dir, rel);
    return truncate(p, 10);
}

static int act_grow(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = path_of(dir, rel);
    int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = write(fd, "more bytes", 10) == 10 ? 0 : -1;
    close(fd);
    return r;
}

static int act_to_dir(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = path_of(dir, rel);
    if (unlink(p) < 0 || mkdir(p, 0700) < 0)
        return -1;
    _cleanup_free_ char *in = kiln_xasprintf("%s/inside", p);
    int fd = open(in, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int act_to_link(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = path_of(dir, rel);
    if (unlink(p) < 0)
        return -1;
    return symlink("/etc/shadow", p);
}

/* A tree changed while it is walked: each change made twice (once per walk)
 * on a fresh copy, at the same point of the walk (the filter sees entries in
 * tar order in both). */
static void test_changes_during_walk(void **state)
{
    static const struct {
        const char *at, *target;
        int (*act)(const char *dir, const char *arg);
        int fail;
        const char *want; /* NULL: the write succeeds */
    } cases[] = {
        {"d01/f000.js", "d01/f011.js", act_unlink, 0, "stat d01/f011.js: No such file"},
        {"d01/f000.js", "d01", NULL, 1, "the filter refuses d01/f000.js"},
        {"d02/f010.js", "d02/f010.js", act_truncate, 0, "shrank while it was being read"},
        {"d02/f010.js", "d02/f010.js", act_grow, 0, NULL},
        {"d02/f010.js", "d02/f011.js", act_grow, 0, NULL},
        {"d03/f000.js", "d03/f011.js", act_to_dir, 0, NULL},
        {"d03/f000.js", "d03/f010.js", act_to_link, 0, NULL},
        {"d05/f000.js", "d06", NULL, 1, "the filter refuses d05/f000.js"},
        {"d39/f011.js", "hard-top", act_unlink, 0, "stat hard-top: No such file"},
        {"big0.bin", "big2.bin", act_unlink, 0, "stat big2.bin: No such file"},
        {"big0.bin", "big0.bin", act_truncate, 0, "shrank while it was being read"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outcome out[2];
        for (int ra = 0; ra < 2; ra++) {
            _cleanup_free_ char *name = kiln_xasprintf("chg-%zu-%d", i, ra);
            _cleanup_free_ char *d = make_tree_n(name, 12, 1u << 20);
            struct mutate m = {.at = cases[i].at,
                               .act = cases[i].act,
                               .dir = d,
                               .arg = cases[i].target,
                               .fail = cases[i].fail};
            kiln_layer_opts_t o;
            kiln_layer_opts_init(&o);
            o.compression = KILN_COMPRESSION_NONE;
            o.source_date_epoch = 1700000000;
            o.filter = mutate_filter;
            o.filter_ctx = &m;
            write_tree(d, &o, ra, &out[ra]);
            /* the paths differ by the directory name only */
            char *at = strstr(out[ra].msg, name);
            if (at != NULL)
                memmove(at, at + strlen(name), strlen(at + strlen(name)) + 1);
            kiln_error_t err = {0};
            kiln_fs_rm_rf(d, &err);
        }
        if (cases[i].want == NULL) {
            if (out[0].r != 0)
                fail_msg("case %zu: %s", i, out[0].msg);
        } else {
            if (out[0].r != -1)
                fail_msg("case %zu: no error", i);
            if (strstr(out[0].msg, cases[i].want) == NULL)
                fail_msg("case %zu: '%s' lacks '%s'", i, out[0].msg, cases[i].want);
        }
        assert_int_equal(out[1].r, out[0].r);
        assert_string_equal(out[1].msg, out[0].msg);
        if (out[0].r == 0) {
            assert_memory_equal(&out[0].info.digest, &out[1].info.digest,
                                sizeof(out[0].info.digest));
            assert_int_equal(out[0].info.entries, out[1].info.entries);
        }
    }
}

/* Overlay upper dirs (whiteouts, opaque dirs) through both walks. */
static void test_overlay(void **state)
{
    if (geteuid() != 0)
        return; /* needs mknod and trusted.* xattrs (CI runs as root) */
    const char *d = make_tree();
    _cleanup_free_ char *wh = path_of(d, "d08/gone");
    assert_int_equal(mknod(wh, S_IFCHR | 0600, makedev(0, 0)), 0);
    _cleanup_free_ char *od = path_of(d, "d09");
    assert_int_equal(setxattr(od, "trusted.overlay.opaque", "y", 1, 0), 0);
    kiln_layer_opts_t o;
    kiln_layer_opts_init(&o);
    o.overlay_upper = 1;
    o.id_shift = 100000;
    struct outcome ra;
    assert_same(d, &o, &ra);
    assert_int_equal(ra.r, 0);
}

/* A chain of n nested directories under dir/name (each "d", a file and a
 * link in the last). */
static void make_chain(const char *dir, const char *name, int n)
{
    mkdirs(dir, name);
    _cleanup_free_ char *top = path_of(dir, name);
    int fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        int nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(nfd >= 0);
        close(fd);
        fd = nfd;
    }
    int f = openat(fd, "leaf", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(f >= 0);
    close(f);
    assert_int_equal(symlinkat("../../..", fd, "up"), 0);
    close(fd);
}

/* The deepest tree the walk takes (512 levels below the root) gives the same
 * layer either way, one level more the same error: the recursion's frames fit
 * the walk thread's stack. */
static void test_depth(void **state)
{
    _cleanup_free_ char *d = path_of(tmpdir, "depth");
    mkdirs(d, "");
    make_chain(d, "ok", 511);
    make_chain(d, "deep", 600);
    _cleanup_free_ char *ok = path_of(d, "ok");
    _cleanup_free_ char *deep = path_of(d, "deep");
    kiln_layer_opts_t o;
    kiln_layer_opts_init(&o);
    struct outcome ra;
    assert_same(ok, &o, &ra);
    if (ra.r != 0)
        fail_msg("%s", ra.msg);
    assert_int_equal(ra.info.entries, 511 + 2);
    assert_same(deep, &o, &ra);
    assert_int_equal(ra.r, -1);
    assert_non_null(strstr(ra.msg, "directories nested deeper than 512"));
}

/* The fds the walk holds stay under its cap (an eighth of RLIMIT_NOFILE here)
 * while the writer is slowed down so that the walk runs ahead. */
static void test_fd_bound(void **state)
{
    const char *d = make_tree();
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int base = count_fds();
    struct mutate m = {.count = 1};
    kiln_layer_opts_t o;
    kiln_layer_opts_init(&o);
    o.compression = KILN_COMPRESSION_NONE;
    o.filter = mutate_filter;
    o.filter_ctx = &m;
    struct count_sink c = {.slow = 100};
    kiln_sink_t s = {count_write, &c, NULL};
    kiln_layer_info_t info;
    kiln_error_t err = {0};
    int r = kiln_layer_write_dir(d, &o, &s, &info, &err);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    if (r < 0)
        fail_msg("write: %s", err.msg);
    assert_int_equal(count_fds(), base);
    /* 32 queued items, the directories open on the way down (at most 38),
     * the root's and the filter's listing */
    assert_true(m.seen > 3250);
    if (m.max_fds > base + 256 / 8 + 38 + 3)
        fail_msg("%d fds open during the walk (base %d)", m.max_fds, base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_add_tree),
        cmocka_unit_test(test_changes_during_walk),
        cmocka_unit_test(test_overlay),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_fd_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
