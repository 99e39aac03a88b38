/* Unit tests for the parallel gzip decoder (oci/pinflate): whatever the stream's shape, its
 * output is the sequential decoder's, byte for byte, and its failures are failures too.
 * Shapes: kiln's own layers (independent pieces joined by sync flushes: chunks decoded ahead
 * are used), zlib full flushes (the same), sync flushes that keep the dictionary (pigz: every
 * chunk decoded ahead refers back, so none is used), no flush at all (cuts without a
 * candidate), stored blocks full of the candidate bytes, a candidate inside a stored block
 * that starts valid DEFLATE data of its own, chunks whose output is above the workers' cap,
 * several members with every optional header field, input in pieces of any size, and no
 * workers. Errors: truncated in a header, the data or a trailer; a CRC or size that does not
 * match; a wrong header CRC or method (reserved flags are ignored, as ISA-L does); a byte
 * changed inside a chunk decoded ahead; data after the last member; a failure stays. And a
 * layer of kiln's own gzip unpacked (oci/inflate_thread reads through views of the chunks'
 * output) gives the tree it gives with no workers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "oci/compress.h"
#include "oci/pgzip.h"
#include "oci/pinflate.h"
#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/error.h"
#include "utils/fs.h"
#include "utils/mem.h"

#include "layer_tar.h"

/* Small cuts (64 KiB at least, 256 KiB at most) so that a few MiB cross many of them. */
#define CUT_MIN (64 * 1024)
#define CUT_MAX (256 * 1024)

struct membuf {
    unsigned char *buf;
    size_t len, cap;
};

static void mem_put(struct membuf *m, const void *buf, size_t len)
{
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2 + 64;
        m->buf = kiln_xrealloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
}

static int mem_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    (void)err;
    mem_put(ctx, buf, len);
    return 0;
}

/* Input that compresses like a layer: text lines, runs of zeros and random bytes; `text` in
 * 100 makes the text share (a high one compresses far). */
static unsigned char *make_input(size_t len, unsigned seed, int text)
{
    unsigned char *b = kiln_xmalloc(len ? len : 1);
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < len;) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t run = 1 + x % 400;
        int kind = (int)((x >> 9) % 100) < text ? 0 : (int)((x >> 9) % 2) + 1;
        for (size_t j = 0; j < run && i < len; j++, i++) {
            if (kind == 0)
                b[i] = (unsigned char)("function kiln(layer) { return layer; }\n"[j % 39]);
            else if (kind == 1)
                b[i] = 0;
            else
                b[i] = (unsigned char)((x * (j + 1)) >> 7);
        }
    }
    return b;
}

enum { HDR_PLAIN = 0, HDR_ALL = 1 };

#define MIXED_FLUSH (-1) /* full flushes, every third a sync flush (keeps the dictionary) */

/* Appends a gzip member of in[0, len) to m: zlib at `level`, a `flush` (Z_NO_FLUSH,
 * Z_SYNC_FLUSH, Z_FULL_FLUSH, MIXED_FLUSH) every `every` bytes; HDR_ALL writes FEXTRA, FNAME,
 * FCOMMENT and FHCRC. */
