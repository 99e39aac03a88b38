/* Unit tests for the decompressor's block mode (kiln_decompressor_new_blocks, oci/compress):
 * the input taken where it is, in blocks of any size (1 byte: a gzip member's magic and the
 * format's magic split across blocks), gzip of two members, zstd and plain bytes all give the
 * input back byte for byte; the hooks see every compressed and decompressed byte once, in
 * order; a block source's error and a stream cut short end the read with a message saying
 * so; a block is given back (the next one asked for) only once it was used. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "oci/compress.h"
#include "oci/digest.h"
#include "utils/error.h"
#include "utils/mem.h"

#define PLAIN_LEN (700 * 1024 + 17)

static unsigned char *plain;

/* A block source over buf[0, len): blocks of `step` bytes, each handed out from a copy of its
 * own that is scribbled over once given back (a reader still using it would see garbage);
 * fail_at >= 0: the source fails once the position reaches it. */
struct src {
    const unsigned char *buf;
    size_t len, pos, step;
    long fail_at;
    unsigned char *cur;
    size_t cur_len;
    int calls_after_end;
};

static const void *src_block(void *ctx, size_t *len, kiln_error_t *err)
{
    struct src *s = ctx;
    if (s->cur != NULL) {
        memset(s->cur, 0xa5, s->cur_len); /* given back: no longer the stream's */
        free(s->cur);
        s->cur = NULL;
    }
    if (s->fail_at >= 0 && s->pos >= (size_t)s->fail_at) {
        kiln_error_set(err, EIO, "blob sha256:feed: the download failed");
        return NULL;
    }
    if (s->pos == s->len) {
        s->calls_after_end++;
        *len = 0;
        return "";
    }
    size_t n = s->len - s->pos < s->step ? s->len - s->pos : s->step;
    s->cur = kiln_xmalloc(n);
    memcpy(s->cur, s->buf + s->pos, n);
    s->cur_len = n;
    s->pos += n;
    *len = n;
    return s->cur;
}

/* Appends gzip member of in[0, len) to out (*olen bytes so far, room enough). */
static void gzip_member(const unsigned char *in, size_t len, unsigned char *out, size_t *olen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    z.next_out = out + *olen;
    z.avail_out = (uInt)(compressBound(len) + 64);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *olen += z.total_out;
    deflateEnd(&z);
}

struct hashes {
    kiln_sha256_t raw, out;
    size_t raw_len, out_len;
};

static void raw_hook(void *ctx, const void *buf, size_t len)
{
    struct hashes *h = ctx;
    kiln_sha256_update(&h->raw, buf, len);
    h->raw_len += len;
}

static void out_hook(void *ctx, const void *buf, size_t len)
{
    struct hashes *h = ctx;
    kiln_sha256_update(&h->out, buf, len);
    h->out_len += len;
}

/* Decompresses comp[0, clen) in blocks of step bytes: the plain input comes back, the hooks
 * hashed exactly the compressed and the plain bytes, the format is `want`. */
static void assert_blocks_give_back(const unsigned char *comp, size_t clen, size_t step,
                                    kiln_compression_t want)
{
    struct src s = {.buf = comp, .len = clen, .step = step, .fail_at = -1};
    struct hashes h = {0};
    kiln_error_t err = {0};
    kiln_decompressor_t *d = NULL;
    assert_int_equal(kiln_sha256_init(&h.raw, &err), 0);
    assert_int_equal(kiln_sha256_init(&h.out, &err), 0);
    assert_int_equal(
        kiln_decompressor_new_blocks(src_block, &s, raw_hook, &h, out_hook, &h, &d, &err), 0);
    assert_int_equal(kiln_decompressor_format(d), want);
    unsigned char *got = kiln_xmalloc(PLAIN_LEN + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = kiln_decompressor_read(d, got + n, PLAIN_LEN + 1 - n, &err);
        if (r < 0)
            fail_msg("step %zu: %s", step, err.msg);
        if (r == 0)
            break;
        n += (size_t)r;
        assert_true(n <= PLAIN_LEN);
    }
    kiln_decompressor_free(d);
    free(s.cur);
    assert_int_equal(n, PLAIN_LEN);
    assert_memory_equal(got, plain, PLAIN_LEN);
    assert_int_equal(s.calls_after_end, 1);
    kiln_digest_t a, b;
    assert_int_equal(h.raw_len, clen);
    assert_int_equal(h.out_len, PLAIN_LEN);
    kiln_sha256_final(&h.raw, &a);
    kiln_digest_bytes(comp, clen, &b);
    assert_string_equal(a.hex, b.hex);
    kiln_sha256_final(&h.out, &a);
    kiln_digest_bytes(plain, PLAIN_LEN, &b);
    assert_string_equal(a.hex, b.hex);
    free(got);
}

