/* Unit tests for utils/pathres: a table of hostile paths resolved inside a
 * root, through openat2 and through the fallback walk (both must agree and
 * neither may leave the root). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "pathres_tree.h"
#include "utils/cleanup.h"
#include "utils/error.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

static char *base;
static int rootfd = -1;

typedef struct {
    const char *path;
    unsigned flags;
    const char *expect; /* path under root it must name ("" the root), NULL: fails */
    int err;            /* errno when it fails */
} pcase_t;

static const pcase_t cases[] = {
    {"file", 0, "file", 0},
    {"/file", 0, "file", 0},
    {"dir//sub///f", 0, "dir/sub/f", 0},
    {"./dir/./sub/f", 0, "dir/sub/f", 0},
    {"abs/sub/f", 0, "dir/sub/f", 0},
    {"rel/f", 0, "dir/sub/f", 0},
    {"up/sub/f", 0, "dir/sub/f", 0},
    {"hostabs", 0, "etc/passwd", 0},
    {"uppasswd", 0, "etc/passwd", 0},
    {"../../../file", 0, "file", 0},
    {"/../../etc/passwd", 0, "etc/passwd", 0},
    {"dir/sub/../../../../file", 0, "file", 0},
    {"dir/sub/back", 0, "file", 0},
    {"dir/sub/rootlink/file", 0, "file", 0},
    {"dir/sub/rootlink/../../etc/passwd", 0, "etc/passwd", 0},
    {"abs/sub/../../file", 0, "file", 0},
    {"filelink", 0, "file", 0},
    {"chain10", 0, "file", 0},
    {"dir/", 0, "dir", 0},
    {"abs/", 0, "dir", 0},
    {"abs/", KILN_PATHRES_NOFOLLOW, "dir", 0},
    {"abs", KILN_PATHRES_NOFOLLOW, "abs", 0},
    {"dir/sub/back", KILN_PATHRES_NOFOLLOW, "dir/sub/back", 0},
    {"", 0, "", 0},
    {"/", 0, "", 0},
    {".", 0, "", 0},
    {"..", 0, "", 0},
    {"fifo", 0, "fifo", 0},
    {"loop1", 0, NULL, ELOOP},
    {"self/x", 0, NULL, ELOOP},
    {"chain0", 0, NULL, ELOOP},
    {"outside", 0, NULL, ELOOP},       /* "../outside" is itself once clamped */
    {"outdir/secret", 0, NULL, ELOOP}, /* same */
    {"hostout", 0, NULL, ENOENT},      /* the host path, looked up in the root */
    {"hostoutdir/secret", 0, NULL, ENOENT},
    {"filelink/x", 0, NULL, ENOTDIR},
    {"file/", 0, NULL, ENOTDIR},
    {"dangling", 0, NULL, ENOENT},
    {"procself/etc/passwd", 0, NULL, ENOENT},
    {"missing/x", 0, NULL, ENOENT},
};

static int setup(void **state)
{
    kiln_error_t err = {0};
    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-pathres-", &base, &err), 0);
    assert_int_equal(pathres_make_tree(base), 0);
    {
        _cleanup_free_ char *r = kiln_xasprintf("%s/root", base);
        assert_int_equal(kiln_pathres_open_root(r, &rootfd, &err), 0);
    }
    return 0;
}

static int teardown(void **state)
{
    close(rootfd);
    kiln_fs_rm_rf(base, NULL);
    free(base);
    kiln_pathres_force_walk(false);
    return 0;
}

/* Whether fd is the file at root/rel (same device and inode, lstat). */
static bool same_file(int fd, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/root/%s", base, rel);
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static void run_table(bool walk_only)
{
    kiln_pathres_force_walk(walk_only);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const pcase_t *c = &cases[i];
        kiln_error_t err = {0};
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *canon = NULL;
        int r = kiln_pathres_open(rootfd, c->path, O_PATH, 0, c->flags, &fd, &err);
        print_message("# %s %s\n", walk_only ? "walk" : "openat2", c->path);
        if (c->expect == NULL) {
            assert_int_equal(r, -1);
            assert_int_equal(err.code, c->err);
            assert_non_null(strstr(err.msg, c->path));
            assert_int_equal(kiln_pathres_resolve(rootfd, c->path, c->flags, &canon, &err), -1);
            continue;
        }
        assert_int_equal(r, 0);
        assert_true(same_file(fd, c->expect));
        assert_int_equal(kiln_pathres_resolve(rootfd, c->path, c->flags, &canon, &err), 0);
        {
            size_t n = strlen(c->path);
            bool trail = n > 1 && c->path[n - 1] == '/';
            _cleanup_free_ char *want =
                kiln_xasprintf("/%s%s", c->expect, trail && c->expect[0] ? "/" : "");
            assert_string_equal(canon, want);
        }
    }
}

static void test_table_openat2(void **state)
{
    run_table(false);
}

static void test_table_walk(void **state)
{
    run_table(true);
}

/* /proc/self/root and friends are magic links: refused (the host's / is
 * the root they lead to). */
static void test_magic_links(void **state)
{
    static const char *paths[] = {"proc/self/root/etc/passwd", "proc/self/exe", "proc/self/cwd/x",
                                  "/proc/thread-self/root"};
    _cleanup_close_ int slash = -1;
    kiln_error_t err = {0};
    assert_int_equal(kiln_pathres_open_root("/", &slash, &err), 0);
    for (int w = 0; w < 2; w++) {
        kiln_pathres_force_walk(w);
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
            int fd = -1;
            assert_int_equal(kiln_pathres_open(slash, paths[i], O_PATH, 0, 0, &fd, &err), -1);
            assert_int_equal(err.code, ELOOP);
        }
    }
    kiln_pathres_force_walk(false);
}