static void gz_member(struct membuf *m, const unsigned char *in, size_t len, int level, int flush,
                      size_t every, int hdr)
{
    unsigned char h[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    size_t start = m->len;
    if (hdr == HDR_ALL)
        h[3] = 2 | 4 | 8 | 16;
    mem_put(m, h, 10);
    if (hdr == HDR_ALL) {
        mem_put(m, "\x05\x00KL\x01\x00z", 7); /* XLEN 5: one subfield */
        mem_put(m, "layer.tar", 10);
        mem_put(m, "a comment", 10);
        uint32_t hc = (uint32_t)crc32(0, m->buf + start, (uInt)(m->len - start));
        unsigned char hcrc[2] = {hc & 0xff, (hc >> 8) & 0xff};
        mem_put(m, hcrc, 2);
    }
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char *out = kiln_xmalloc(1 << 20);
    for (size_t off = 0, k = 0;; k++) {
        size_t n = len - off < every ? len - off : every;
        int last = off + n == len;
        int f = flush != MIXED_FLUSH ? flush : k % 3 == 2 ? Z_SYNC_FLUSH : Z_FULL_FLUSH;
        z.next_in = (unsigned char *)in + off;
        z.avail_in = (uInt)n;
        int r;
        do {
            z.next_out = out;
            z.avail_out = 1 << 20;
            r = deflate(&z, last ? Z_FINISH : f);
            mem_put(m, out, (1 << 20) - z.avail_out);
        } while (z.avail_out == 0 || (last && r != Z_STREAM_END));
        off += n;
        if (last)
            break;
    }
    deflateEnd(&z);
    free(out);
    uint32_t crc = (uint32_t)crc32(0, in, (uInt)len), size = (uint32_t)len;
    unsigned char t[8] = {crc,  crc >> 8,  crc >> 16,  crc >> 24,
                          size, size >> 8, size >> 16, size >> 24};
    mem_put(m, t, 8);
}

/* Appends kiln's own gzip of in[0, len) (oci/pgzip, two workers) to m. */
static void pgzip_member(struct membuf *m, const unsigned char *in, size_t len)
{
    kiln_sink_t s = {mem_write, m};
    kiln_error_t err = {0};
    kiln_pgzip_t *p = NULL;
    assert_int_equal(kiln_pgzip_new(6, 2, &s, &p, &err), 0);
    assert_int_equal(kiln_pgzip_write(p, in, len, &err), 0);
    assert_int_equal(kiln_pgzip_finish(p, &err), 0);
    kiln_pgzip_free(p);
}

/* A block source over a buffer: pieces of `step` bytes, or of 1..`step` bytes at random when
 * `vary`. */
struct src {
    const unsigned char *buf;
    size_t len, pos, step;
    int vary;
    uint32_t x;
};

static const void *src_block(void *ctx, size_t *len, kiln_error_t *err)
{
    (void)err;
    struct src *s = ctx;
    size_t step = s->step;
    if (s->vary) {
        s->x ^= s->x << 13, s->x ^= s->x >> 17, s->x ^= s->x << 5;
        step = 1 + s->x % s->step;
    }
    size_t n = s->len - s->pos < step ? s->len - s->pos : step;
    const void *r = s->buf + s->pos;
    s->pos += n;
    *len = n;
    return r;
}

struct result {
    int rc;
    struct membuf out;
    kiln_error_t err;
    uint64_t chunks, ahead;
};

/* Decodes gz with the parallel decoder (workers, cuts as given; 0 cuts: the defaults), read
 * in pieces of up to `rd` bytes, its input in pieces of `step` (`vary`: of any size up to
 * it). hold > 0: read through views, up to `hold` of them kept before they are given back,
 * each checked at that time to still hold its bytes (its buffer not reused too early).
 * patient: the decoder waits for each chunk's cut (kiln_pinflate_wait_cuts), so the chunks
 * decoded ahead do not depend on how the threads were scheduled. */
static struct result run_par(const struct membuf *gz, int workers, size_t cmin, size_t cmax,
                             size_t step, int vary, size_t rd, size_t hold, int patient)
{
    struct result r = {0};
    struct src s = {.buf = gz->buf, .len = gz->len, .step = step, .vary = vary, .x = 7};
    kiln_decompressor_t *d = NULL;
    assert_int_equal(
        kiln_decompressor_new_blocks(src_block, &s, NULL, NULL, NULL, NULL, &d, &r.err), 0);
    assert_int_equal(kiln_decompressor_format(d), KILN_COMPRESSION_GZIP);
    kiln_pinflate_t *p =
        cmin ? kiln_pinflate_new_sized(d, workers, cmin, cmax) : kiln_pinflate_new(d, workers);
    if (patient)
        kiln_pinflate_wait_cuts(p);
    unsigned char *buf = kiln_xmalloc(rd);
    struct {
        const unsigned char *at;
        size_t off, n;
    } held[16];
    size_t nheld = 0;
    ssize_t n;
    for (;;) {
        const void *at = buf;
        n = hold ? kiln_pinflate_read_view(p, buf, rd, &at, &r.err)
                 : kiln_pinflate_read(p, buf, rd, &r.err);
        if (n <= 0)
            break;
        if (at != buf) {
            if (nheld == hold) { /* the oldest goes back, checked first */
                assert_memory_equal(held[0].at, r.out.buf + held[0].off, held[0].n);
                kiln_pinflate_release(p);
                memmove(held, held + 1, --nheld * sizeof(held[0]));
            }
            held[nheld].at = at;
            held[nheld].off = r.out.len;
            held[nheld++].n = (size_t)n;
        }
        mem_put(&r.out, at, (size_t)n);
    }
    for (size_t i = 0; i < nheld; i++) {
        assert_memory_equal(held[i].at, r.out.buf + held[i].off, held[i].n);
        kiln_pinflate_release(p);
    }
    r.rc = n < 0 ? -1 : 0;
    if (n < 0) { /* a failure stays */
        kiln_error_t again = {0};
        assert_int_equal(kiln_pinflate_read(p, buf, rd, &again), -1);
        assert_string_equal(again.msg, r.err.msg);
    }
    kiln_pinflate_stats(p, &r.chunks, &r.ahead);
    kiln_pinflate_free(p);
    kiln_decompressor_free(d);
    free(buf);
    return r;
}

/* The sequential decoder's result for gz. */
static struct result run_seq(const struct membuf *gz)
{
    struct result r = {0};
    struct src s = {.buf = gz->buf, .len = gz->len, .step = 65536};
    kiln_decompressor_t *d = NULL;
    assert_int_equal(
        kiln_decompressor_new_blocks(src_block, &s, NULL, NULL, NULL, NULL, &d, &r.err), 0);
    unsigned char *buf = kiln_xmalloc(1 << 18);
    ssize_t n;
    while ((n = kiln_decompressor_read(d, buf, 1 << 18, &r.err)) > 0)
        mem_put(&r.out, buf, (size_t)n);
    r.rc = n < 0 ? -1 : 0;
    kiln_decompressor_free(d);
    free(buf);
    return r;
}

/* Decodes gz with 2 workers, cuts of cmin to cmax, and checks it gives want: the chunks
 * decoded ahead. */
static uint64_t check_cuts(const struct membuf *gz, const unsigned char *want, size_t want_len,
                           size_t cmin, size_t cmax, int patient)
{
    struct result r = run_par(gz, 2, cmin, cmax, 1 << 18, 0, 1 << 18, 0, patient);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.out.len, want_len);
    assert_memory_equal(r.out.buf, want, want_len);
    free(r.out.buf);
    return r.ahead;
}

