/* Unit tests for oci/pgzip and oci/deflate_join: the same bytes whatever the
 * thread count and the write sizes, one gzip member (zlib reads it whole in
 * one go, as the SOCI snapshotter's raw inflate needs), a valid stream for
 * gzip(1) and kiln's own reader (empty input, exact multiples of a block),
 * joined libdeflate pieces at every level (long codes, streams cut short),
 * levels out of range, a failing sink reported without a hang, and the input
 * digest the writing thread computes equal to the input's. */
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
#include <libdeflate.h>
#include <zlib.h>

#include "oci/compress.h"
#include "oci/deflate_join.h"
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
    /* The input hashed by the writing thread, in order: the digest of in. */
    kiln_sha256_t h, want;
    kiln_digest_t got_d, want_d;
    assert_int_equal(kiln_sha256_init(&h, &err), 0);
    assert_int_equal(kiln_sha256_init(&want, &err), 0);
    kiln_pgzip_hash_input(p, &h);
    for (size_t off = 0; off < len; off += step)
        assert_int_equal(kiln_pgzip_write(p, in + off, len - off < step ? len - off : step, &err),
                         0);
    assert_int_equal(kiln_pgzip_finish(p, &err), 0);
    kiln_pgzip_free(p);
    kiln_sha256_update(&want, in, len);
    kiln_sha256_final(&h, &got_d);
    kiln_sha256_final(&want, &want_d);
    assert_string_equal(got_d.hex, want_d.hex);
    kiln_sha256_dispose(&h);
    kiln_sha256_dispose(&want);
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

/* Input read straight into the compressor's block (kiln_pgzip_buffer, as
 * the layer writer reads files), mixed with ordinary writes of other sizes:
 * the same bytes as ordinary writes, with and without threads. */
static void test_buffer_in_place(void **state)
{
    const size_t len = 3 * KILN_PGZIP_BLOCK + 777;
    _cleanup_free_ unsigned char *in = make_input(len);
    struct membuf ref = compress_with(in, len, 3, 0, 4096);
    const int workers[] = {0, 2};
    for (size_t w = 0; w < 2; w++) {
        struct membuf m = {.fail_after = -1};
        kiln_sink_t s = {mem_write, &m};
        kiln_error_t err = {0};
        kiln_pgzip_t *p = NULL;
        assert_int_equal(kiln_pgzip_new(3, workers[w], &s, &p, &err), 0);
        size_t off = 0, i = 0;
        while (off < len) {
            size_t want = (i * 77777 + 1000) % 300000 + 1;
            if (want > len - off)
                want = len - off;
            if (i++ % 3 == 2) { /* an ordinary write between */
                assert_int_equal(kiln_pgzip_write(p, in + off, want, &err), 0);
                off += want;
                continue;
            }
            size_t room = 0;
            unsigned char *b = kiln_pgzip_buffer(p, &room, &err);
            assert_non_null(b);
            assert_true(room > 0 && room <= KILN_PGZIP_BLOCK);
            if (want > room)
                want = room;
            memcpy(b, in + off, want);
            assert_int_equal(kiln_pgzip_write(p, b, want, &err), 0);
            off += want;
        }
        assert_int_equal(kiln_pgzip_finish(p, &err), 0);
        kiln_pgzip_free(p);
        assert_int_equal(m.len, ref.len);
        assert_memory_equal(m.buf, ref.buf, ref.len);
        free(m.buf);
    }
    free(ref.buf);
}

/* zlib's inflate in gzip mode reads the whole stream as ONE member: it ends
 * exactly at the end of the buffer with nothing left over, giving the input. */
static void assert_one_member(const struct membuf *m, const unsigned char *want, size_t len)
{
    z_stream zs = {0};
    assert_int_equal(inflateInit2(&zs, 31), Z_OK);
    _cleanup_free_ unsigned char *got = kiln_xmalloc(len + 16);
    zs.next_in = m->buf;
    zs.avail_in = (uInt)m->len;
    zs.next_out = got;
    zs.avail_out = (uInt)(len + 16);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.avail_in, 0);
    assert_int_equal(zs.total_out, len);
    assert_memory_equal(got, want, len);
    inflateEnd(&zs);
}

