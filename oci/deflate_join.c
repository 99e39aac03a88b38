/* kiln — walking DEFLATE blocks to find the final one (see deflate_join.h).
 *
 * The walk decodes every Huffman symbol of the stream without producing any
 * output, so its speed is that of dependent table lookups: each code is a
 * two-level table (a root indexed by the next ROOT bits, a subtable for longer
 * codes) whose entry already says how many bits the symbol takes *with* its
 * extra bits and which table the next symbol is looked up in, so a literal
 * costs one lookup and a match two (length, distance), with no branch on
 * which it was. */
#include "oci/deflate_join.h"

#include <stdint.h>
#include <string.h>

#define MAX_BITS 15
#define LIT_ROOT 11
#define DIST_ROOT 10
#define CL_ROOT 7
/* One array holds both codes: the literal/length root table at 0, the
 * distance root table at DIST_BASE, then the subtables of both. Each
 * subtable belongs to one root prefix of a code longer than the root, at most
 * 2^(15 - root) entries, and there are at most as many such prefixes as
 * symbols. */
#define DIST_BASE (1u << LIT_ROOT)
#define TAB_SIZE                                                                                   \
    ((1 << LIT_ROOT) + (1 << DIST_ROOT) + 288 * (1 << (MAX_BITS - LIT_ROOT)) +                     \
     32 * (1 << (MAX_BITS - DIST_ROOT)))

/* An entry: bits 0-7 the bits to take (code length plus the symbol's extra
 * bits; in a subtable, those past the root), bit 8 set on an entry the walk
 * passes without a branch (a literal, a length or a distance), bits 9-11 its
 * kind, bits 12-15 a subtable's index width, bits 16-31 a value: for a
 * passing entry the "next table" field NEXT_LIT or NEXT_DIST (see skip_codes),
 * for a subtable link its offset, for a code-length code's symbol the symbol.
 * 0 (KIND_BAD, not passing) is a code the stream's lengths left unassigned. */
enum { KIND_BAD, KIND_LIT, KIND_LEN, KIND_EOB, KIND_DIST, KIND_SUB };
#define E_PASS 0x100u
#define E_TAKE(e) ((e)&0xffu)
#define E_KIND(e) (((e) >> 9) & 0x7u)
#define E_SUBW(e) (((e) >> 12) & 0xfu)
#define E_VAL(e) ((e) >> 16)
#define ENTRY(take, kind, subw, val)                                                               \
    ((uint32_t)(take) | (uint32_t)(kind) << 9 | (uint32_t)(subw) << 12 | (uint32_t)(val) << 16)
/* The next lookup's index is (bits | DIST_BASE) & next: the low LIT_ROOT bits
 * in the literal/length root, or DIST_BASE plus the low DIST_ROOT bits. */
#define NEXT_LIT ((1u << LIT_ROOT) - 1)
#define NEXT_DIST (DIST_BASE | ((1u << DIST_ROOT) - 1))

enum code_type { CODE_LIT, CODE_DIST, CODE_CL };

static const unsigned char len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                            2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned char dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                             6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* The entry of symbol s of a code of type t whose code and extra bits take
 * `take` bits. */
static uint32_t sym_entry(enum code_type t, unsigned s, unsigned take)
{
    if (t == CODE_CL)
        return ENTRY(take, KIND_LIT, 0, s) | E_PASS;
    if (t == CODE_DIST) {
        if (s >= 30)
            return KIND_BAD;
        return ENTRY(take + dist_extra[s], KIND_DIST, 0, NEXT_LIT) | E_PASS;
    }
    if (s < 256)
        return ENTRY(take, KIND_LIT, 0, NEXT_LIT) | E_PASS;
    if (s == 256)
        return ENTRY(take, KIND_EOB, 0, 0);
    if (s > 285)
        return KIND_BAD;
    return ENTRY(take + len_extra[s - 257], KIND_LEN, 0, NEXT_DIST) | E_PASS;
}