/* Decodes gz every way (2 and 1 workers, small and default cuts, input and output in several
 * piece sizes) and checks each gives want (want NULL: fails as the sequential decoder does).
 * Returns the most chunks decoded ahead in one of the ways at even indexes, which wait for
 * each chunk's cut, so that count depends on gz only (the others decode as the threads run). */
static uint64_t check_all(const struct membuf *gz, const unsigned char *want, size_t want_len)
{
    struct {
        int workers;
        size_t cmin, cmax, step;
        int vary;
        size_t rd, hold;
    } ways[] = {
        {2, CUT_MIN, CUT_MAX, 1 << 18, 0, 1 << 18, 0}, {2, CUT_MIN, CUT_MAX, 70000, 1, 4099, 0},
        {1, CUT_MIN, CUT_MAX, 1 << 16, 1, 1 << 18, 0}, {2, 0, 0, 1 << 18, 0, 1 << 18, 0},
        {0, CUT_MIN, CUT_MAX, 1 << 18, 0, 1 << 18, 0}, {3, 16384, 65536, 3000, 1, 65536, 0},
        {2, 1024, 8192, 1 << 18, 0, 1 << 18, 0},       /* (chunks below the 32 KiB window) */
        {2, CUT_MIN, CUT_MAX, 1 << 18, 0, 1 << 18, 8}, /* views, as oci/inflate_thread */
        {2, CUT_MIN, CUT_MAX, 1 << 18, 1, 20000, 3},
    };
    struct result seq = run_seq(gz);
    assert_int_equal(seq.rc, want != NULL ? 0 : -1);
    uint64_t most = 0;
    for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
        int patient = i % 2 == 0; /* (the others' counts depend on how the threads ran) */
        struct result r = run_par(gz, ways[i].workers, ways[i].cmin, ways[i].cmax, ways[i].step,
                                  ways[i].vary, ways[i].rd, ways[i].hold, patient);
        if (want != NULL) {
            if (r.rc != 0)
                fail_msg("way %zu failed: %s", i, r.err.msg);
            assert_int_equal(r.out.len, want_len);
            assert_memory_equal(r.out.buf, want, want_len);
        } else {
            assert_int_equal(r.rc, -1);
            assert_true(r.err.msg[0] != '\0');
        }
        if (ways[i].workers == 0)
            assert_int_equal(r.ahead, 0);
        if (patient)
            most = r.ahead > most ? r.ahead : most;
        free(r.out.buf);
    }
    free(seq.out.buf);
    return most;
}

