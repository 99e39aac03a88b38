/* Unit tests for engine/run_trash (spent work dirs removed by a thread) and sandbox/netns
 * (a namespace with a socket left in it is not handed out again). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/run_trash.h"
#include "sandbox/netns.h"
#include "utils/fs.h"

static void make_tree(const char *dir)
{
    char p[512];
    int fd;

    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof(p), "%s/incompat", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/incompat/volatile", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/incompat/volatile/dirty", dir);
    fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
}

/* Trees moved in are gone from where they were at once, and from the trash once freed;
 * a missing dir is not an error; a move across to a missing parent fails for the caller. */
static void test_trash(void **state)
{
    char base[] = "/tmp/kiln-trash-XXXXXX", src[256], dst[256];
    kiln_run_trash_t *t = kiln_run_trash_new();
    struct stat st;

    (void)state;
    assert_non_null(mkdtemp(base));
    for (int i = 0; i < 20; i++) {
        snprintf(src, sizeof(src), "%s/work-%d", base, i);
        snprintf(dst, sizeof(dst), "%s/trash-%d", base, i);
        make_tree(src);
        assert_int_equal(kiln_run_trash_move(t, src, dst), 0);
        assert_int_equal(stat(src, &st), -1);
    }
    snprintf(src, sizeof(src), "%s/never-there", base);
    assert_int_equal(kiln_run_trash_move(t, src, dst), 0);
    snprintf(src, sizeof(src), "%s/work-x", base);
    make_tree(src);
    snprintf(dst, sizeof(dst), "%s/no/such/parent", base);
    assert_int_equal(kiln_run_trash_move(t, src, dst), -1);
    assert_int_equal(kiln_fs_rm_rf(src, NULL), 0);
    kiln_run_trash_free(t);
    kiln_run_trash_free(NULL);
    for (int i = 0; i < 20; i++) {
        snprintf(dst, sizeof(dst), "%s/trash-%d", base, i);
        assert_int_equal(stat(dst, &st), -1);
    }
    assert_int_equal(rmdir(base), 0); /* empty */
}

/* A pooled namespace is reused while clean, and not while a socket made in it lives. */
static void test_netns_pool(void **state)
{
    kiln_netns_pool_t *p = kiln_netns_pool_new();
    kiln_error_t err = {0};
    int a, b, c, host, s, slot;
    struct stat sa, sb, sc, sh;

    (void)state;
    if (geteuid() != 0) {
        kiln_netns_pool_free(p);
        skip();
    }
    assert_int_equal(stat("/proc/thread-self/ns/net", &sh), 0);
    slot = kiln_netns_take(p, &a, &err);
    assert_true(slot >= 0);
    assert_int_equal(fstat(a, &sa), 0);
    assert_true(sa.st_ino != sh.st_ino);
    kiln_netns_give(p, slot);
    /* this thread is back in its own namespace */
    assert_int_equal(stat("/proc/thread-self/ns/net", &sc), 0);
    assert_int_equal(sc.st_ino, sh.st_ino);
    slot = kiln_netns_take(p, &b, &err);
    assert_true(slot >= 0);
    assert_int_equal(fstat(b, &sb), 0);
    assert_int_equal(sb.st_ino, sa.st_ino); /* clean: the same one */
    /* a socket made inside it and kept open */
    assert_int_equal(kiln_netns_enter(b, &host), 0);
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    kiln_netns_leave(host);
    kiln_netns_give(p, slot);
    slot = kiln_netns_take(p, &c, &err);
    assert_true(slot >= 0);
    assert_int_equal(fstat(c, &sc), 0);
    assert_true(sc.st_ino != sa.st_ino); /* not handed out while the socket lives */
    kiln_netns_give(p, slot);
    close(s);
    kiln_netns_pool_free(p);
    kiln_netns_pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trash),
        cmocka_unit_test(test_netns_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
