/* Unit tests for oci/pgzip: the same bytes whatever the thread count and the
 * write sizes, members at fixed block boundaries, a valid gzip stream for
 * gzip(1) and kiln's own reader (empty input, exact multiples of a block),
 * levels out of range, and a failing sink reported without a hang. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/compress.h"
#include "oci/pgzip.h"
#include "utils/cleanup.h"
#include "utils/error.h"
#include "utils/fs.h"
#include "utils/mem.h"

static char *tmpdir;

static int setup(void **state)
{
    kiln_error_t err = {0};
    return kiln_fs_mkdtemp("/tmp", "kiln-test-pgzip-", &tmpdir, &err);
}

static int teardown(void **state)
{
    kiln_error_t err = {0};
    kiln_fs_rm_rf(tmpdir, &err);
    free(tmpdir);
    return 0;
}

/* A growable in-memory sink; fail_after >= 0 fails once that many bytes came. */
struct membuf {
    unsigned char *buf;
    size_t len, cap;
    long fail_after;
};

static int mem_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    struct membuf *m = ctx;
    if (m->fail_after >= 0 && m->len + len > (size_t)m->fail_after)
        return kiln_error_set(err, ENOSPC, "writing blob /test/sink: no space left");
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->buf = realloc(m->buf, m->cap);
        assert_non_null(m->buf);
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    return 0;
}

/* Input that compresses like a layer: text lines, runs, and random bytes. */
static unsigned char *make_input(size_t len)
{
    unsigned char *b = kiln_xmalloc(len ? len : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len;) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t run = 1 + x % 300;
        for (size_t j = 0; j < run && i < len; j++, i++) {
            switch ((x >> 9) % 3) {
            case 0:
                b[i] = (unsigned char)("function kiln(layer) { return layer; }\n"[j % 39]);
                break;
            case 1:
                b[i] = 0;
                break;
            default:
                b[i] = (unsigned char)((x * (j + 1)) >> 7);
            }
        }
    }
    return b;
}

/* Compresses in with the given workers, fed in pieces of `step` bytes. */
static struct membuf compress_with(const unsigned char *in, size_t len, int level, int workers,
                                   size_t step)
{
    struct membuf m = {.fail_after = -1};
    kiln_sink_t s = {mem_write, &m};
    kiln_error_t err = {0};
    kiln_pgzip_t *p = NULL;
    assert_int_equal(kiln_pgzip_new(level, workers, &s, &p, &err), 0);
    for (size_t off = 0; off < len; off += step)
        assert_int_equal(kiln_pgzip_write(p, in + off, len - off < step ? len - off : step, &err),
                         0);
    assert_int_equal(kiln_pgzip_finish(p, &err), 0);
    kiln_pgzip_free(p);
    return m;
}

/* Writes buf to a file under tmpdir and returns its path. */
static char *write_tmp(const char *name, const void *buf, size_t len)
{
    char *path = kiln_xasprintf("%s/%s", tmpdir, name);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    return path;
}

