/* Unit tests for utils/: errors, buffers, filesystem helpers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/error.h"
#include "utils/fs.h"
#include "utils/mem.h"

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
    assert_int_equal(kiln_fs_rm_rf(dir, &err), 0);
    assert_int_equal(access(dir, F_OK), -1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_set_and_prefix),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_fs_roundtrip),
        cmocka_unit_test(test_fs_usage),
    };
    return cmocka_run_group_tests_name("utils", tests, NULL, NULL);
}
