/* Unit tests for oci/unpack_merge: a later layer unpacked on its own and merged onto the lower
 * layers gives the tree applying it in place gives, for ordinary layers and for the tar shapes
 * whose result depends on the tree below (those are applied in place: the record-mode unpack
 * or the merge says so, as oci/pull_unpack does). Whiteouts hide the lower layers only. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/resource.h>

#include "oci/unpack.h"
#include "oci/unpack_merge.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

#include "layer_tar.h"

static char *tmpdir;

static int setup(void **state)
{
    kiln_error_t err = {0};
    return kiln_fs_mkdtemp("/tmp", "kiln-test-merge-", &tmpdir, &err);
}

static int teardown(void **state)
{
    kiln_fs_rm_rf(tmpdir, NULL);
    free(tmpdir);
    return 0;
}

/* Directories of the lower layer made setgid before the upper one is applied (NULL-ended). */
static const char *const *setgid_dirs;

/* The upper layer applied without chown (as a pull by a user other than root). */
static int no_chown;

/* How the upper layer got onto the lower one. */
enum how { MERGED, AT_UNPACK, AT_MERGE };

/* When set, the soft limit of open files each unpack runs under (then restored). */
static rlim_t unpack_fd_limit;

static int unpack_tar(const char *tar, const char *root, const kiln_unpack_opts_t *uo,
                      kiln_error_t *err)
{
    _cleanup_close_ int fd = open(tar, O_RDONLY | O_CLOEXEC);
    struct rlimit old, low;
    assert_true(fd >= 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    if (unpack_fd_limit)
        low.rlim_cur = unpack_fd_limit;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int r = kiln_layer_unpack(fd, root, uo, NULL, err);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    return r;
}

/* Applies lower then upper in place, and upper on its own merged onto lower (applied in place
 * where the record-mode unpack fails with EAGAIN or the merge returns 1); both ways under both
 * path resolutions: the trees are the same, the way is `how`, and nothing appears beside them
 * (links out of the root led inside it). Returns the tree's listing. */
static char *check_merge(const char *name, const struct tentry *lower, size_t nl,
                         const struct tentry *upper, size_t nu, enum how how)
{
    char *tree = NULL;
    for (int walk = 0; walk < 2; walk++) {
        kiln_pathres_force_walk(walk);
        kiln_error_t err = {0};
        _cleanup_free_ char *dir = kiln_xasprintf("%s/%s-%d", tmpdir, name, walk);
        _cleanup_free_ char *lt = kiln_xasprintf("%s/lower.tar", dir);
        _cleanup_free_ char *ut = kiln_xasprintf("%s/upper.tar", dir);
        _cleanup_free_ char *seq = kiln_xasprintf("%s/seq", dir);
        _cleanup_free_ char *par = kiln_xasprintf("%s/par", dir);
        _cleanup_free_ char *lay = kiln_xasprintf("%s/layer", dir);
        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(mkdir(seq, 0755), 0);
        assert_int_equal(mkdir(par, 0755), 0);
        assert_int_equal(mkdir(lay, 0755), 0);
        make_tar(lt, lower, nl);
        make_tar(ut, upper, nu);
        if (unpack_tar(lt, seq, NULL, &err) < 0 || unpack_tar(lt, par, NULL, &err) < 0)
            fail_msg("%s: in place: %s", name, err.msg);
        for (const char *const *s = setgid_dirs; s != NULL && *s != NULL; s++) {
            _cleanup_free_ char *a = kiln_xasprintf("%s/%s", seq, *s);
            _cleanup_free_ char *b = kiln_xasprintf("%s/%s", par, *s);
            assert_int_equal(chmod(a, 02755), 0);
            assert_int_equal(chmod(b, 02755), 0);
            assert_int_equal(chown(a, (uid_t)-1, 4242), 0);
            assert_int_equal(chown(b, (uid_t)-1, 4242), 0);
        }
        kiln_unpack_opts_t uo;
        kiln_unpack_opts_init(&uo);
        uo.chown = no_chown ? 0 : -1;
        if (unpack_tar(ut, seq, &uo, &err) < 0)
            fail_msg("%s: in place: %s", name, err.msg);
        kiln_unpack_record_t rec = {0};
        uo.record = &rec;
        enum how got = MERGED;
        int r = unpack_tar(ut, lay, &uo, &err);
        if (r < 0) {
            if (err.code != EAGAIN)
                fail_msg("%s: unpack on its own: %s", name, err.msg);
            assert_non_null(strstr(err.msg, "applied onto them in place"));
            got = AT_UNPACK;
        } else if ((r = kiln_unpack_merge(par, lay, &rec, &err)) < 0) {
            fail_msg("%s: merge: %s", name, err.msg);
        } else if (r == 1) {
            got = AT_MERGE;
        }
        kiln_unpack_record_free(&rec);
        uo.record = NULL;
        if (got != MERGED && unpack_tar(ut, par, &uo, &err) < 0)
            fail_msg("%s: in place after the merge refused: %s", name, err.msg);
        _cleanup_free_ char *a = kiln_xstrdup(""), *b = kiln_xstrdup("");
        dump_tree(seq, "", &a);
        dump_tree(par, "", &b);
        if (strcmp(a, b) != 0)
            fail_msg("%s: in place:\n%s\nmerged:\n%s", name, a, b);
        /* (after the trees: a merge that differs says so first) */
        if (got != how)
            fail_msg("%s: applied %d, expected %d", name, got, how);
        _cleanup_free_ char *beside = kiln_xstrdup("");
        dump_tree(dir, "", &beside);
        struct dirent **names = NULL;
        int n = scandir(dir, &names, NULL, alphasort);
        assert_int_equal(n, 7); /* . .. layer lower.tar par seq upper.tar */
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        free(tree);
        tree = kiln_xasprintf("\n%s", b);
    }
    kiln_pathres_force_walk(false);
    return tree;
}

#define WH(p)                                                                                      \
    {                                                                                              \
        p, AE_IFREG, NULL, NULL, 0                                                                 \
    }

static const struct tentry base[] = {DIR_("usr"),
                                     DIR_("usr/lib"),
                                     REG("usr/lib/old", "o"),
                                     SYM("lib", "/usr/lib"),
                                     SYM("up", "../../.."),
                                     REG("gone", "g"),
                                     DIR_("opq"),
                                     REG("opq/a", "a"),
                                     DIR_("opq/sub"),
                                     REG("opq/sub/b", "b"),
                                     SYM("lnk", "usr"),
                                     DIR_("dir2file"),
                                     REG("dir2file/x", "x")};

/* An ordinary layer is merged: whiteouts and an opaque directory of the lower layer, a
 * directory entry replacing a link, a file replacing a directory, a new subtree, a hardlink
 * to a file of its own. */
static void test_merge(void **state)
{
    const struct tentry upper[] = {WH(".wh.gone"),        WH("opq/.wh..wh..opq"),
                                   REG("opq/c", "c"),     DIR_("lnk"),
                                   REG("lnk/in", "i"),    REG("dir2file", "now a file"),
                                   DIR_("new"),           REG("new/deep/f", "f"),
                                   WH("usr/lib/.wh.old"), {"hl", AE_IFREG, "new/deep/f", NULL, 1}};
    _cleanup_free_ char *t = check_merge("plain", base, N(base), upper, N(upper), MERGED);
    assert_null(strstr(t, "\ngone "));
    assert_null(strstr(t, "opq/sub"));
    assert_null(strstr(t, "usr/lib/old"));
    assert_non_null(strstr(t, "\nlnk/in "));
    assert_non_null(strstr(t, "f nlink=2"));
}

/* A directory the layer only implies that is a lower layer's link (absolute, or out of the
 * root by ..): in place its entries go where the link leads, inside the root; applied so. */
static void test_merge_lower_link(void **state)
{
    const struct tentry upper[] = {REG("lib/new.so", "n"), REG("up/top", "t")};
    _cleanup_free_ char *t = check_merge("lowerlink", base, N(base), upper, N(upper), AT_MERGE);
    assert_non_null(strstr(t, "\nusr/lib/new.so "));
    assert_non_null(strstr(t, "\ntop "));
    assert_non_null(strstr(t, "\nlib 120"));
}

/* `dir/x` before `dir/`: x goes where the tree's dir leads (a lower link: its target), then
 * the directory entry replaces the link. The usual order replaces the link first. */
static void test_merge_child_before_dir(void **state)
{
    const struct tentry lower[] = {DIR_("usr"), SYM("dir", "usr"), DIR_("real"),
                                   REG("real/old", "o")};
    const struct tentry late[] = {REG("dir/x", "x"), DIR_("dir"), REG("real/y", "y"), DIR_("real")};
    _cleanup_free_ char *t = check_merge("late", lower, N(lower), late, N(late), AT_UNPACK);
    assert_non_null(strstr(t, "\nusr/x "));
    assert_null(strstr(t, "\ndir/x "));
    assert_non_null(strstr(t, "\nreal/old "));
    const struct tentry usual[] = {DIR_("dir"), REG("dir/x", "x")};
    _cleanup_free_ char *u = check_merge("usual", lower, N(lower), usual, N(usual), MERGED);
    assert_non_null(strstr(u, "\ndir/x "));
    assert_null(strstr(u, "\nusr/x "));
}

/* A whiteout and an entry of the same name in one layer, both orders: the whiteout hides the
 * lower layers' entry only, the layer's own entry stays (a directory of its own keeps only its
 * own entries). */
static void test_merge_whiteout_same_layer(void **state)
{
    const struct tentry lower[] = {REG("foo", "lower"), DIR_("d"), REG("d/old", "o"), DIR_("d/sub"),
                                   REG("d/sub/deep", "o")};
    const struct tentry first[] = {WH(".wh.foo"), REG("foo", "mine"), WH(".wh.d"), DIR_("d"),
                                   REG("d/new", "n")};
    _cleanup_free_ char *a = check_merge("wh-first", lower, N(lower), first, N(first), MERGED);
    assert_non_null(strstr(a, "\nfoo 100644 mine "));
    assert_null(strstr(a, "d/old"));
    const struct tentry after[] = {REG("foo", "mine"), WH(".wh.foo")};
    _cleanup_free_ char *b = check_merge("wh-after", lower, N(lower), after, N(after), AT_UNPACK);
    assert_non_null(strstr(b, "\nfoo 100644 mine "));
    const struct tentry dir_after[] = {DIR_("d"), REG("d/new", "n"), REG("d/sub/mine", "m"),
                                       WH(".wh.d")};
    _cleanup_free_ char *c =
        check_merge("wh-dir-after", lower, N(lower), dir_after, N(dir_after), AT_UNPACK);
    assert_non_null(strstr(c, "\nd/new "));
    assert_non_null(strstr(c, "\nd/sub/mine "));
    assert_null(strstr(c, "d/old"));
    assert_null(strstr(c, "d/sub/deep"));
}

/* Directories implied through a link of the same layer: they are where the link leads, so a
 * lower link there is followed as in place (the merge says so), a lower directory there
 * keeps its own mode. */
static void test_merge_implied_through_own_link(void **state)
{
    const struct tentry lower[] = {DIR_("d"),
                                   SYM("d/sub", "/target"),
                                   DIR_("target"),
                                   DIR_("e"),
                                   {"e/sub", AE_IFDIR, NULL, NULL, 0},
                                   REG("e/sub/old", "o")};
    const struct tentry upper[] = {DIR_("d"), SYM("l", "d"), REG("l/sub/y", "y")};
    _cleanup_free_ char *t = check_merge("ownlink", lower, N(lower), upper, N(upper), AT_MERGE);
    assert_non_null(strstr(t, "\ntarget/y "));
    const struct tentry upper2[] = {DIR_("e"), SYM("m", "/e"), REG("m/sub/y", "y")};
    _cleanup_free_ char *u = check_merge("ownlink2", lower, N(lower), upper2, N(upper2), MERGED);
    assert_non_null(strstr(u, "\ne/sub 40644 \n"));
    assert_non_null(strstr(u, "\ne/sub/y "));
    assert_non_null(strstr(u, "\ne/sub/old "));
}

/* Opaque directories: after the directory's own entry over a lower link (merged: the link's
 * target untouched), after entries of the same layer in it (those stay), through a lower
 * link (in place: the link's target emptied). */
static void test_merge_opaque(void **state)
{
    const struct tentry lower[] = {
        DIR_("real"),      REG("real/keep", "k"), SYM("d", "real"),      DIR_("o"),
        REG("o/old", "o"), DIR_("o/sub"),         REG("o/sub/deep", "d")};
    const struct tentry own[] = {DIR_("d"), WH("d/.wh..wh..opq"), REG("d/new", "n"),
                                 DIR_("o"), WH("o/.wh..wh..opq"), REG("o/new", "n")};
    _cleanup_free_ char *a = check_merge("opq-own", lower, N(lower), own, N(own), MERGED);
    assert_non_null(strstr(a, "\nreal/keep "));
    assert_non_null(strstr(a, "\nd/new "));
    assert_null(strstr(a, "o/old"));
    const struct tentry after[] = {REG("o/new", "n"), REG("o/sub/mine", "m"), WH("o/.wh..wh..opq")};
    _cleanup_free_ char *b = check_merge("opq-after", lower, N(lower), after, N(after), AT_UNPACK);
    assert_non_null(strstr(b, "\no/new "));
    assert_non_null(strstr(b, "\no/sub/mine "));
    assert_null(strstr(b, "o/old"));
    assert_null(strstr(b, "o/sub/deep"));
    const struct tentry through[] = {WH("d/.wh..wh..opq"), REG("d/x", "x")};
    _cleanup_free_ char *c =
        check_merge("opq-link", lower, N(lower), through, N(through), AT_MERGE);
    assert_null(strstr(c, "real/keep"));
    assert_non_null(strstr(c, "\nreal/x "));
}

/* A layer that replaces its own directory by a file and back (or a file by a directory): in
 * place the lower layers' entries there are gone with the first replacement. */
static void test_merge_replace_own(void **state)
{
    const struct tentry lower[] = {DIR_("d"), REG("d/old", "o")};
    const struct tentry back[] = {DIR_("d"), REG("d/x", "x"), REG("d", "file"), DIR_("d"),
                                  REG("d/y", "y")};
    _cleanup_free_ char *a = check_merge("dir-file-dir", lower, N(lower), back, N(back), AT_UNPACK);
    assert_null(strstr(a, "d/old"));
    assert_null(strstr(a, "d/x"));
    assert_non_null(strstr(a, "\nd/y "));
    const struct tentry f2d[] = {REG("d", "file"), DIR_("d"), REG("d/y", "y")};
    _cleanup_free_ char *b = check_merge("file-dir", lower, N(lower), f2d, N(f2d), AT_UNPACK);
    assert_null(strstr(b, "d/old"));
    const struct tentry twice[] = {DIR_("d"), REG("d/y", "1"), DIR_("d"), REG("d/y", "2")};
    _cleanup_free_ char *c = check_merge("twice", lower, N(lower), twice, N(twice), MERGED);
    assert_non_null(strstr(c, "\nd/old "));
    assert_non_null(strstr(c, "\nd/y 100644 2 "));
}

/* The shape of real layers: a directory entry, then a whiteout in it. Where the lower layer
 * has a link of that name, the directory entry replaced it before the whiteout: nothing is
 * removed where the link led. */
static void test_merge_whiteout_under_own_dir(void **state)
{
    const struct tentry lower[] = {DIR_("real"), REG("real/foo", "f"), SYM("etc", "real")};
    const struct tentry upper[] = {DIR_("etc"), WH("etc/.wh.foo"), REG("etc/bar", "b")};
    _cleanup_free_ char *t = check_merge("real", lower, N(lower), upper, N(upper), MERGED);
    assert_non_null(strstr(t, "\nreal/foo "));
    assert_non_null(strstr(t, "\netc/bar "));
}

/* A directory the layer only implies, under a lower setgid directory: in place it takes the
 * setgid bit (applied so); one with an entry of its own gets that entry's mode (merged); not
 * chowned, entries made in a setgid directory take its group (applied in place). */
static void test_merge_setgid_parent(void **state)
{
    const struct tentry lower[] = {DIR_("s"), REG("s/old", "o")};
    const struct tentry imp[] = {REG("s/new/f", "f")};
    static const char *const sg[] = {"s", NULL};
    setgid_dirs = sg;
    _cleanup_free_ char *a = check_merge("setgid-implied", lower, N(lower), imp, N(imp), AT_MERGE);
    assert_non_null(strstr(a, "\ns/new 42755 "));
    const struct tentry own[] = {DIR_("s/new"), REG("s/new/f", "f")};
    _cleanup_free_ char *b = check_merge("setgid-own", lower, N(lower), own, N(own), MERGED);
    assert_non_null(strstr(b, "\ns/new 40644 "));
    /* without chown (a pull by another user), what is made in it takes its group */
    no_chown = 1;
    _cleanup_free_ char *c = check_merge("setgid-nochown", lower, N(lower), own, N(own), AT_MERGE);
    const char *files[] = {"seq/s/new", "par/s/new"};
    for (size_t i = 0; i < N(files); i++) {
        _cleanup_free_ char *p = kiln_xasprintf("%s/setgid-nochown-1/%s", tmpdir, files[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_gid, 4242);
    }
    no_chown = 0;
    setgid_dirs = NULL;
}

/* The overlay form (a build's lower dirs) hides the same way: a whiteout after the layer's own
 * file leaves it, one of the layer's own directory makes it opaque (the lower layers' entries
 * hidden, its own kept), one of anything else is a 0:0 device. */
static void test_overlay_form_same_layer(void **state)
{
    const struct tentry layer[] = {REG("foo", "mine"), WH(".wh.foo"), DIR_("d"),
                                   REG("d/x", "x"),    WH(".wh.d"),   REG("e/y", "y"),
                                   WH(".wh.e"),        WH(".wh.bar")};
    _cleanup_free_ char *dir = kiln_xasprintf("%s/overlay", tmpdir);
    _cleanup_free_ char *tar = kiln_xasprintf("%s/overlay.tar", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    make_tar(tar, layer, N(layer));
    kiln_unpack_opts_t uo;
    kiln_unpack_opts_init(&uo);
    uo.overlay_form = 1;
    kiln_error_t err = {0};
    if (unpack_tar(tar, dir, &uo, &err) < 0)
        fail_msg("unpack: %s", err.msg);
    char v[4];
    struct stat st;
    const char *opaque[] = {"d", "e"};
    for (size_t i = 0; i < N(opaque); i++) {
        _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, opaque[i]);
        assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
    }
    _cleanup_free_ char *foo = kiln_xasprintf("%s/foo", dir);
    _cleanup_free_ char *x = kiln_xasprintf("%s/d/x", dir);
    _cleanup_free_ char *y = kiln_xasprintf("%s/e/y", dir);
    _cleanup_free_ char *bar = kiln_xasprintf("%s/bar", dir);
    assert_int_equal(lstat(foo, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(access(x, F_OK), 0);
    assert_int_equal(access(y, F_OK), 0);
    assert_int_equal(lstat(bar, &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
}

/* An opaque directory and a whiteout over trees 400 levels deep, unpacked under 128 open
 * files: the removal walks keep a bounded number of fds (they kept two a level). */
static void test_merge_deep_bounded_fds(void **state)
{
    char chain[400 * 2] = "d";
    for (int i = 1; i < 400; i++)
        strcat(chain, "/d"); /* "d/d/.../d" */
    _cleanup_free_ char *old = kiln_xasprintf("o/%s/old", chain);
    _cleanup_free_ char *new = kiln_xasprintf("o/%s/new", chain);
    _cleanup_free_ char *y = kiln_xasprintf("k/%s/y", chain);
    _cleanup_free_ char *why = kiln_xasprintf("k/%s/.wh.y", chain);
    _cleanup_free_ char *z = kiln_xasprintf("k/%s/z", chain);
    const struct tentry lower[] = {REG(old, "o"), REG(y, "y")};
    const struct tentry upper[] = {REG(new, "n"), WH("o/.wh..wh..opq"), WH(why), REG(z, "z")};
    unpack_fd_limit = 128;
    _cleanup_free_ char *t = check_merge("deep", lower, N(lower), upper, N(upper), AT_UNPACK);
    unpack_fd_limit = 0;
    _cleanup_free_ char *want_new = kiln_xasprintf("\n%s ", new);
    _cleanup_free_ char *want_z = kiln_xasprintf("\n%s ", z);
    assert_non_null(strstr(t, want_new));
    assert_non_null(strstr(t, want_z));
    assert_null(strstr(t, "/old "));
    assert_null(strstr(t, "/y "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_lower_link),
        cmocka_unit_test(test_merge_child_before_dir),
        cmocka_unit_test(test_merge_whiteout_same_layer),
        cmocka_unit_test(test_merge_implied_through_own_link),
        cmocka_unit_test(test_merge_opaque),
        cmocka_unit_test(test_merge_replace_own),
        cmocka_unit_test(test_merge_whiteout_under_own_dir),
        cmocka_unit_test(test_merge_setgid_parent),
        cmocka_unit_test(test_overlay_form_same_layer),
        cmocka_unit_test(test_merge_deep_bounded_fds),
    };
    return cmocka_run_group_tests_name("unpack_merge", tests, setup, teardown);
}