/* Independent pieces (zlib full flushes, kiln's own layers): chunks are decoded ahead. */
static void test_independent_pieces(void **state)
{
    (void)state;
    size_t len = 6 << 20;
    unsigned char *in = make_input(len, 1, 40);
    struct membuf gz = {0};
    gz_member(&gz, in, len, 6, Z_FULL_FLUSH, 128 * 1024, HDR_PLAIN);
    assert_true(check_all(&gz, in, len) >= 3);
    free(gz.buf);
    gz = (struct membuf){0};
    pgzip_member(&gz, in, len);
    check_all(&gz, in, len);
    /* its 1 MiB pieces compress to about 275 KiB, past CUT_MAX (cut there without a marker,
     * decoding ahead stops) and two to a default cut: cuts of 64 KiB to 1 MiB fall after each
     * piece, and every piece but the first is decoded ahead */
    assert_true(check_cuts(&gz, in, len, CUT_MIN, 1 << 20, 1) >= 3);
    free(gz.buf);
    free(in);
}

/* Sync flushes that keep the dictionary (as pigz writes): chunks decoded ahead refer back, so
 * none is used; no flush at all: no candidate, cuts at the most; both kinds of flush in one
 * stream: the chunk after one decoded ahead is decoded with its end as the dictionary. */
static void test_dependent_pieces(void **state)
{
    (void)state;
    size_t len = 5 << 20;
    unsigned char *in = make_input(len, 2, 60);
    struct membuf gz = {0};
    gz_member(&gz, in, len, 6, Z_SYNC_FLUSH, 64 * 1024, HDR_PLAIN);
    assert_int_equal(check_all(&gz, in, len), 0);
    free(gz.buf);
    gz = (struct membuf){0};
    gz_member(&gz, in, len, 1, Z_NO_FLUSH, len, HDR_PLAIN);
    assert_int_equal(check_all(&gz, in, len), 0);
    free(gz.buf);
    /* both in one stream: after a chunk decoded ahead, one that refers back into it */
    gz = (struct membuf){0};
    gz_member(&gz, in, len, 6, MIXED_FLUSH, 40 * 1024, HDR_PLAIN);
    assert_true(check_all(&gz, in, len) >= 1);
    free(gz.buf);
    free(in);
}

/* Stored blocks whose bytes are full of the candidate (00 00 FF FF): cuts inside them are no
 * boundaries; the decoder never takes them. */
static void test_stored_candidates(void **state)
{
    (void)state;
    size_t len = 3 << 20;
    unsigned char *in = kiln_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        in[i] = (unsigned char)("\0\0\xff\xff"[i % 4] ^ (i % 4099 == 0 ? 1 : 0));
    struct membuf gz = {0};
    gz_member(&gz, in, len, 0, Z_FULL_FLUSH, 100000, HDR_PLAIN);
    check_all(&gz, in, len);
    free(gz.buf);
    free(in);
}

