/* kiln — walking DEFLATE blocks to find the final one (see deflate_join.h). */
#include "oci/deflate_join.h"

#include <stdint.h>
#include <string.h>

#define FAST_BITS 10
#define MAX_BITS 15

/* A canonical Huffman code: a FAST_BITS lookup (symbol << 4 | length, 0 =
 * longer code) and the counts and sorted symbols for the longer codes. */
struct huff {
    uint16_t fast[1 << FAST_BITS];
    uint16_t count[MAX_BITS + 1];
    uint16_t symbol[320];
};

/* A bit reader over buf[0..n): the position in bits. */
struct bits {
    const unsigned char *buf;
    size_t n;
    size_t pos;
};

/* The next 57 bits or more at the position (zeros past the end). */
static inline uint64_t peek(const struct bits *b)
{
    size_t byte = b->pos >> 3;
    uint64_t v = 0;
    if (byte + 8 <= b->n) {
        memcpy(&v, b->buf + byte, 8);
    } else if (byte < b->n) {
        unsigned char tmp[8] = {0};
        memcpy(tmp, b->buf + byte, b->n - byte);
        memcpy(&v, tmp, 8);
    }
    return v >> (b->pos & 7); /* little-endian machines only (x86-64, arm64) */
}

static inline unsigned take(struct bits *b, unsigned count)
{
    unsigned v = count ? (unsigned)(peek(b) & ((1u << count) - 1)) : 0;
    b->pos += count;
    return v;
}

/* Builds a code from the lengths of n symbols. -1 on an over-subscribed set. */
static int build(struct huff *h, const unsigned char *lens, unsigned n)
{
    uint16_t offs[MAX_BITS + 2];
    memset(h->count, 0, sizeof(h->count));
    memset(h->fast, 0, sizeof(h->fast));
    for (unsigned s = 0; s < n; s++)
        h->count[lens[s]]++;
    int left = 1;
    for (unsigned l = 1; l <= MAX_BITS; l++) {
        left = left * 2 - h->count[l];
        if (left < 0)
            return -1;
    }
    offs[1] = 0;
    for (unsigned l = 1; l <= MAX_BITS; l++)
        offs[l + 1] = (uint16_t)(offs[l] + h->count[l]);
    for (unsigned s = 0; s < n; s++)
        if (lens[s])
            h->symbol[offs[lens[s]]++] = (uint16_t)s;
    /* The fast table: codes are sent MSB first, so its index is the code reversed. */
    unsigned code = 0, k = 0;
    for (unsigned l = 1; l <= FAST_BITS; l++) {
        for (unsigned i = 0; i < h->count[l]; i++, k++, code++) {
            unsigned rev = 0;
            for (unsigned j = 0; j < l; j++)
                rev |= ((code >> j) & 1u) << (l - 1 - j);
            for (unsigned e = rev; e < (1u << FAST_BITS); e += 1u << l)
                h->fast[e] = (uint16_t)(h->symbol[k] << 4 | l);
        }
        code <<= 1;
    }
    h->count[0] = 0;
    return 0;
}

