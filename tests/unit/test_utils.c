/* Unit tests for utils/: errors, buffers, filesystem helpers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/error.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/strset.h"

static void test_error_set_and_prefix(void **state)
{
    kiln_error_t err = {0};
    assert_false(kiln_error_is_set(&err));
    assert_int_equal(kiln_error_set(&err, ENOENT, "open %s", "/x"), -1);
    assert_string_equal(err.msg, "open /x: No such file or directory");
    assert_int_equal(err.code, ENOENT);
    kiln_error_prefix(&err, "layer %d", 3);
    assert_string_equal(err.msg, "layer 3: open /x: No such file or directory");
    assert_int_equal(kiln_error_set(NULL, 0, "ignored"), -1);
}

static void test_buf_cap(void **state)
{
    kiln_buf_t b;
    kiln_error_t err = {0};
    kiln_buf_init(&b, 8);
    assert_int_equal(kiln_buf_append(&b, "abcd", 4, &err), 0);
    assert_int_equal(kiln_buf_append(&b, "efgh", 4, &err), 0);
    assert_int_equal(kiln_buf_append(&b, "i", 1, &err), -1);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "abcdefgh");
    kiln_buf_free(&b);
}

static void test_fs_roundtrip(void **state)
{
    kiln_error_t err = {0};
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *data = NULL;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *deep = NULL;
    size_t len = 0;

    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-", &dir, &err), 0);
    deep = kiln_xasprintf("%s/a/b/c", dir);
    assert_int_equal(kiln_fs_mkdir_p(deep, 0755, &err), 0);
    path = kiln_xasprintf("%s/a/b/c/file", dir);
    assert_int_equal(kiln_fs_write_file_atomic(path, "hello", 5, 0644, &err), 0);
    assert_int_equal(kiln_fs_read_file(path, 100, &data, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    data = NULL;
    assert_int_equal(kiln_fs_read_file(path, 4, &data, &len, &err), -1);
    assert_non_null(strstr(err.msg, "file"));
    assert_null(data);
    _cleanup_close_ int dfd = open(deep, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int efd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_false(kiln_fs_dir_empty_at(dfd)); /* holds "file" */
    assert_int_equal(unlink(path), 0);
    assert_true(kiln_fs_dir_empty_at(dfd));
    assert_false(kiln_fs_dir_empty_at(efd));
    assert_false(kiln_fs_dir_empty_at(-1));
    assert_int_equal(kiln_fs_rm_rf(dir, &err), 0);
    assert_int_equal(access(dir, F_OK), -1);
}

/* A path or a directory above it in a set of paths. */
static void test_strset_dir_of(void **state)
{
    kiln_strset_t s = {0};
    assert_false(kiln_strset_has_dir_of(&s, "a/b"));
    kiln_strset_add(&s, "a/b");
    kiln_strset_add(&s, "x");
    assert_true(kiln_strset_has_dir_of(&s, "a/b"));
    assert_true(kiln_strset_has_dir_of(&s, "a/b/c/d"));
    assert_true(kiln_strset_has_dir_of(&s, "x/y"));
    assert_false(kiln_strset_has_dir_of(&s, "a"));
    assert_false(kiln_strset_has_dir_of(&s, "a/bc"));
    assert_false(kiln_strset_has_dir_of(&s, "xy/z"));
    assert_false(kiln_strset_has_dir_of(&s, ""));
    char *long_path = kiln_xmalloc(PATH_MAX + 10);
    memset(long_path, 'q', PATH_MAX + 9);
    long_path[PATH_MAX + 9] = '\0';
    assert_true(kiln_strset_has_dir_of(&s, long_path)); /* too long to tell: taken as in it */
    free(long_path);
    kiln_strset_free(&s);
}

/* Disk usage of a tree: allocated blocks counted, a sparse file's hole not; a missing tree is
 * 0; too deep is an error naming the depth; `stop` ends the walk once passed. */
