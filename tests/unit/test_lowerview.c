/* Unit tests: the partial merged view of overlay-form layer directories
 * (engine/lowerview.c) follows overlayfs rules: the top-most entry wins,
 * whiteouts hide, opaque directories stop the merge, a file hides a
 * directory below it, hardlinks stay hardlinks, symlinks ask for a fallback;
 * a flattened chain (kiln_lowerview_flatten) is that merge as one plain tree,
 * and flattening in steps (a snapshot plus the layers above) gives the same. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/flatten.h"
#include "engine/lowerview.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

typedef struct fixture {
    char *tmp;
    char *l[3];     /* top-most first */
    bool whiteouts; /* mknod of a 0:0 character device worked */
} fixture_t;

static void put(const char *root, const char *rel, const char *content)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    _cleanup_free_ char *dir = kiln_xstrdup(p);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(kiln_fs_mkdir_p(dir, 0755, NULL), 0);
    assert_int_equal(kiln_fs_write_file_atomic(p, content, strlen(content), 0644, NULL), 0);
}

static void mkdir_in(const char *root, const char *rel, mode_t mode)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    assert_int_equal(kiln_fs_mkdir_p(p, 0755, NULL), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static char *slurp(const char *root, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    char *data = NULL;
    size_t len;
    if (kiln_fs_read_file(p, 4096, &data, &len, NULL) < 0)
        return NULL;
    return data;
}

static bool exists(const char *root, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

static int setup(void **state)
{
    fixture_t *f = kiln_xzalloc(sizeof(*f));
    char tmpl[] = "/tmp/kiln-lowerview-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    f->tmp = kiln_xstrdup(tmpl);
    for (int i = 0; i < 3; i++) {
        f->l[i] = kiln_xasprintf("%s/l%d", f->tmp, i);
        assert_int_equal(mkdir(f->l[i], 0755), 0);
    }
    /* bottom layer */
    put(f->l[2], "a/f1", "one");
    put(f->l[2], "a/d/x", "x");
    put(f->l[2], "a/rm", "removed");
    put(f->l[2], "a/opq/old", "old");
    put(f->l[2], "a/f2dir", "a file");
    put(f->l[2], "a/hl1", "linked");
    {
        _cleanup_free_ char *a = kiln_xasprintf("%s/a/hl1", f->l[2]);
        _cleanup_free_ char *b = kiln_xasprintf("%s/a/hl2", f->l[2]);
        _cleanup_free_ char *s = kiln_xasprintf("%s/a/sym", f->l[2]);
        assert_int_equal(link(a, b), 0);
        assert_int_equal(symlink("f1", s), 0);
    }
    put(f->l[2], "a/under/deep", "hidden by a file in the middle layer");
    /* middle layer: a whiteout, an opaque dir, a dir over a file, a new f1 */
    put(f->l[1], "a/f1", "one-b");
    put(f->l[1], "a/opq/new", "new");
    put(f->l[1], "a/f2dir/y", "y");
    put(f->l[1], "a/under", "a file");
    {
        _cleanup_free_ char *o = kiln_xasprintf("%s/a/opq", f->l[1]);
        _cleanup_free_ char *w = kiln_xasprintf("%s/a/rm", f->l[1]);
        if (setxattr(o, "trusted.overlay.opaque", "y", 1, 0) < 0)
            assert_int_equal(setxattr(o, "user.overlay.opaque", "y", 1, 0), 0);
        f->whiteouts = mknod(w, S_IFCHR | 0600, makedev(0, 0)) == 0;
    }
    /* top layer: a new file in a merged dir (its mode wins), a dir over the middle file */
    put(f->l[0], "a/d/z", "z");
    mkdir_in(f->l[0], "a/d", 0750);
    put(f->l[0], "a/under/top", "top");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kiln_fs_rm_rf(f->tmp, NULL);
    free(f->tmp);
    for (int i = 0; i < 3; i++)
        free(f->l[i]);
    free(f);
    return 0;
}

static char *new_dest(fixture_t *f, const char *name)
{
    char *d = kiln_xasprintf("%s/%s", f->tmp, name);
    assert_int_equal(mkdir(d, 0755), 0);
    return d;
}

static int extract(fixture_t *f, const char *path, const char *dest)
{
    kiln_error_t err = {0};
    int r = kiln_lowerview_extract((const char *const *)f->l, 3, path, dest, &err);
    if (r < 0)
        fail_msg("%s", err.msg);
    return r;
}

static void test_merged_dir(void **state)
{
    fixture_t *f = *state;
    _cleanup_free_ char *d = new_dest(f, "v1");
    _cleanup_free_ char *f1 = NULL, *y = NULL, *top = NULL;
    struct stat a, b;

    if (!f->whiteouts)
        skip();
    assert_int_equal(extract(f, "a", d), 1);
    f1 = slurp(d, "a/f1");
    assert_string_equal(f1, "one-b");
    assert_true(exists(d, "a/d/x") && exists(d, "a/d/z"));
    assert_false(exists(d, "a/rm"));     /* whited out */
    assert_true(exists(d, "a/opq/new")); /* opaque: only the middle layer's */
    assert_false(exists(d, "a/opq/old"));
    y = slurp(d, "a/f2dir/y"); /* a directory over a file */
    assert_non_null(y);
    top = slurp(d, "a/under/top"); /* dir over a file over a dir: no merge */
    assert_non_null(top);
    assert_false(exists(d, "a/under/deep"));
    {
        _cleanup_free_ char *p = kiln_xasprintf("%s/a/d", d);
        assert_int_equal(stat(p, &a), 0);
        assert_int_equal(a.st_mode & 07777, 0750); /* the top-most directory's mode */
    }
    {
        _cleanup_free_ char *p1 = kiln_xasprintf("%s/a/hl1", d);
        _cleanup_free_ char *p2 = kiln_xasprintf("%s/a/hl2", d);
        _cleanup_free_ char *s = kiln_xasprintf("%s/a/sym", d);
        char target[16] = {0};
        assert_int_equal(lstat(p1, &a), 0);
        assert_int_equal(lstat(p2, &b), 0);
        assert_true(a.st_ino == b.st_ino); /* a hardlink pair stays one */
        assert_int_equal(readlink(s, target, sizeof(target) - 1), 2);
        assert_string_equal(target, "f1"); /* symlinks inside a tree are kept */
    }
}

static void test_single_file_is_a_link(void **state)
{
    fixture_t *f = *state;
    _cleanup_free_ char *d = new_dest(f, "v2");
    _cleanup_free_ char *src = kiln_xasprintf("%s/a/f1", f->l[1]);
    _cleanup_free_ char *got = kiln_xasprintf("%s/a/f1", d);
    struct stat a, b;

    assert_int_equal(extract(f, "/a/./f1", d), 1);
    assert_int_equal(stat(src, &a), 0);
    assert_int_equal(stat(got, &b), 0);
    assert_true(a.st_ino == b.st_ino);
    assert_false(exists(d, "a/d")); /* only what was asked for */
}

static void test_missing_and_fallbacks(void **state)
{
    fixture_t *f = *state;
    _cleanup_free_ char *d = new_dest(f, "v3");

    assert_int_equal(extract(f, "a/nope", d), 1);
    assert_int_equal(extract(f, "a/f1/below-a-file", d), 1);
    if (f->whiteouts)
        assert_int_equal(extract(f, "a/rm", d), 1);
    assert_false(exists(d, "a"));                 /* nothing created for a missing path */
    assert_int_equal(extract(f, "a/sym", d), 0);  /* a symlink: the caller falls back */
    assert_int_equal(extract(f, "a/../a", d), 0); /* ".." needs the real rootfs */
}

static void test_two_sources_share_parents(void **state)
{
    fixture_t *f = *state;
    _cleanup_free_ char *d = new_dest(f, "v4");
    _cleanup_free_ char *z = NULL;

    assert_int_equal(extract(f, "a/d", d), 1);
    assert_int_equal(extract(f, "a/d/z", d), 1); /* already there: fine */
    z = slurp(d, "a/d/z");
    assert_string_equal(z, "z");
}

/* Repeated lower directories (identical layers) keep only their top-most
 * copy, in order; overlayfs refuses a lower given twice. */
static void test_unique_lowers(void **state)
{
    (void)state;
    char *l[6];
    const char *names[6] = {"/l/c", "/l/b", "/l/c", "/l/a", "/l/b", "/l/c"};
    for (size_t i = 0; i < 6; i++)
        l[i] = kiln_xstrdup(names[i]);
    assert_int_equal(kiln_lowerview_unique(l, 6), 3);
    assert_string_equal(l[0], "/l/c");
    assert_string_equal(l[1], "/l/b");
    assert_string_equal(l[2], "/l/a");
    for (size_t i = 3; i < 6; i++)
        assert_null(l[i]);
    for (size_t i = 0; i < 6; i++)
        free(l[i]);
    assert_int_equal(kiln_lowerview_unique(l, 0), 0);
}

/* Resolution in the merged tree: a link in a lower layer covered by a
 * directory above is not followed; one on top is, inside the tree
 * (absolute targets from its root, ".." stopping there); whiteouts hide. */
static void test_resolve_in_union(void **state)
{
    char tmpl[] = "/tmp/kiln-lvres-XXXXXX";
    const char *l[2];
    _cleanup_free_ char *top = NULL, *bottom = NULL;
    char *out = NULL;
    int layer = -2;
    assert_non_null(mkdtemp(tmpl));
    top = kiln_xasprintf("%s/top", tmpl);
    bottom = kiln_xasprintf("%s/bottom", tmpl);
    l[0] = top;
    l[1] = bottom;
    put(bottom, "etc/passwd.real", "root");
    put(bottom, "covered/f", "f");
    mkdir_in(top, "covered", 0755);
    mkdir_in(top, "etc", 0755);
    {
        _cleanup_free_ char *a = kiln_xasprintf("%s/evil", top);
        _cleanup_free_ char *b = kiln_xasprintf("%s/etc/passwd", top);
        _cleanup_free_ char *c = kiln_xasprintf("%s/up", bottom);
        _cleanup_free_ char *d = kiln_xasprintf("%s/covered2", bottom);
        assert_int_equal(symlink("/host/dir", a), 0);
        assert_int_equal(symlink("../../../../etc/passwd.real", b), 0);
        assert_int_equal(symlink("../../../../covered", c), 0);
        assert_int_equal(symlink("/etc", d), 0);
    }
    assert_int_equal(
        kiln_lowerview_resolve(l, 2, "/evil/f", KILN_PATHRES_MISSING_OK, &out, &layer, NULL), 0);
    assert_string_equal(out, "/host/dir/f");
    assert_int_equal(layer, -1);
    free(out);
    assert_int_equal(kiln_lowerview_resolve(l, 2, "/etc/passwd", 0, &out, &layer, NULL), 0);
    assert_string_equal(out, "/etc/passwd.real");
    assert_int_equal(layer, 1);
    free(out);
    assert_int_equal(kiln_lowerview_resolve(l, 2, "up/f", 0, &out, &layer, NULL), 0);
    assert_string_equal(out, "/covered/f");
    assert_int_equal(layer, 1);
    free(out);
    assert_int_equal(kiln_lowerview_resolve(l, 2, "covered/", 0, &out, &layer, NULL), 0);
    assert_string_equal(out, "/covered/");
    assert_int_equal(layer, 0);
    free(out);
    assert_int_equal(
        kiln_lowerview_resolve(l, 2, "evil", KILN_PATHRES_NOFOLLOW, &out, &layer, NULL), 0);
    assert_string_equal(out, "/evil");
    assert_int_equal(layer, 0);
    free(out);
    assert_int_equal(kiln_lowerview_resolve(l, 2, "/evil/f", 0, &out, &layer, NULL), -1);
    assert_int_equal(kiln_lowerview_resolve(l, 2, "covered2/passwd.real", 0, &out, &layer, NULL),
                     0);
    assert_string_equal(out, "/etc/passwd.real");
    free(out);
    kiln_fs_rm_rf(tmpl, NULL);
}

static int flatten(const char *const *lowers, size_t n, const char *dest)
{
    kiln_error_t err = {0};
    int r = kiln_lowerview_flatten(lowers, n, dest, &err);
    if (r < 0)
        fail_msg("%s", err.msg);
    return r;
}

static bool has_xattr(const char *root, const char *rel, const char *name, const char *want)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    char v[64] = {0};
    ssize_t n = lgetxattr(p, name, v, sizeof(v) - 1);
    return n >= 0 && (want == NULL || strcmp(v, want) == 0);
}

static struct stat stat_in(const char *root, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    return st;
}

/* Whether two trees hold the same names with the same kind, mode, owner
 * and (for non-directories) the same inode. */
static bool same_tree(const char *a, const char *b)
{
    _cleanup_closedir_ DIR *d = opendir(a);
    struct dirent *de;
    size_t na = 0, nb = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        _cleanup_free_ char *pa = NULL, *pb = NULL;
        struct stat sa, sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        na++;
        pa = kiln_xasprintf("%s/%s", a, de->d_name);
        pb = kiln_xasprintf("%s/%s", b, de->d_name);
        if (lstat(pa, &sa) < 0 || lstat(pb, &sb) < 0 || sa.st_mode != sb.st_mode ||
            sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid)
            return false;
        if (S_ISDIR(sa.st_mode) ? !same_tree(pa, pb) : sa.st_ino != sb.st_ino)
            return false;
    }
    {
        _cleanup_closedir_ DIR *e = opendir(b);
        assert_non_null(e);
        while ((de = readdir(e)) != NULL)
            nb += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    }
    return na == nb;
}