static const size_t steps[] = {1, 2, 3, 7, 4096, 65536 + 1, 256 * 1024, 1 << 30};

/* Two gzip members (an image layer may be several): whatever the block sizes. */
static void test_gzip_members_any_blocks(void **state)
{
    (void)state;
    size_t clen = 0, half = PLAIN_LEN / 3;
    unsigned char *comp = kiln_xmalloc(compressBound(PLAIN_LEN) + 256);
    gzip_member(plain, half, comp, &clen);
    gzip_member(plain + half, PLAIN_LEN - half, comp, &clen);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        assert_blocks_give_back(comp, clen, steps[i], KILN_COMPRESSION_GZIP);
    free(comp);
}

/* zstd and plain (a layer that is an uncompressed tar) alike. */
static void test_zstd_and_plain_any_blocks(void **state)
{
    (void)state;
    size_t cap = ZSTD_compressBound(PLAIN_LEN);
    unsigned char *comp = kiln_xmalloc(cap);
    size_t clen = ZSTD_compress(comp, cap, plain, PLAIN_LEN, 3);
    assert_false(ZSTD_isError(clen));
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        assert_blocks_give_back(comp, clen, steps[i], KILN_COMPRESSION_ZSTD);
        assert_blocks_give_back(plain, PLAIN_LEN, steps[i], KILN_COMPRESSION_NONE);
    }
    free(comp);
}

/* Reads d to its end or its first error: the read's result (0 or -1). */
static int read_all(kiln_decompressor_t *d, kiln_error_t *err)
{
    static unsigned char buf[64 * 1024];
    for (;;) {
        ssize_t r = kiln_decompressor_read(d, buf, sizeof(buf), err);
        if (r <= 0)
            return (int)r;
    }
}

/* The block source failing halfway ends the read with its error; a stream cut short says
 * it is truncated. */
static void test_source_error_and_truncation(void **state)
{
    (void)state;
    size_t clen = 0;
    unsigned char *comp = kiln_xmalloc(compressBound(PLAIN_LEN) + 64);
    gzip_member(plain, PLAIN_LEN, comp, &clen);
    kiln_error_t err = {0};
    kiln_decompressor_t *d = NULL;

    struct src s = {.buf = comp, .len = clen, .step = 1000, .fail_at = (long)clen / 2};
    assert_int_equal(kiln_decompressor_new_blocks(src_block, &s, NULL, NULL, NULL, NULL, &d, &err),
                     0);
    assert_int_equal(read_all(d, &err), -1);
    assert_non_null(strstr(err.msg, "blob sha256:feed: the download failed"));
    kiln_decompressor_free(d);
    free(s.cur);

    struct src t = {.buf = comp, .len = clen - 100, .step = 4096, .fail_at = -1};
    memset(&err, 0, sizeof(err));
    assert_int_equal(kiln_decompressor_new_blocks(src_block, &t, NULL, NULL, NULL, NULL, &d, &err),
                     0);
    assert_int_equal(read_all(d, &err), -1);
    assert_non_null(strstr(err.msg, "truncated"));
    kiln_decompressor_free(d);
    free(t.cur);
    free(comp);
}

int main(void)
{
    plain = kiln_xmalloc(PLAIN_LEN);
    for (size_t i = 0; i < PLAIN_LEN; i++) /* partly compressible */
        plain[i] = (unsigned char)(i % 3 ? (i * 2654435761u) >> 13 : 'a' + i % 7);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_members_any_blocks),
        cmocka_unit_test(test_zstd_and_plain_any_blocks),
        cmocka_unit_test(test_source_error_and_truncation),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(plain);
    return rc;
}