/* A candidate that is no boundary but starts a valid stream of its own: a piece of DEFLATE
 * data (ending with a sync flush) stored verbatim inside a stored block. Decoded ahead it
 * succeeds, but the sequential decoder reaches it inside the stored block: never taken. */
static void test_false_candidate(void **state)
{
    (void)state;
    unsigned char *text = make_input(48 * 1024, 6, 100);
    struct membuf piece = {0};
    mem_put(&piece, "\0\0\xff\xff", 4);
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char out[65536];
    z.next_in = text;
    z.avail_in = 48 * 1024;
    z.next_out = out;
    z.avail_out = sizeof(out);
    assert_int_equal(deflate(&z, Z_FULL_FLUSH), Z_OK); /* (ends with 00 00 FF FF) */
    mem_put(&piece, out, sizeof(out) - z.avail_out);
    deflateEnd(&z);
    assert_true(piece.len < 30000);
    /* blocks of 60000 bytes: random bytes around the piece, one stored block each */
    size_t len = 20 * 60000;
    unsigned char *in = make_input(len, 7, 0);
    for (size_t off = 0; off < len; off += 60000)
        memcpy(in + off + 2000, piece.buf, piece.len);
    struct membuf gz = {0};
    gz_member(&gz, in, len, 0, Z_FULL_FLUSH, 60000, HDR_PLAIN);
    check_all(&gz, in, len);
    for (size_t cmin = 512; cmin <= 4096; cmin *= 2)
        check_cuts(&gz, in, len, cmin, 1 << 16, 0);
    free(gz.buf);
    free(piece.buf);
    free(in);
    free(text);
}

/* A chunk that gives more than a worker may hold (12 MiB of text between two candidates):
 * decoded by the sequential decoder, the same bytes. */
static void test_high_ratio(void **state)
{
    (void)state;
    size_t len = 24 << 20;
    unsigned char *in = make_input(len, 3, 100);
    struct membuf gz = {0};
    gz_member(&gz, in, len, 9, Z_FULL_FLUSH, 12 << 20, HDR_PLAIN);
    check_all(&gz, in, len);
    free(gz.buf);
    free(in);
}

/* Several members, one with every optional header field: the concatenation. */
static void test_members(void **state)
{
    (void)state;
    size_t a = 2 << 20, b = 1 << 20, c = 3 << 20;
    unsigned char *in = make_input(a + b + c, 4, 40);
    struct membuf gz = {0};
    pgzip_member(&gz, in, a);
    gz_member(&gz, in + a, b, 6, Z_FULL_FLUSH, 100000, HDR_ALL);
    gz_member(&gz, in + a + b, c, 6, Z_FULL_FLUSH, 200000, HDR_PLAIN);
    assert_true(check_all(&gz, in, a + b + c) >= 1);
    free(gz.buf);
    /* an empty member between two */
    gz = (struct membuf){0};
    gz_member(&gz, in, a, 6, Z_FULL_FLUSH, 100000, HDR_PLAIN);
    gz_member(&gz, in, 0, 6, Z_FULL_FLUSH, 100000, HDR_ALL);
    gz_member(&gz, in + a, b, 6, Z_FULL_FLUSH, 100000, HDR_PLAIN);
    check_all(&gz, in, a + b);
    free(gz.buf);
    free(in);
}

/* Expects every way of decoding gz to fail with a message holding `what`. */
static void expect_failure(const struct membuf *gz, const char *what)
{
    check_all(gz, NULL, 0);
    struct result r = run_par(gz, 2, CUT_MIN, CUT_MAX, 1 << 18, 0, 1 << 18, 0, 1);
    if (strstr(r.err.msg, what) == NULL)
        fail_msg("wanted \"%s\" in: %s", what, r.err.msg);
    free(r.out.buf);
}

