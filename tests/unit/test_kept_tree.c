/* job/kept_tree: a kept work tree's lock shared by its builds and gc. gc moves an unused tree
 * away only under its lock; a build that opened the lock file before gc moved it finds out
 * once it holds the lock (the race kiln gc --max-age had: its check and its delete were
 * apart, a build could take the tree in between); held and freshly used trees stay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "job/kept_tree.h"
#include "tmpdir.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Makes wt/NAME a tree last used `age` seconds ago (its lock's mtime). */
static void make_tree(const char *wt, const char *name, time_t age)
{
    _cleanup_free_ char *dir = kiln_xasprintf("%s/%s", wt, name);
    _cleanup_free_ char *lock = kiln_xasprintf("%s/lock", dir);
    struct timespec ts[2] = {{.tv_sec = time(NULL) - age}, {.tv_sec = time(NULL) - age}};
    _cleanup_free_ char *tree = kiln_xasprintf("%s/tree", dir);
    int fd;

    assert_int_equal(kiln_fs_mkdir_p(tree, 0755, NULL), 0);
    assert_int_equal(tmpdir_put(dir, "tree/file", "content\n", 0644), 0);
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

static bool exists(const char *wt, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", wt, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* The race: a build opens the lock file, gc claims the tree (moves it away under the lock),
 * then the build locks the file it opened: it must not take the moved tree for its own. */
static void test_claim_race(void **state)
{
    _cleanup_free_ char *wt = tmpdir_make("kept");
    _cleanup_free_ char *dir = kiln_xasprintf("%s/t1", wt);
    _cleanup_free_ char *lock = kiln_xasprintf("%s/lock", dir);
    _cleanup_free_ char *gone = NULL;
    _cleanup_close_ int wtfd = open(wt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int early = -1, fd = -1;
    kiln_error_t err = {0};

    (void)state;
    make_tree(wt, "t1", 7200);
    early = open(lock, O_RDWR | O_CLOEXEC); /* the build, between its open and its lock */
    assert_true(early >= 0);
    assert_int_equal(kiln_kept_tree_claim(wtfd, "t1", 3600, &gone, &err), 1);
    assert_string_equal(gone, ".gc-t1");
    assert_false(exists(wt, "t1"));
    assert_true(exists(wt, ".gc-t1/tree/file"));
    /* without the identity check the build held the moved tree's lock: 0 */
    assert_int_equal(kiln_kept_tree_hold(early, lock, &err), 2);
    /* it takes the lock of a new tree instead */
    assert_int_equal(kiln_kept_tree_lock(dir, &fd, &err), 0);
    assert_true(exists(wt, "t1/lock"));
    /* while that build holds it, gc keeps it whatever its age */
    {
        struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
        _cleanup_free_ char *g2 = NULL;
        assert_int_equal(futimens(fd, old), 0);
        assert_int_equal(kiln_kept_tree_claim(wtfd, "t1", 3600, &g2, &err), 0);
        assert_null(g2);
        assert_true(exists(wt, "t1/lock"));
        /* and a second build finds it held */
        int other = -1;
        assert_int_equal(kiln_kept_tree_lock(dir, &other, &err), 1);
        assert_int_equal(other, -1);
    }
    kiln_fs_rm_rf(wt, NULL);
}

/* A tree used since gc listed it (its lock's mtime new, checked under the lock) stays; an old
 * unheld one goes, even over a .gc- leftover of an interrupted gc; a dry run moves nothing. */
static void test_claim_age(void **state)
{
    _cleanup_free_ char *wt = tmpdir_make("kept");
    _cleanup_close_ int wtfd = open(wt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *gone = NULL;
    kiln_error_t err = {0};

    (void)state;
    make_tree(wt, "fresh", 10);
    make_tree(wt, "old", 7200);
    {
        _cleanup_free_ char *left = kiln_xasprintf("%s/.gc-old/tree", wt);
        assert_int_equal(kiln_fs_mkdir_p(left, 0755, NULL), 0);
        assert_int_equal(tmpdir_put(wt, ".gc-old/tree/leftover", "x\n", 0644), 0);
    }
    assert_int_equal(kiln_kept_tree_claim(wtfd, "fresh", 3600, &gone, &err), 0);
    assert_null(gone);
    assert_true(exists(wt, "fresh/tree/file"));
    assert_int_equal(kiln_kept_tree_claim(wtfd, "old", 3600, NULL, &err), 1);
    assert_true(exists(wt, "old/tree/file")); /* dry run */
    assert_int_equal(kiln_kept_tree_claim(wtfd, "old", 3600, &gone, &err), 1);
    assert_false(exists(wt, "old"));
    assert_true(exists(wt, ".gc-old/tree/file"));
    assert_false(exists(wt, ".gc-old/tree/leftover"));
    kiln_fs_rm_rf(wt, NULL);
}

/* Another process holding the lock (a build in a child) keeps the tree from gc. */
static void test_claim_held_by_process(void **state)
{
    _cleanup_free_ char *wt = tmpdir_make("kept");
    _cleanup_free_ char *dir = kiln_xasprintf("%s/t", wt);
    _cleanup_close_ int wtfd = open(wt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *gone = NULL;
    kiln_error_t err = {0};
    int ready[2], done[2], status;
    pid_t pid;
    char c;

    (void)state;
    make_tree(wt, "t", 7200);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(done), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = -1;
        kiln_error_t e = {0};
        struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
        if (kiln_kept_tree_lock(dir, &fd, &e) != 0 || futimens(fd, old) < 0)
            _exit(1);
        (void)!write(ready[1], "r", 1);
        (void)!read(done[0], &c, 1);
        _exit(0);
    }
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(kiln_kept_tree_claim(wtfd, "t", 3600, &gone, &err), 0);
    assert_true(exists(wt, "t/tree/file"));
    assert_int_equal(write(done[1], "d", 1), 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(status, 0);
    /* released: now it goes */
    assert_int_equal(kiln_kept_tree_claim(wtfd, "t", 3600, &gone, &err), 1);
    close(ready[0]);
    close(ready[1]);
    close(done[0]);
    close(done[1]);
    kiln_fs_rm_rf(wt, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_race),
        cmocka_unit_test(test_claim_age),
        cmocka_unit_test(test_claim_held_by_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