/* The whole chain as one tree: overlay rules applied, nothing of the
 * overlay form left (no whiteout, no opaque mark), directories with the
 * top-most copy's owner, mode and xattrs, files hardlinked (owner, mode,
 * xattrs and hardlink pairs kept), FIFOs and symlinks kept. */
static void test_flatten(void **state)
{
    fixture_t *f = *state;
    _cleanup_free_ char *d = kiln_xasprintf("%s/flat", f->tmp);
    _cleanup_free_ char *f1 = NULL, *top = NULL;
    _cleanup_free_ char *opq = kiln_xasprintf("%s/a/opq", f->l[1]);
    _cleanup_free_ char *fifo = kiln_xasprintf("%s/a/fifo", f->l[2]);
    _cleanup_free_ char *setid = kiln_xasprintf("%s/a/d/z", f->l[0]);
    _cleanup_free_ char *xd = kiln_xasprintf("%s/a/d", f->l[0]);
    _cleanup_free_ char *xbelow = kiln_xasprintf("%s/a/d", f->l[2]);
    bool xattrs = setxattr(xd, "user.kiln.test", "top", 3, 0) == 0 &&
                  setxattr(xbelow, "user.kiln.test", "below", 5, 0) == 0;
    struct stat a, b;

    if (!f->whiteouts)
        skip();
    assert_int_equal(chown(opq, 5, 6), 0);
    assert_int_equal(chmod(opq, 0711), 0);
    assert_int_equal(mkfifo(fifo, 0640), 0);
    assert_int_equal(chown(setid, 3, 4), 0);
    assert_int_equal(chmod(setid, 04755), 0);
    assert_int_equal(flatten((const char *const *)f->l, 3, d), 0);

    f1 = slurp(d, "a/f1");
    assert_string_equal(f1, "one-b");
    assert_true(exists(d, "a/d/x") && exists(d, "a/d/z") && exists(d, "a/f2dir/y"));
    assert_false(exists(d, "a/rm")); /* the whiteout applied, and gone */
    assert_true(exists(d, "a/opq/new"));
    assert_false(exists(d, "a/opq/old"));
    top = slurp(d, "a/under/top");
    assert_non_null(top);
    assert_false(exists(d, "a/under/deep"));
    /* an opaque directory is a plain one in the flat tree (nothing is below it) */
    assert_false(has_xattr(d, "a/opq", "user.overlay.opaque", NULL));
    assert_false(has_xattr(d, "a/opq", "trusted.overlay.opaque", NULL));
    a = stat_in(d, "a/opq");
    assert_true(a.st_uid == 5 && a.st_gid == 6 && (a.st_mode & 07777) == 0711);
    a = stat_in(d, "a/d");
    assert_int_equal(a.st_mode & 07777, 0750);
    if (xattrs)
        assert_true(has_xattr(d, "a/d", "user.kiln.test", "top")); /* the top copy's */
    /* files are the layers' own inodes: owner, mode (set-id bits too) kept */
    a = stat_in(d, "a/d/z");
    b = stat_in(f->l[0], "a/d/z");
    assert_true(a.st_ino == b.st_ino && a.st_uid == 3 && (a.st_mode & 07777) == 04755);
    a = stat_in(d, "a/hl1");
    b = stat_in(d, "a/hl2");
    assert_true(a.st_ino == b.st_ino);
    a = stat_in(d, "a/fifo");
    assert_true(S_ISFIFO(a.st_mode) && (a.st_mode & 07777) == 0640);
    a = stat_in(d, "a/sym");
    assert_true(S_ISLNK(a.st_mode));
}