/* Decompresses a gzip file with kiln's reader (ISA-L) and compares it to want. */
static void assert_decompresses_to(const char *path, const unsigned char *want, size_t len)
{
    kiln_error_t err = {0};
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    kiln_decompressor_t *d = NULL;
    assert_int_equal(kiln_decompressor_new(fd, NULL, NULL, NULL, NULL, &d, &err), 0);
    assert_int_equal(kiln_decompressor_format(d), KILN_COMPRESSION_GZIP);
    _cleanup_free_ unsigned char *got = kiln_xmalloc(len + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = kiln_decompressor_read(d, got + n, len + 1 - n, &err);
        assert_true(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
        assert_true(n <= len);
    }
    kiln_decompressor_free(d);
    assert_int_equal(n, len);
    assert_memory_equal(got, want, len);
}

/* gzip(1) accepts the stream (-t) and restores the input byte for byte. */
static void assert_gzip_tool_ok(const char *path, const unsigned char *want, size_t len)
{
    _cleanup_free_ char *cmd = kiln_xasprintf("gzip -t '%s'", path);
    assert_int_equal(system(cmd), 0);
    _cleanup_free_ char *raw = write_tmp("want.raw", want, len);
    free(cmd);
    cmd = kiln_xasprintf("gzip -dc '%s' | cmp -s - '%s'", path, raw);
    assert_int_equal(system(cmd), 0);
}

static void test_same_bytes_any_threads(void **state)
{
    const size_t len = 5 * KILN_PGZIP_BLOCK + 12345;
    _cleanup_free_ unsigned char *in = make_input(len);
    struct membuf ref = compress_with(in, len, 3, 0, len);
    assert_true(ref.len > 0 && ref.len < len);
    const int workers[] = {1, 2, 3, KILN_PGZIP_MAX_WORKERS, KILN_PGZIP_AUTO};
    const size_t steps[] = {len, 4096, 1, KILN_PGZIP_BLOCK + 3};
    for (size_t w = 0; w < sizeof(workers) / sizeof(workers[0]); w++) {
        /* 1-byte writes only with one thread count: they are slow. */
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            if (steps[s] == 1 && w != 1)
                continue;
            struct membuf m = compress_with(in, len, 3, workers[w], steps[s]);
            assert_int_equal(m.len, ref.len);
            assert_memory_equal(m.buf, ref.buf, ref.len);
            free(m.buf);
        }
    }
    _cleanup_free_ char *path = write_tmp("multi.gz", ref.buf, ref.len);
    assert_decompresses_to(path, in, len);
    assert_gzip_tool_ok(path, in, len);
    free(ref.buf);
}

/* Each block is one member: the stream is the members of the blocks, each
 * compressed alone, back to back; the last one holds the remainder. */