/* Bad streams fail, whatever was decoded ahead. */
static void test_errors(void **state)
{
    (void)state;
    size_t len = 3 << 20;
    unsigned char *in = make_input(len, 5, 40);
    struct membuf gz = {0};
    gz_member(&gz, in, len, 6, Z_FULL_FLUSH, 100000, HDR_ALL);
    struct membuf bad = {0};
    size_t cuts[] = {5, 14, 30, gz.len / 2, gz.len - 6, gz.len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        bad.len = 0;
        mem_put(&bad, gz.buf, cuts[i]);
        expect_failure(&bad, "truncated");
    }
    /* the trailer's CRC, then its size */
    for (size_t at = gz.len - 8; at < gz.len; at += 4) {
        bad.len = 0;
        mem_put(&bad, gz.buf, gz.len);
        bad.buf[at] ^= 0x40;
        expect_failure(&bad, "checksum mismatch");
    }
    /* a byte changed deep inside the data (in a chunk decoded ahead) */
    bad.len = 0;
    mem_put(&bad, gz.buf, gz.len);
    bad.buf[gz.len * 3 / 4] ^= 0x10;
    check_all(&bad, NULL, 0);
    /* the header's CRC (FHCRC), then its method; reserved flags are ignored, as ISA-L does */
    size_t hcrc_at = 10 + 7 + 10 + 10;
    bad.len = 0;
    mem_put(&bad, gz.buf, gz.len);
    bad.buf[hcrc_at] ^= 1;
    expect_failure(&bad, "checksum mismatch");
    bad.buf[hcrc_at] ^= 1;
    bad.buf[2] = 7;
    check_all(&bad, NULL, 0);
    bad.buf[2] = 8;
    struct membuf plain = {0};
    gz_member(&plain, in, len, 6, Z_FULL_FLUSH, 100000, HDR_PLAIN);
    plain.buf[3] = 0xe0;
    check_all(&plain, in, len);
    free(plain.buf);
    /* data after the last member, and a second member's broken magic */
    bad.len = 0;
    mem_put(&bad, gz.buf, gz.len);
    mem_put(&bad, "junk", 4);
    expect_failure(&bad, "unexpected data after the end");
    bad.len = 0;
    mem_put(&bad, gz.buf, gz.len);
    mem_put(&bad, "\x1f\x8c", 2);
    expect_failure(&bad, "unexpected data after the end");
    free(bad.buf);
    free(gz.buf);
    free(in);
}

/* A source that gives its first `hold_at` bytes, then waits (up to 20 s) until the reader of
 * the output has seen some: as a download whose rest comes later. */
struct held_src {
    struct src s;
    size_t hold_at;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int seen, waited_out;
};

static const void *held_block(void *ctx, size_t *len, kiln_error_t *err)
{
    struct held_src *h = ctx;
    if (h->s.pos >= h->hold_at) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 20;
        pthread_mutex_lock(&h->lock);
        while (!h->seen && !h->waited_out)
            if (pthread_cond_timedwait(&h->cond, &h->lock, &until) != 0)
                h->waited_out = 1;
        pthread_mutex_unlock(&h->lock);
    } else if (h->s.pos + h->s.step > h->hold_at) {
        size_t n = h->hold_at - h->s.pos; /* (the piece up to the hold) */
        const void *r = h->s.buf + h->s.pos;
        h->s.pos += n;
        *len = n;
        return r;
    }
    return src_block(&h->s, len, err);
}

/* Output comes as the input arrives: with the rest of the stream held back until some output
 * was read, the decoder (and its reader thread, which waits for that rest) still gives the
 * bytes of what came; then the whole, with workers and without. */