/* The low `len` (<= 16) bits of code, reversed (codes are sent MSB first). */
static inline unsigned reverse(unsigned code, unsigned len)
{
    unsigned r = code & 0xffffu;
    r = (r & 0x5555u) << 1 | (r >> 1 & 0x5555u);
    r = (r & 0x3333u) << 2 | (r >> 2 & 0x3333u);
    r = (r & 0x0f0fu) << 4 | (r >> 4 & 0x0f0fu);
    r = (r & 0x00ffu) << 8 | (r >> 8 & 0x00ffu);
    return r >> (16 - len);
}

/* Builds the two-level table of a canonical code from the lengths of its n
 * symbols: its root of 2^root entries at t + base, its subtables from *used
 * on (which is advanced; t has room for `size` entries). -1 on an
 * over-subscribed set (an incomplete one leaves KIND_BAD entries, refused
 * when met). */
static int build(uint32_t *t, size_t base, size_t *used, size_t size, unsigned root,
                 enum code_type type, const unsigned char *lens, unsigned n)
{
    unsigned count[MAX_BITS + 1] = {0}, next[MAX_BITS + 2];
    for (unsigned s = 0; s < n; s++)
        count[lens[s]]++;
    count[0] = 0;
    int left = 1;
    for (unsigned l = 1; l <= MAX_BITS; l++) {
        left = left * 2 - (int)count[l];
        if (left < 0)
            return -1;
    }
    next[1] = 0;
    for (unsigned l = 1; l <= MAX_BITS; l++)
        next[l + 1] = (next[l] + count[l]) << 1;

    /* The longest code under each root prefix sizes that prefix's subtable;
     * the prefixes that have one are listed (a few per block: walking all
     * 2^root prefixes for them cost more than the rest of the build). */
    unsigned char longest[1 << LIT_ROOT];
    unsigned code_of[320], prefixes[320], np = 0;
    uint32_t *r = t + base;
    memset(longest, 0, (size_t)1 << root);
    for (unsigned s = 0; s < n; s++) {
        unsigned l = lens[s];
        if (l == 0)
            continue;
        code_of[s] = reverse(next[l]++, l);
        if (l > root) {
            unsigned p = code_of[s] & ((1u << root) - 1);
            if (longest[p] == 0)
                prefixes[np++] = p;
            if (l > longest[p])
                longest[p] = (unsigned char)l;
        }
    }
    if (left > 0) /* incomplete: the codes left out must read as KIND_BAD */
        memset(r, 0, (size_t)1 << root << 2);
    for (unsigned i = 0; i < np; i++) {
        unsigned p = prefixes[i];
        unsigned w = longest[p] - root;
        if (*used + ((size_t)1 << w) > size)
            return -1;
        r[p] = ENTRY(root, KIND_SUB, w, *used);
        memset(t + *used, 0, (size_t)1 << w << 2);
        *used += (size_t)1 << w;
    }
    for (unsigned s = 0; s < n; s++) {
        unsigned l = lens[s];
        if (l == 0)
            continue;
        unsigned rev = code_of[s];
        if (l <= root) {
            uint32_t e = sym_entry(type, s, l);
            for (unsigned i = rev; i < (1u << root); i += 1u << l)
                r[i] = e;
        } else {
            uint32_t sub = r[rev & ((1u << root) - 1)];
            unsigned w = E_SUBW(sub), sl = l - root;
            uint32_t e = sym_entry(type, s, sl);
            for (unsigned i = rev >> root; i < (1u << w); i += 1u << sl)
                t[E_VAL(sub) + i] = e;
        }
    }
    return 0;
}

/* The next 57 bits or more at bit position pos (zeros past the end). */
static inline uint64_t peek(const unsigned char *buf, size_t n, size_t pos)
{
    size_t byte = pos >> 3;
    uint64_t v = 0;
    if (byte + 8 <= n) {
        memcpy(&v, buf + byte, 8);
    } else if (byte < n) {
        unsigned char tmp[8] = {0};
        memcpy(tmp, buf + byte, n - byte);
        memcpy(&v, tmp, 8);
    }
    return v >> (pos & 7); /* little-endian machines only (x86-64, arm64) */
}

/* A bit reader holding up to 63 bits in a register: refilled 8 bytes at a
 * time (the bits above `left` are the stream's next bits, so OR-ing the same
 * bytes in again changes nothing), with zero bytes past the end counted in
 * `at` so that running off the end is seen. */