/* A snapshot of the bottom layers plus the layers above flattens to the
 * same tree as all the layers at once (how a long chain grows). */
static void test_flatten_in_steps(void **state)
{
    fixture_t *f = *state;
    _cleanup_free_ char *all = kiln_xasprintf("%s/all", f->tmp);
    _cleanup_free_ char *bottom = kiln_xasprintf("%s/bottom", f->tmp);
    _cleanup_free_ char *stepped = kiln_xasprintf("%s/stepped", f->tmp);
    const char *two[2];

    if (!f->whiteouts)
        skip();
    assert_int_equal(flatten((const char *const *)f->l, 3, all), 0);
    assert_int_equal(flatten((const char *const *)f->l + 2, 1, bottom), 0);
    two[0] = f->l[1];
    two[1] = bottom;
    {
        _cleanup_free_ char *mid = kiln_xasprintf("%s/mid", f->tmp);
        assert_int_equal(flatten(two, 2, mid), 0);
        two[0] = f->l[0];
        two[1] = mid;
        assert_int_equal(flatten(two, 2, stepped), 0);
    }
    assert_true(same_tree(all, stepped));
    assert_true(same_tree(stepped, all));
}

/* A lower that is missing is an error naming it; nothing is claimed done. */
static void test_flatten_errors(void **state)
{
    fixture_t *f = *state;
    _cleanup_free_ char *d = kiln_xasprintf("%s/bad", f->tmp);
    _cleanup_free_ char *gone = kiln_xasprintf("%s/no-such-layer", f->tmp);
    const char *l[1] = {gone};
    kiln_error_t err = {0};

    assert_int_equal(kiln_lowerview_flatten(l, 1, d, &err), -1);
    assert_non_null(strstr(err.msg, "no-such-layer"));
    assert_int_equal(kiln_lowerview_flatten(l, 0, d, &err), -1);
}

/* Where a long chain is cut: nothing up to 128 layers, then a multiple of
 * 64 layers below, so a step has at most 65 lowers and one snapshot serves
 * 64 steps. */
static void test_flatten_split(void **state)
{
    (void)state;
    assert_int_equal(kiln_flatten_split(0), 0);
    assert_int_equal(kiln_flatten_split(128), 0);
    assert_int_equal(kiln_flatten_split(129), 128);
    assert_int_equal(kiln_flatten_split(192), 128);
    assert_int_equal(kiln_flatten_split(193), 192);
    assert_int_equal(kiln_flatten_split(500), 448);
    for (size_t n = 129; n < 5000; n++) {
        size_t b = kiln_flatten_split(n);
        assert_true(b % KILN_FLATTEN_CHUNK == 0 && b < n);
        assert_true(n - b + 1 <= KILN_FLATTEN_CHUNK + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_merged_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file_is_a_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_sources_share_parents, setup, teardown),
        cmocka_unit_test(test_unique_lowers),
        cmocka_unit_test(test_resolve_in_union),
        cmocka_unit_test_setup_teardown(test_flatten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flatten_in_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flatten_errors, setup, teardown),
        cmocka_unit_test(test_flatten_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