static void test_streams_as_it_arrives(void **state)
{
    (void)state;
    size_t len = 6 << 20;
    unsigned char *in = make_input(len, 8, 40);
    struct membuf gz = {0};
    pgzip_member(&gz, in, len);
    for (int workers = 0; workers <= 2; workers += 2) {
        struct held_src h = {.s = {.buf = gz.buf, .len = gz.len, .step = 100000},
                             .hold_at = gz.len * 2 / 5};
        pthread_mutex_init(&h.lock, NULL);
        pthread_cond_init(&h.cond, NULL);
        kiln_decompressor_t *d = NULL;
        kiln_error_t err = {0};
        assert_int_equal(
            kiln_decompressor_new_blocks(held_block, &h, NULL, NULL, NULL, NULL, &d, &err), 0);
        kiln_pinflate_t *p = kiln_pinflate_new(d, workers);
        assert_non_null(p);
        struct membuf out = {0};
        unsigned char *buf = kiln_xmalloc(1 << 16);
        ssize_t n;
        while ((n = kiln_pinflate_read(p, buf, 1 << 16, &err)) > 0) {
            mem_put(&out, buf, (size_t)n);
            pthread_mutex_lock(&h.lock);
            h.seen = 1;
            pthread_cond_broadcast(&h.cond);
            pthread_mutex_unlock(&h.lock);
        }
        assert_int_equal(n, 0);
        assert_int_equal(h.waited_out, 0); /* output came before the rest of the input */
        assert_int_equal(out.len, len);
        assert_memory_equal(out.buf, in, len);
        kiln_pinflate_free(p);
        kiln_decompressor_free(d);
        pthread_cond_destroy(&h.cond);
        pthread_mutex_destroy(&h.lock);
        free(buf);
        free(out.buf);
    }
    free(gz.buf);
    free(in);
}

/* A kiln-compressed layer of many files unpacked with workers (views of chunks decoded ahead
 * handed to the tar reader and the hasher) and without: the same tree. */
static void test_unpack_layer(void **state)
{
    (void)state;
    enum { FILES = 400 };
    _cleanup_free_ char *dir = NULL;
    kiln_error_t err = {0};
    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-pinflate-", &dir, &err), 0);
    struct tentry e[FILES + 1];
    char *names[FILES], *datas[FILES];
    uint32_t x = 99;
    e[0] = (struct tentry)DIR_("d");
    for (int i = 0; i < FILES; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t len = 1000 + x % 40000;
        datas[i] = kiln_xmalloc(len + 1);
        for (size_t j = 0; j < len; j++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            datas[i][j] = (char)('a' + x % 26);
        }
        datas[i][len] = '\0';
        names[i] = kiln_xasprintf("d/f%03d", i);
        e[i + 1] = (struct tentry)REG(names[i], datas[i]);
    }
    _cleanup_free_ char *tar = kiln_xasprintf("%s/layer.tar", dir);
    make_tar(tar, e, FILES + 1);
    _cleanup_free_ char *plain = NULL;
    size_t plen = 0;
    assert_int_equal(kiln_fs_read_file(tar, 64 << 20, &plain, &plen, &err), 0);
    struct membuf gz = {0};
    pgzip_member(&gz, (const unsigned char *)plain, plen);
    assert_true(gz.len > 4 << 20); /* (several chunks) */
    _cleanup_free_ char *gzpath = kiln_xasprintf("%s/layer.tar.gz", dir);
    assert_int_equal(kiln_fs_write_file_atomic(gzpath, gz.buf, gz.len, 0644, &err), 0);
    char *trees[2] = {NULL, NULL};
    const char *threads[2] = {"2", "0"};
    for (int k = 0; k < 2; k++) {
        setenv("KILN_INFLATE_THREADS", threads[k], 1);
        _cleanup_free_ char *root = kiln_xasprintf("%s/root%d", dir, k);
        assert_int_equal(mkdir(root, 0755), 0);
        _cleanup_close_ int fd = open(gzpath, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        if (kiln_layer_unpack(fd, root, NULL, NULL, &err) < 0)
            fail_msg("unpack with %s threads: %s", threads[k], err.msg);
        trees[k] = kiln_xstrdup("");
        dump_tree(root, "", &trees[k]);
    }
    unsetenv("KILN_INFLATE_THREADS");
    assert_string_equal(trees[0], trees[1]);
    assert_non_null(strstr(trees[0], "d/f399 "));
    free(trees[0]);
    free(trees[1]);
    for (int i = 0; i < FILES; i++) {
        free(names[i]);
        free(datas[i]);
    }
    free(gz.buf);
    kiln_fs_rm_rf(dir, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_pieces),
        cmocka_unit_test(test_dependent_pieces),
        cmocka_unit_test(test_stored_candidates),
        cmocka_unit_test(test_false_candidate),
        cmocka_unit_test(test_high_ratio),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_streams_as_it_arrives),
        cmocka_unit_test(test_unpack_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