static void test_fs_usage(void **state)
{
    kiln_error_t err = {0};
    _cleanup_free_ char *dir = NULL, *deep = NULL, *file = NULL, *sparse = NULL;
    char block[65536];
    uint64_t used = 0;
    int fd;
    (void)state;

    memset(block, 'x', sizeof(block));
    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-", &dir, &err), 0);
    deep = kiln_xasprintf("%s/a/b/c/d", dir);
    assert_int_equal(kiln_fs_mkdir_p(deep, 0755, &err), 0);
    file = kiln_xasprintf("%s/a/b/c/d/f", dir);
    assert_int_equal(kiln_fs_write_file_atomic(file, block, sizeof(block), 0644, &err), 0);
    sparse = kiln_xasprintf("%s/a/sparse", dir);
    fd = open(sparse, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1LL << 30), 0);
    close(fd);

    assert_int_equal(kiln_fs_usage_at(AT_FDCWD, dir, 16, 0, &used, &err), 0);
    assert_true(used >= sizeof(block));
    assert_true(used < (1ULL << 20));
    assert_int_equal(kiln_fs_usage_at(AT_FDCWD, dir, 3, 0, &used, &err), -1);
    assert_int_equal(err.code, ELOOP);
    assert_non_null(strstr(err.msg, "nested more than 3 deep"));
    assert_int_equal(kiln_fs_usage_at(AT_FDCWD, dir, 16, 1, &used, &err), 0);
    assert_true(used > 1 && used < sizeof(block));
    {
        _cleanup_free_ char *gone = kiln_xasprintf("%s/none", dir);
        assert_int_equal(kiln_fs_usage_at(AT_FDCWD, gone, 16, 0, &used, &err), 0);
        assert_int_equal(used, 0);
    }
    assert_int_equal(kiln_fs_rm_rf(dir, &err), 0);
}

/* A directory chain `depth` levels deep under dirfd ("d/d/..."), with a file and a link at
 * every level and, at the bottom, `wide` sibling directories holding a file each. */
static void make_chain(int dirfd, unsigned depth, unsigned wide)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    for (unsigned i = 0; i < depth; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        int f = openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(f >= 0);
        close(f);
        assert_int_equal(symlinkat("/", fd, "l"), 0);
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    for (unsigned i = 0; i < wide; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%u", i);
        assert_int_equal(mkdirat(fd, name, 0500), 0); /* no write bit: rm_rf fixes that */
        snprintf(name, sizeof(name), "w%u/x", i);
        int f = openat(fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (f >= 0) /* (not as root without CAP_DAC_OVERRIDE: the directory is 0500) */
            close(f);
    }
    close(fd);
}

/* Removal and kiln_fs_open_below keep a bounded number of fds: a tree 3,000 levels deep (more
 * than PATH_MAX allows by name) goes under a limit of 64 open files; a link is not followed. */
static void test_fs_deep_bounded_fds(void **state)
{
    kiln_error_t err = {0};
    _cleanup_free_ char *dir = NULL, *rel = NULL;
    struct rlimit old, low;
    (void)state;

    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-", &dir, &err), 0);
    int top = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(top >= 0);
    make_chain(top, 3000, 40);
    rel = kiln_xmalloc(3000 * 2 + 8);
    rel[0] = '\0';
    for (int i = 0; i < 3000; i++)
        strcat(rel, i ? "/d" : "d");

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fd = kiln_fs_open_below(top, rel, O_PATH | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(faccessat(fd, "w39", F_OK, 0), 0);
    close(fd);
    assert_int_equal(kiln_fs_open_below(top, "d/l/tmp", O_PATH | O_DIRECTORY), -1);
    assert_true(errno == ENOTDIR || errno == ELOOP); /* (O_NOFOLLOW with O_DIRECTORY) */
    int rm = kiln_fs_rm_rf_at(top, "d", &err);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rm, 0);
    assert_int_equal(faccessat(top, "d", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    assert_int_equal(faccessat(top, "f", F_OK, AT_SYMLINK_NOFOLLOW), 0);

    close(top);
    assert_int_equal(kiln_fs_rm_rf(dir, &err), 0);
    assert_int_equal(access(dir, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_set_and_prefix), cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_fs_roundtrip),         cmocka_unit_test(test_fs_usage),
        cmocka_unit_test(test_fs_deep_bounded_fds),  cmocka_unit_test(test_strset_dir_of),
    };
    return cmocka_run_group_tests_name("utils", tests, NULL, NULL);
}
