/* Unit tests for oci/unpack_pool: a layer unpacked into an empty directory (its small files
 * made by writer threads) gives the same tree as the reader alone (a directory that is not
 * empty), for the shapes where a queued file meets a later entry: the same path again, a
 * directory or a child where it is, a hardlink to it, a whiteout of it, a path to it through
 * the layer's own symlink. A writer's failure fails the unpack, naming the entry. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "oci/unpack.h"
#include "oci/unpack_pool.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#include "layer_tar.h"

static char *tmpdir;

static int setup(void **state)
{
    kiln_error_t err = {0};
    return kiln_fs_mkdtemp("/tmp", "kiln-test-pool-", &tmpdir, &err);
}

static int teardown(void **state)
{
    kiln_fs_rm_rf(tmpdir, NULL);
    free(tmpdir);
    return 0;
}

static int unpack_tar(const char *tar, const char *root, kiln_error_t *err)
{
    _cleanup_close_ int fd = open(tar, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    return kiln_layer_unpack(fd, root, NULL, NULL, err);
}

/* Every regular file under the tree has the tar's mtime (directories the tar does not list
 * have the time they were made). */
static int bad_mtimes;
static int check_mtime(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (S_ISREG(st->st_mode) && st->st_mtime != 1700000000) {
        print_error("mtime %ld: %s\n", (long)st->st_mtime, path);
        bad_mtimes++;
    }
    return 0;
}

/* Unpacks `n` entries into an empty directory (the pool) and into one holding a marker file
 * (the reader alone), `rounds` times: the same result (both fail, or the same tree). Returns
 * the tree's listing, or the error of the empty directory's unpack. */
static char *check_same(const char *name, const struct tentry *e, size_t n, int rounds)
{
    _cleanup_free_ char *tar = kiln_xasprintf("%s/%s.tar", tmpdir, name);
    make_tar(tar, e, n);
    char *first = NULL;
    for (int r = 0; r < rounds; r++) {
        _cleanup_free_ char *pool = kiln_xasprintf("%s/%s-pool-%d", tmpdir, name, r);
        _cleanup_free_ char *alone = kiln_xasprintf("%s/%s-alone-%d", tmpdir, name, r);
        _cleanup_free_ char *marker = kiln_xasprintf("%s/marker", alone);
        assert_int_equal(mkdir(pool, 0755), 0);
        assert_int_equal(mkdir(alone, 0755), 0);
        kiln_error_t err = {0};
        assert_int_equal(kiln_fs_write_file_atomic(marker, "m", 1, 0644, &err), 0);
        kiln_error_t pe = {0}, ae = {0};
        int pr = unpack_tar(tar, pool, &pe), ar = unpack_tar(tar, alone, &ae);
        if (pr != ar)
            print_error("%s: pool %d (%s), reader alone %d (%s)\n", name, pr, pe.msg, ar, ae.msg);
        assert_int_equal(pr, ar);
        char *a = kiln_xstrdup(""), *b = kiln_xstrdup("");
        if (pr < 0) { /* the same error, whichever directory */
            const char *pm = strstr(pe.msg, "layer entry"), *am = strstr(ae.msg, "layer entry");
            assert_non_null(pm);
            assert_non_null(am);
            assert_string_equal(pm, am);
            free(a);
            a = kiln_xstrdup(pm);
        } else {
            assert_int_equal(unlink(marker), 0);
            dump_tree(pool, "", &a);
            dump_tree(alone, "", &b);
            if (strcmp(a, b) != 0)
                print_error("%s:\npool:\n%s\nreader alone:\n%s\n", name, a, b);
            assert_string_equal(a, b);
            bad_mtimes = 0;
            assert_int_equal(nftw(pool, check_mtime, 16, FTW_PHYS), 0);
            assert_int_equal(bad_mtimes, 0);
        }
        free(b);
        if (first == NULL)
            first = a;
        else {
            assert_string_equal(first, a);
            free(a);
        }
    }
    return first;
}

#define HARD(p, t)                                                                                 \
    {                                                                                              \
        p, AE_IFREG, t, NULL, 1                                                                    \
    }

/* Many small files in many directories, as a node_modules tree: what the pool is for. */
static void test_pool_many_files(void **state)
{
    enum { DIRS = 40, FILES = 25 };
    struct tentry *e = kiln_xzalloc(DIRS * (FILES + 1) * sizeof(*e));
    char **names = kiln_xzalloc(DIRS * (FILES + 1) * sizeof(*names));
    size_t n = 0;
    for (int d = 0; d < DIRS; d++) {
        names[n] = kiln_xasprintf("m/p%02d", d);
        e[n] = (struct tentry)DIR_(names[n]);
        n++;
        for (int f = 0; f < FILES; f++) {
            names[n] = kiln_xasprintf("m/p%02d/f%02d.js", d, f);
            e[n] = (struct tentry)REG(names[n], names[n]);
            n++;
        }
    }
    _cleanup_free_ char *tree = check_same("many", e, n, 3);
    assert_non_null(strstr(tree, "\nm/p39/f24.js 100644 m/p39/f24.js nlink=1\n"));
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(e);
}