static void test_one_member(void **state)
{
    const size_t len = 3 * KILN_PGZIP_BLOCK + 100;
    _cleanup_free_ unsigned char *in = make_input(len);
    for (int level = 1; level <= 9; level += 4) {
        struct membuf m = compress_with(in, len, level, 2, 65536);
        assert_one_member(&m, in, len);
        /* RFC 1952 trailer: CRC-32 and ISIZE of the whole input. */
        const unsigned char *t = m.buf + m.len - 8;
        uint32_t crc =
            (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
        uint32_t isize =
            (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
        assert_int_equal(crc, (uint32_t)crc32(0, in, (uInt)len));
        assert_int_equal(isize, (uint32_t)len);
        free(m.buf);
    }
}

/* libdeflate's output of several inputs, each made non-final and joined, then
 * an empty final block: zlib's raw inflate reads the concatenated inputs, at
 * every level (stored, fixed and dynamic blocks) and for tiny inputs; garbage
 * is refused and left as it was. */
static void test_deflate_join(void **state)
{
    const size_t sizes[] = {0, 1, 100, 70000, 400000};
    const size_t total = 0 + 1 + 100 + 70000 + 400000;
    _cleanup_free_ unsigned char *in = make_input(total);
    for (int level = 0; level <= 12; level++) {
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
        assert_non_null(c);
        size_t cap = 0, off = 0, used = 0;
        for (size_t i = 0; i < 5; i++)
            cap += libdeflate_deflate_compress_bound(c, sizes[i]) + KILN_DEFLATE_JOIN_EXTRA;
        _cleanup_free_ unsigned char *out = kiln_xmalloc(cap + 2);
        for (size_t i = 0; i < 5; i++) {
            size_t n = libdeflate_deflate_compress(c, in + off, sizes[i], out + used,
                                                   cap - used - KILN_DEFLATE_JOIN_EXTRA);
            assert_true(n > 0);
            assert_int_equal(kiln_deflate_make_nonfinal(out + used, &n), 0);
            used += n;
            off += sizes[i];
        }
        memcpy(out + used, KILN_DEFLATE_EMPTY_FINAL, 2);
        used += 2;
        libdeflate_free_compressor(c);

        z_stream zs = {0};
        assert_int_equal(inflateInit2(&zs, -15), Z_OK);
        _cleanup_free_ unsigned char *got = kiln_xmalloc(total + 16);
        zs.next_in = out;
        zs.avail_in = (uInt)used;
        zs.next_out = got;
        zs.avail_out = (uInt)(total + 16);
        assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
        assert_int_equal(zs.avail_in, 0);
        assert_int_equal(zs.total_out, total);
        assert_memory_equal(got, in, total);
        inflateEnd(&zs);
    }
    unsigned char junk[16] = "\x07garbage here";
    unsigned char copy[16];
    memcpy(copy, junk, sizeof(junk));
    size_t n = 15;
    assert_int_equal(kiln_deflate_make_nonfinal(junk, &n), -1);
    assert_int_equal(n, 15);
    assert_memory_equal(junk, copy, sizeof(junk));
    n = 0;
    assert_int_equal(kiln_deflate_make_nonfinal(junk, &n), -1);
}

static unsigned char *memdup(const void *p, size_t n)
{
    unsigned char *b = kiln_xmalloc(n);
    memcpy(b, p, n);
    return b;
}

/* Bytes of a steep distribution (byte k about twice as rare as byte k-1):
 * Huffman codes as long as DEFLATE allows, past the walker's root tables. */
static unsigned char *make_skewed(size_t len)
{
    unsigned char *b = kiln_xmalloc(len);
    uint32_t x = 88172645u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        b[i] = (unsigned char)(x == 0 ? 31 : __builtin_ctz(x) + (x >> 27 & 1) * 32);
    }
    return b;
}

/* Long codes (subtables) and streams cut short: a joined stream of skewed
 * input inflates back at several levels, and every cut of a piece's last 64
 * bytes (and a byte in the middle) is refused without touching the piece. */
static void test_deflate_join_long_codes(void **state)
{
    const size_t len = 300000;
    _cleanup_free_ unsigned char *in = make_skewed(len);
    const int levels[] = {1, 3, 6, 12};
    for (size_t li = 0; li < 4; li++) {
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(levels[li]);
        size_t cap = libdeflate_deflate_compress_bound(c, len) + KILN_DEFLATE_JOIN_EXTRA;
        _cleanup_free_ unsigned char *out = kiln_xmalloc(2 * cap + 2);
        size_t n1 = libdeflate_deflate_compress(c, in, len / 2, out, cap);
        _cleanup_free_ unsigned char *whole = memdup(out, n1);
        for (size_t cut = n1 > 64 ? n1 - 64 : 1; cut < n1; cut++) {
            size_t n = cut;
            assert_int_equal(kiln_deflate_make_nonfinal(out, &n), -1);
            assert_int_equal(n, cut);
            assert_memory_equal(out, whole, n1);
        }
        size_t n = n1 / 2;
        assert_int_equal(kiln_deflate_make_nonfinal(out, &n), -1);
        assert_int_equal(kiln_deflate_make_nonfinal(out, &n1), 0);
        size_t n2 = libdeflate_deflate_compress(c, in + len / 2, len - len / 2, out + n1, cap);
        assert_int_equal(kiln_deflate_make_nonfinal(out + n1, &n2), 0);
        memcpy(out + n1 + n2, KILN_DEFLATE_EMPTY_FINAL, 2);
        libdeflate_free_compressor(c);

        struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
        _cleanup_free_ unsigned char *got = kiln_xmalloc(len);
        size_t got_len = 0;
        assert_int_equal(libdeflate_deflate_decompress(d, out, n1 + n2 + 2, got, len, &got_len), 0);
        libdeflate_free_decompressor(d);
        assert_int_equal(got_len, len);
        assert_memory_equal(got, in, len);
    }
    /* Random bytes: refused or parsed, never read past the end (ASan). */
    uint32_t x = 2463534242u;
    for (int i = 0; i < 2000; i++) {
        unsigned char junk[64 + KILN_DEFLATE_JOIN_EXTRA];
        size_t n = (size_t)(i % 64);
        for (size_t j = 0; j < sizeof(junk); j++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            junk[j] = (unsigned char)x;
        }
        unsigned char *heap = memdup(junk, sizeof(junk));
        kiln_deflate_make_nonfinal(heap, &n);
        free(heap);
    }
}

/* An empty input is a valid empty stream; an exact multiple of the block
 * size reads back whole. */
static void test_empty_and_exact_blocks(void **state)
{
    for (int workers = 0; workers <= 2; workers += 2) {
        struct membuf e = compress_with(NULL, 0, 6, workers, 1);
        assert_int_equal(e.len, 20); /* header, the empty final block, trailer */
        _cleanup_free_ char *path = write_tmp("empty.gz", e.buf, e.len);
        assert_decompresses_to(path, (const unsigned char *)"", 0);
        assert_gzip_tool_ok(path, (const unsigned char *)"", 0);
        free(e.buf);

        const size_t len = 2 * KILN_PGZIP_BLOCK;
        _cleanup_free_ unsigned char *in = make_input(len);
        struct membuf m = compress_with(in, len, 1, workers, len);
        assert_one_member(&m, in, len);
        free(path);
        path = write_tmp("exact.gz", m.buf, m.len);
        assert_decompresses_to(path, in, len);
        free(m.buf);
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
        cmocka_unit_test(test_one_member),
        cmocka_unit_test(test_buffer_in_place),
        cmocka_unit_test(test_deflate_join),
        cmocka_unit_test(test_deflate_join_long_codes),
        cmocka_unit_test(test_empty_and_exact_blocks),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_failing_sink),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