static void test_members_at_block_boundaries(void **state)
{
    const size_t len = 2 * KILN_PGZIP_BLOCK + 100;
    _cleanup_free_ unsigned char *in = make_input(len);
    struct membuf all = compress_with(in, len, 6, 2, 65536);
    size_t off = 0;
    for (size_t b = 0; b * KILN_PGZIP_BLOCK < len; b++) {
        size_t n = len - b * KILN_PGZIP_BLOCK;
        struct membuf one = compress_with(in + b * KILN_PGZIP_BLOCK,
                                          n < KILN_PGZIP_BLOCK ? n : KILN_PGZIP_BLOCK, 6, 0, n);
        assert_true(off + one.len <= all.len);
        assert_memory_equal(all.buf + off, one.buf, one.len);
        /* RFC 1952 trailer: ISIZE is the member's input size. */
        const unsigned char *t = one.buf + one.len - 4;
        uint32_t isize =
            (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
        assert_int_equal(isize, n < KILN_PGZIP_BLOCK ? n : KILN_PGZIP_BLOCK);
        off += one.len;
        free(one.buf);
    }
    assert_int_equal(off, all.len);
    free(all.buf);
}

/* An empty input is one empty member; an exact multiple of the block size
 * gets no empty member at its end. */
static void test_empty_and_exact_blocks(void **state)
{
    for (int workers = 0; workers <= 2; workers += 2) {
        struct membuf e = compress_with(NULL, 0, 6, workers, 1);
        assert_true(e.len > 18 && e.len <= 24); /* header, one empty block, trailer */
        _cleanup_free_ char *path = write_tmp("empty.gz", e.buf, e.len);
        assert_decompresses_to(path, (const unsigned char *)"", 0);
        assert_gzip_tool_ok(path, (const unsigned char *)"", 0);
        free(e.buf);

        const size_t len = 2 * KILN_PGZIP_BLOCK;
        _cleanup_free_ unsigned char *in = make_input(len);
        struct membuf m = compress_with(in, len, 1, workers, len);
        struct membuf a = compress_with(in, KILN_PGZIP_BLOCK, 1, 0, len);
        struct membuf b = compress_with(in + KILN_PGZIP_BLOCK, KILN_PGZIP_BLOCK, 1, 0, len);
        assert_int_equal(m.len, a.len + b.len);
        free(path);
        path = write_tmp("exact.gz", m.buf, m.len);
        assert_decompresses_to(path, in, len);
        free(m.buf);
        free(a.buf);
        free(b.buf);
    }
}

/* Every level 0..12 gives a stream that decompresses; 13 and -1 are refused
 * by name, through kiln_compression_check_level as well. */
static void test_levels(void **state)
{
    const size_t len = KILN_PGZIP_BLOCK + 777;
    _cleanup_free_ unsigned char *in = make_input(len);
    size_t prev = SIZE_MAX;
    for (int level = 0; level <= KILN_PGZIP_MAX_LEVEL; level += 3) {
        struct membuf m = compress_with(in, len, level, 2, 100000);
        _cleanup_free_ char *path = write_tmp("level.gz", m.buf, m.len);
        assert_decompresses_to(path, in, len);
        if (level == 0)
            assert_true(m.len > len); /* stored blocks */
        assert_true(m.len <= prev);
        prev = m.len;
        free(m.buf);
    }
    kiln_error_t err = {0};
    struct membuf m = {.fail_after = -1};
    kiln_sink_t s = {mem_write, &m};
    kiln_pgzip_t *p = NULL;
    assert_int_equal(kiln_pgzip_new(13, 0, &s, &p, &err), -1);
    assert_non_null(strstr(err.msg, "gzip compression level 13 out of range 0..12"));
    assert_int_equal(kiln_pgzip_new(-1, 0, &s, &p, &err), -1);
    assert_int_equal(kiln_pgzip_new(6, KILN_PGZIP_MAX_WORKERS + 1, &s, &p, &err), -1);
    assert_int_equal(kiln_compression_check_level(KILN_COMPRESSION_GZIP, 12, &err), 0);
    assert_int_equal(kiln_compression_check_level(KILN_COMPRESSION_GZIP, 13, &err), -1);
    assert_non_null(strstr(err.msg, "0..12"));
    assert_true(kiln_pgzip_auto_workers() >= 1);
    assert_true(kiln_pgzip_auto_workers() <= KILN_PGZIP_MAX_WORKERS);
}

/* A sink failing part way: the sink's own error comes back from write or
 * finish, with threads and without, and freeing does not hang. Freeing a
 * compressor that was never finished drops its queue. */
static void test_failing_sink(void **state)
{
    const size_t len = 6 * KILN_PGZIP_BLOCK;
    _cleanup_free_ unsigned char *in = make_input(len);
    for (int workers = 0; workers <= 3; workers++) {
        struct membuf m = {.fail_after = 300000};
        kiln_sink_t s = {mem_write, &m};
        kiln_error_t err = {0};
        kiln_pgzip_t *p = NULL;
        assert_int_equal(kiln_pgzip_new(1, workers, &s, &p, &err), 0);
        int r = 0;
        for (size_t off = 0; off < len && r == 0; off += 65536)
            r = kiln_pgzip_write(p, in + off, 65536, &err);
        if (r == 0)
            r = kiln_pgzip_finish(p, &err);
        assert_int_equal(r, -1);
        assert_non_null(strstr(err.msg, "/test/sink"));
        kiln_pgzip_free(p);
        free(m.buf);

        struct membuf ok = {.fail_after = -1};
        kiln_sink_t s2 = {mem_write, &ok};
        assert_int_equal(kiln_pgzip_new(6, workers, &s2, &p, &err), 0);
        assert_int_equal(kiln_pgzip_write(p, in, len, &err), 0);
        kiln_pgzip_free(p); /* not finished */
        free(ok.buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_any_threads),
        cmocka_unit_test(test_members_at_block_boundaries),
        cmocka_unit_test(test_empty_and_exact_blocks),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_failing_sink),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