static void test_long_paths(void **state)
{
    _cleanup_free_ char *p = kiln_xzalloc(3 * 4096);
    kiln_error_t err = {0};
    int fd = -1;
    for (size_t i = 0; i + 2 < 3 * 4096 - 1; i += 2)
        memcpy(p + i, "./", 2);
    for (int w = 0; w < 2; w++) {
        kiln_pathres_force_walk(w);
        assert_int_equal(kiln_pathres_open(rootfd, p, O_PATH, 0, 0, &fd, &err), -1);
        assert_int_equal(err.code, ENAMETOOLONG);
    }
    /* 1000 components of "dir/.." then "file": long but legal (links would
     * pass the 40-link limit) */
    memset(p, 0, 3 * 4096);
    for (int i = 0; i < 500; i++)
        strcat(p, "dir/../");
    strcat(p, "file");
    for (int w = 0; w < 2; w++) {
        kiln_pathres_force_walk(w);
        assert_int_equal(kiln_pathres_open(rootfd, p, O_PATH, 0, 0, &fd, &err), 0);
        assert_true(same_file(fd, "file"));
        close(fd);
    }
    kiln_pathres_force_walk(false);
}

/* O_CREAT through links lands inside the root; mkdir -p too. */
static void test_create_and_mkdir(void **state)
{
    kiln_error_t err = {0};
    for (int w = 0; w < 2; w++) {
        _cleanup_free_ char *made = NULL;
        _cleanup_free_ char *dn = kiln_xasprintf("abs/made%d/deeper", w);
        _cleanup_free_ char *fn = kiln_xasprintf("hostoutdir/new%d", w);
        _cleanup_free_ char *outp = kiln_xasprintf("%s/outdir/new%d", base, w);
        _cleanup_free_ char *inp = kiln_xasprintf("%s/root%s/outdir/new%d", base, base, w);
        int fd = -1;
        kiln_pathres_force_walk(w);
        assert_int_equal(kiln_pathres_mkdir_p(rootfd, dn, 0755, &fd, &err), 0);
        made = kiln_xasprintf("dir/made%d/deeper", w);
        assert_true(same_file(fd, made));
        close(fd);
        /* a link to the host directory: followed inside the root */
        assert_int_equal(kiln_pathres_mkdir_p(rootfd, "hostoutdir", 0755, NULL, &err), 0);
        assert_int_equal(kiln_pathres_open(rootfd, fn, O_WRONLY | O_CREAT, 0644, 0, &fd, &err), 0);
        close(fd);
        assert_int_equal(access(outp, F_OK), -1);
        assert_int_equal(access(inp, F_OK), 0);
        /* through a file: ENOTDIR */
        assert_int_equal(kiln_pathres_mkdir_p(rootfd, "filelink/x", 0755, NULL, &err), -1);
        assert_int_equal(err.code, ENOTDIR);
    }
    kiln_pathres_force_walk(false);
}

static void test_resolve_missing(void **state)
{
    kiln_error_t err = {0};
    char *s = NULL;
    assert_int_equal(kiln_pathres_resolve(rootfd, "abs/new/x/", KILN_PATHRES_MISSING_OK, &s, &err),
                     0);
    assert_string_equal(s, "/dir/new/x/");
    free(s);
    assert_int_equal(kiln_pathres_resolve(rootfd, "dangling", KILN_PATHRES_MISSING_OK, &s, &err),
                     0);
    assert_string_equal(s, "/nowhere/new");
    free(s);
    assert_int_equal(
        kiln_pathres_resolve(rootfd, "nope/../../../x", KILN_PATHRES_MISSING_OK, &s, &err), 0);
    assert_string_equal(s, "/x");
    free(s);
    assert_int_equal(kiln_pathres_resolve(rootfd, "nope/x", 0, &s, &err), -1);
    assert_int_equal(err.code, ENOENT);
}

/* read_file: links stay in the root; a FIFO is refused, never waited on. */
static void test_read_file(void **state)
{
    kiln_error_t err = {0};
    _cleanup_free_ char *np = kiln_xasprintf("%s/root/null", base);
    bool devnode = mknod(np, S_IFCHR | 0666, makedev(1, 3)) == 0; /* needs root */
    for (int w = 0; w < 2; w++) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        char *t2 = NULL;
        kiln_pathres_force_walk(w);
        assert_int_equal(kiln_pathres_read_file(rootfd, "hostabs", 100, &text, &len, &err), 0);
        assert_string_equal(text, "in-passwd");
        assert_int_equal(kiln_pathres_read_file(rootfd, "fifo", 100, &t2, &len, &err), -1);
        assert_int_equal(err.code, EINVAL);
        assert_non_null(strstr(err.msg, "not a regular file"));
        if (devnode) { /* a device is refused before it is opened */
            assert_int_equal(kiln_pathres_read_file(rootfd, "null", 100, &t2, &len, &err), -1);
            assert_int_equal(err.code, EINVAL);
        }
        assert_int_equal(kiln_pathres_read_file(rootfd, "hostout", 100, &t2, &len, &err), -1);
        assert_null(strstr(err.msg, PATHRES_OUTSIDE_CONTENT));
        assert_int_equal(kiln_pathres_read_file(rootfd, "file", 3, &t2, &len, &err), -1);
        assert_int_equal(err.code, EFBIG);
    }
    kiln_pathres_force_walk(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_openat2),    cmocka_unit_test(test_table_walk),
        cmocka_unit_test(test_magic_links),      cmocka_unit_test(test_long_paths),
        cmocka_unit_test(test_create_and_mkdir), cmocka_unit_test(test_resolve_missing),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