/* Decodes one symbol; -1 when no code matches. */
static inline int decode(struct bits *b, const struct huff *h)
{
    uint64_t v = peek(b);
    uint16_t e = h->fast[v & ((1u << FAST_BITS) - 1)];
    if (e != 0) {
        b->pos += e & 15;
        return e >> 4;
    }
    /* A longer code: canonical decoding bit by bit (as zlib's puff). */
    int code = 0, first = 0, index = 0;
    for (unsigned l = 1; l <= MAX_BITS; l++) {
        code |= (int)((v >> (l - 1)) & 1);
        int count = h->count[l];
        if (code - count < first) {
            b->pos += l;
            return h->symbol[index + (code - first)];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

static const unsigned char len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                            2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned char dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                             6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Skips a compressed block's symbols up to its end-of-block code. */
static int skip_codes(struct bits *b, const struct huff *lit, const struct huff *dist)
{
    for (;;) {
        if (b->pos > b->n * 8)
            return -1;
        int s = decode(b, lit);
        if (s < 0 || s > 285)
            return -1;
        if (s < 256)
            continue;
        if (s == 256)
            return 0;
        b->pos += len_extra[s - 257];
        int d = decode(b, dist);
        if (d < 0 || d > 29)
            return -1;
        b->pos += dist_extra[d];
    }
}

/* Reads a dynamic block's code lengths and builds its two codes. */
static int read_dynamic(struct bits *b, struct huff *lit, struct huff *dist)
{
    static const unsigned char order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                            11, 4,  12, 3, 13, 2, 14, 1, 15};
    unsigned char lens[320] = {0};
    unsigned nlit = take(b, 5) + 257, ndist = take(b, 5) + 1, ncode = take(b, 4) + 4;
    if (nlit > 286 || ndist > 30)
        return -1;
    for (unsigned i = 0; i < ncode; i++)
        lens[order[i]] = (unsigned char)take(b, 3);
    struct huff cl;
    if (build(&cl, lens, 19) < 0)
        return -1;
    memset(lens, 0, sizeof(lens));
    for (unsigned i = 0; i < nlit + ndist;) {
        int s = decode(b, &cl);
        unsigned rep, val = 0;
        if (s < 0)
            return -1;
        if (s < 16) {
            lens[i++] = (unsigned char)s;
            continue;
        }
        if (s == 16) {
            if (i == 0)
                return -1;
            val = lens[i - 1];
            rep = 3 + take(b, 2);
        } else if (s == 17) {
            rep = 3 + take(b, 3);
        } else {
            rep = 11 + take(b, 7);
        }
        if (i + rep > nlit + ndist)
            return -1;
        while (rep--)
            lens[i++] = (unsigned char)val;
    }
    if (lens[256] == 0 || b->pos > b->n * 8)
        return -1;
    if (build(lit, lens, nlit) < 0 || build(dist, lens + nlit, ndist) < 0)
        return -1;
    return 0;
}

/* The fixed codes of RFC 1951 3.2.6, built once per call (cheap, rare). */
static void fixed_codes(struct huff *lit, struct huff *dist)
{
    unsigned char lens[320];
    unsigned i = 0;
    for (; i < 144; i++)
        lens[i] = 8;
    for (; i < 256; i++)
        lens[i] = 9;
    for (; i < 280; i++)
        lens[i] = 7;
    for (; i < 288; i++)
        lens[i] = 8;
    build(lit, lens, 288);
    memset(lens, 5, 30);
    build(dist, lens, 30);
}

/* Finds the bit where the final block starts and the bit after its end. */
static int find_final(const unsigned char *buf, size_t n, size_t *start, size_t *end)
{
    struct bits b = {buf, n, 0};
    struct huff lit, dist;
    int have_fixed = 0;
    for (;;) {
        size_t at = b.pos;
        if (at + 3 > n * 8)
            return -1;
        unsigned final = take(&b, 1), type = take(&b, 2);
        if (type == 0) {
            b.pos = (b.pos + 7) & ~(size_t)7;
            if (b.pos / 8 + 4 > n)
                return -1;
            unsigned len = take(&b, 16), nlen = take(&b, 16);
            if ((len ^ 0xffffu) != nlen)
                return -1;
            b.pos += (size_t)len * 8;
        } else if (type == 1) {
            if (!have_fixed)
                fixed_codes(&lit, &dist);
            have_fixed = 1;
            if (skip_codes(&b, &lit, &dist) < 0)
                return -1;
        } else if (type == 2) {
            have_fixed = 0;
            if (read_dynamic(&b, &lit, &dist) < 0 || skip_codes(&b, &lit, &dist) < 0)
                return -1;
        } else {
            return -1;
        }
        if (b.pos > n * 8)
            return -1;
        if (final) {
            *start = at;
            *end = b.pos;
            return 0;
        }
    }
}

int kiln_deflate_make_nonfinal(unsigned char *buf, size_t *len)
{
    size_t start, end;
    if (find_final(buf, *len, &start, &end) < 0 || (end + 7) / 8 != *len)
        return -1;
    buf[start / 8] &= (unsigned char)~(1u << (start % 8));
    if (end % 8)
        buf[end / 8] &= (unsigned char)((1u << (end % 8)) - 1);
    /* An empty stored block: 3 header bits (0, 00), zero padding to the byte,
     * then LEN 0000 and NLEN ffff. */
    size_t n = (end + 3 + 7) / 8;
    while (*len < n)
        buf[(*len)++] = 0;
    memcpy(buf + *len, "\x00\x00\xff\xff", 4);
    *len += 4;
    return 0;
}