/* A queued file met by a later entry of the layer: each gives what the reader alone gives. */
static void test_pool_meets_later_entries(void **state)
{
    /* the same path twice: the later wins */
    const struct tentry twice[] = {DIR_("d"), REG("d/a", "1"), REG("d/b", "b"), REG("d/a", "2")};
    _cleanup_free_ char *t1 = check_same("twice", twice, N(twice), 3);
    assert_non_null(strstr(t1, "\nd/a 100644 2 "));
    /* a file replaced by a directory, and the other way */
    const struct tentry f2d[] = {REG("x", "file"), DIR_("x"),       REG("x/y", "y"),
                                 DIR_("z"),        REG("z/w", "w"), REG("z", "now a file")};
    _cleanup_free_ char *t2 = check_same("f2d", f2d, N(f2d), 3);
    assert_non_null(strstr(t2, "\nx/y 100644 y "));
    assert_non_null(strstr(t2, "\nz 100644 now a file "));
    /* a hardlink to a file just queued */
    const struct tentry hard[] = {REG("h/a", "data"), HARD("h/b", "h/a"), REG("h/c", "c")};
    _cleanup_free_ char *t3 = check_same("hard", hard, N(hard), 3);
    assert_non_null(strstr(t3, "\nh/b 100644 data nlink=2\n"));
    /* a whiteout of a file of the same layer, made just before */
    const struct tentry wh[] = {REG("w/gone", "g"), REG("w/kept", "k"), REG("w/.wh.gone", NULL)};
    _cleanup_free_ char *t4 = check_same("whiteout", wh, N(wh), 3);
    assert_non_null(strstr(t4, "\nw/kept "));
    /* the same file through the layer's own symlink to its directory */
    const struct tentry link[] = {DIR_("real"), REG("real/f", "first"), SYM("alias", "real"),
                                  REG("alias/f", "second"), REG("alias/g", "g")};
    _cleanup_free_ char *t5 = check_same("through-link", link, N(link), 3);
    assert_non_null(strstr(t5, "\nreal/f 100644 second "));
    assert_non_null(strstr(t5, "\nreal/g 100644 g "));
    /* a child under a path queued as a file: both ways an error */
    const struct tentry child[] = {REG("p", "file"), REG("p/q", "under a file")};
    _cleanup_free_ char *t6 = check_same("under-file", child, N(child), 3);
    assert_non_null(strstr(t6, "layer entry 'p/q'"));
    /* a directory entry after its files (its mtime set at the end) */
    const struct tentry late[] = {REG("late/a", "a"), REG("late/b", "b"), DIR_("late")};
    _cleanup_free_ char *t7 = check_same("dir-after", late, N(late), 3);
    assert_non_null(strstr(t7, "\nlate/b 100644 b "));
}

/* A writer's failure (a file over RLIMIT_FSIZE) fails the unpack naming a layer entry, and
 * neither hangs nor leaks; the pool refuses files once it failed. */
static void test_pool_failure(void **state)
{
    enum { FILES = 200 };
    static char big[2048];
    memset(big, 'x', sizeof(big) - 1);
    struct tentry e[FILES];
    char *names[FILES];
    for (int i = 0; i < FILES; i++) {
        names[i] = kiln_xasprintf("f/%03d", i);
        e[i] = (struct tentry)REG(names[i], big);
    }
    _cleanup_free_ char *tar = kiln_xasprintf("%s/fail.tar", tmpdir);
    make_tar(tar, e, FILES);
    _cleanup_free_ char *root = kiln_xasprintf("%s/fail", tmpdir);
    assert_int_equal(mkdir(root, 0755), 0);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    low = old;
    low.rlim_cur = 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    _cleanup_close_ int fd = open(tar, O_RDONLY | O_CLOEXEC); /* (the tar is over the limit) */
    assert_true(fd >= 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
    kiln_error_t err = {0};
    int r = kiln_layer_unpack(fd, root, NULL, NULL, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(r, -1);
    assert_non_null(strstr(err.msg, "layer entry 'f/"));
    assert_int_equal(err.code, EFBIG);
    for (int i = 0; i < FILES; i++)
        free(names[i]);

    /* the pool itself: a failed file, then no more taken; a drain reports it */
    kiln_unpack_pool_t *p = kiln_unpack_pool_new(2);
    assert_non_null(p);
    _cleanup_close_ int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    kiln_unpack_pool_file_t f = {
        .name = "f", .entry = "exists-already", .made = 0644, .chown = -1, .len = 1};
    void *b = kiln_unpack_pool_reserve(p, &f, &err);
    assert_non_null(b);
    memcpy(b, "z", 1);
    assert_int_equal(kiln_unpack_pool_add(p, dfd, &err), 0); /* "f" is a directory there */
    assert_int_equal(kiln_unpack_pool_drain(p, &err), -1);
    assert_non_null(strstr(err.msg, "layer entry 'exists-already': creating the file"));
    assert_null(kiln_unpack_pool_reserve(p, &f, &err));
    kiln_unpack_pool_free(p);
    assert_null(kiln_unpack_pool_new(0));
    kiln_unpack_pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_many_files),
        cmocka_unit_test(test_pool_meets_later_entries),
        cmocka_unit_test(test_pool_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