struct reader {
    const unsigned char *buf;
    size_t n;
    size_t at; /* the next byte to load */
    uint64_t bits;
    unsigned left;
};

static inline void refill(struct reader *r)
{
    if (r->at + 8 <= r->n) {
        uint64_t w;
        memcpy(&w, r->buf + r->at, 8); /* little-endian machines only (x86-64, arm64) */
        r->bits |= w << r->left;
        r->at += (63 - r->left) >> 3;
        r->left |= 56;
        return;
    }
    while (r->left <= 56) {
        if (r->at < r->n)
            r->bits |= (uint64_t)r->buf[r->at] << r->left;
        r->at++;
        r->left += 8;
    }
}

static inline void consume(struct reader *r, unsigned count)
{
    r->bits >>= count;
    r->left -= count;
}

/* The stream position in bits. */
static inline size_t reader_pos(const struct reader *r)
{
    return r->at * 8 - r->left;
}

/* Skips a compressed block's symbols up to its end-of-block code. Literals,
 * lengths and distances are all "passing" entries: take their bits, and look
 * the next symbol up in the table their entry names (a length is followed by
 * a distance, everything else by a literal/length), with no branch on what
 * the symbol was (literals and matches alternate unpredictably: a branch on
 * the kind mispredicts often). Only a code longer than its root, the end of
 * the block and an invalid code leave the loop's straight path (slow_entry).
 *
 * A literal's root entry takes at most 11 bits, a length's 11 + 5 and a
 * distance's 10 + 13, and two passing entries in a row take at most 39 (a
 * length then a distance); a refill leaves 56 bits or more. So two symbols
 * are passed per refill and the next root entry is still looked up from the
 * bits held (17 or more), and a subtable entry (15 + 13 bits at most) is read
 * from the 33 or more held after one symbol. */
#define PASS_ONE()                                                                                 \
    do {                                                                                           \
        if (__builtin_expect(!(e & E_PASS), 0))                                                    \
            goto slow;                                                                             \
        consume(&r, E_TAKE(e));                                                                    \
        e = t[(r.bits | DIST_BASE) & E_VAL(e)];                                                    \
    } while (0)

static int skip_codes(const unsigned char *buf, size_t n, size_t *pos, const uint32_t *t)
{
    struct reader r = {buf, n, *pos / 8, 0, 0};
    size_t nbits = n * 8;
    refill(&r);
    consume(&r, *pos % 8);
    refill(&r);
    uint32_t e = t[r.bits & NEXT_LIT];
    for (;;) {
        if (r.at > n + 8) /* 8 bytes of zeros past the end were read */
            return -1;
        PASS_ONE();
        PASS_ONE();
        refill(&r);
        continue;
    slow:;
        unsigned take = E_TAKE(e);
        if (E_KIND(e) == KIND_SUB) {
            /* A link takes its root's bits; the subtable is indexed by the
             * bits after them. */
            unsigned sub = (unsigned)(r.bits >> take) & ((1u << E_SUBW(e)) - 1);
            e = t[E_VAL(e) + sub];
            take += E_TAKE(e);
        }
        consume(&r, take);
        if (E_KIND(e) == KIND_EOB) {
            *pos = reader_pos(&r);
            return *pos <= nbits ? 0 : -1;
        }
        if (!(e & E_PASS))
            return -1;
        e = t[(r.bits | DIST_BASE) & E_VAL(e)];
        refill(&r);
    }
}

/* Takes count (<= 16) bits at *pos. */
static inline unsigned take_bits(const unsigned char *buf, size_t n, size_t *pos, unsigned count)
{
    unsigned v = (unsigned)(peek(buf, n, *pos) & ((1u << count) - 1));
    *pos += count;
    return v;
}

/* The tables of one block's codes. */
struct codes {
    uint32_t t[TAB_SIZE];
};

/* Builds a block's literal/length and distance tables. */
static int build_codes(struct codes *c, const unsigned char *lit, unsigned nlit,
                       const unsigned char *dist, unsigned ndist)
{
    size_t used = DIST_BASE + (1u << DIST_ROOT);
    if (build(c->t, 0, &used, TAB_SIZE, LIT_ROOT, CODE_LIT, lit, nlit) < 0 ||
        build(c->t, DIST_BASE, &used, TAB_SIZE, DIST_ROOT, CODE_DIST, dist, ndist) < 0)
        return -1;
    return 0;
}

/* Reads a dynamic block's code lengths and builds its two codes. */
static int read_dynamic(const unsigned char *buf, size_t n, size_t *pos, struct codes *c)
{
    static const unsigned char order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                            11, 4,  12, 3, 13, 2, 14, 1, 15};
    unsigned char lens[320] = {0};
    unsigned nlit = take_bits(buf, n, pos, 5) + 257, ndist = take_bits(buf, n, pos, 5) + 1;
    unsigned ncode = take_bits(buf, n, pos, 4) + 4;
    if (nlit > 286 || ndist > 30)
        return -1;
    for (unsigned i = 0; i < ncode; i++)
        lens[order[i]] = (unsigned char)take_bits(buf, n, pos, 3);
    uint32_t cl[1 << CL_ROOT];
    size_t used = 1 << CL_ROOT;
    if (build(cl, 0, &used, 1 << CL_ROOT, CL_ROOT, CODE_CL, lens, 19) < 0)
        return -1;
    memset(lens, 0, sizeof(lens));
    for (unsigned i = 0; i < nlit + ndist;) {
        if (*pos > n * 8)
            return -1;
        uint32_t e = cl[peek(buf, n, *pos) & ((1u << CL_ROOT) - 1)];
        if (E_KIND(e) != KIND_LIT)
            return -1;
        *pos += E_TAKE(e);
        unsigned s = E_VAL(e), rep, val = 0;
        if (s < 16) {
            lens[i++] = (unsigned char)s;
            continue;
        }
        if (s == 16) {
            if (i == 0)
                return -1;
            val = lens[i - 1];
            rep = 3 + take_bits(buf, n, pos, 2);
        } else if (s == 17) {
            rep = 3 + take_bits(buf, n, pos, 3);
        } else {
            rep = 11 + take_bits(buf, n, pos, 7);
        }
        if (i + rep > nlit + ndist)
            return -1;
        while (rep--)
            lens[i++] = (unsigned char)val;
    }
    if (lens[256] == 0 || *pos > n * 8)
        return -1;
    return build_codes(c, lens, nlit, lens + nlit, ndist);
}

/* The fixed codes of RFC 1951 3.2.6 (rare in a compressor's output: built
 * when a block uses them). */
static void fixed_codes(struct codes *c)
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
    unsigned char dist[30];
    memset(dist, 5, sizeof(dist));
    build_codes(c, lens, 288, dist, 30);
}

/* Finds the bit where the final block starts and the bit after its end. */
static int find_final(const unsigned char *buf, size_t n, size_t *start, size_t *end)
{
    struct codes c;
    size_t pos = 0;
    int have_fixed = 0;
    for (;;) {
        size_t at = pos;
        if (at + 3 > n * 8)
            return -1;
        unsigned final = take_bits(buf, n, &pos, 1), type = take_bits(buf, n, &pos, 2);
        if (type == 0) {
            pos = (pos + 7) & ~(size_t)7;
            if (pos / 8 + 4 > n)
                return -1;
            unsigned len = take_bits(buf, n, &pos, 16), nlen = take_bits(buf, n, &pos, 16);
            if ((len ^ 0xffffu) != nlen)
                return -1;
            pos += (size_t)len * 8;
        } else if (type == 1) {
            if (!have_fixed)
                fixed_codes(&c);
            have_fixed = 1;
            if (skip_codes(buf, n, &pos, c.t) < 0)
                return -1;
        } else if (type == 2) {
            have_fixed = 0;
            if (read_dynamic(buf, n, &pos, &c) < 0 || skip_codes(buf, n, &pos, c.t) < 0)
                return -1;
        } else {
            return -1;
        }
        if (pos > n * 8)
            return -1;
        if (final) {
            *start = at;
            *end = pos;
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
