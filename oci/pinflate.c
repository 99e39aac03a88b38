/* kiln — one gzip stream inflated on several threads where its bytes allow it (see
 * pinflate.h). */
#include "oci/pinflate.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "oci/pgzip.h"
#include "utils/mem.h"

#define CHUNK_MIN (512u * 1024)      /* compressed bytes of a chunk before a cut is looked for */
#define CHUNK_MAX (2u * 1024 * 1024) /* a chunk is cut here when no candidate came */
#define READ_PIECE (256u * 1024)     /* one read of the input */
#define OUT_CAP (8u * 1024 * 1024)   /* a worker's output for one chunk */
#define HIST (32u * 1024)            /* DEFLATE's window */
#define FAIL_STOP 4                  /* chunks failing in a row before decoding ahead stops */
#define BARE_STOP 2                  /* chunks cut without a candidate before it stops */
#define MARKER "\0\0\xff\xff"        /* an empty stored block's LEN and NLEN */
#define VIEWS 64                     /* views handed out and not given back, at most */
#define HANDED_OUT (-2)              /* read_body: a worker's chunk is handed out instead */

enum { J_NONE, J_QUEUED, J_RUNNING, J_OK, J_FAIL };
enum { P_HEADER, P_BODY, P_TRAILER, P_END };

typedef struct chunk {
    unsigned char *in;  /* in_cap bytes, len of them the chunk's so far (under the lock) */
    size_t len, pos;    /* pos: the sequential decoder's next byte */
    int closed;         /* len is final: the reader cut the chunk (under the lock) */
    int seq;            /* the decoder began it before it was closed: never queued */
    int job;            /* J_* (under the lock) */
    unsigned char *out; /* a worker's output (J_OK): olen bytes, their CRC-32 */
    size_t olen;
    uint32_t crc;
    struct chunk *next;
} chunk_t;

struct kiln_pinflate {
    kiln_decompressor_t *d;
    size_t chunk_min, chunk_max, in_cap; /* in_cap: a chunk's buffer */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t th[KILN_PINFLATE_MAX_WORKERS], reader;
    int nth, stop, rstarted;
    chunk_t *head, *tail; /* the chunks read (the last maybe still being read), in order */
    size_t queued, maxq;
    unsigned char *carry; /* the reader's: input read past the last cut */
    size_t carry_len;
    int in_done, in_failed; /* the reader is done (its input ended, or failed with in_err) */
    kiln_error_t in_err;
    int ahead_on;  /* chunks are still given to the workers (under the lock) */
    int wait_cuts; /* the decoder waits for each chunk's cut (kiln_pinflate_wait_cuts) */
    int fails;
    unsigned char *free_in[2 * KILN_PINFLATE_MAX_WORKERS + 2]; /* buffers to reuse */
    unsigned char *free_out[2 * KILN_PINFLATE_MAX_WORKERS + 2];
    size_t n_in, n_out;
    /* the sequential decoder */
    struct inflate_state *st;
    int phase;     /* P_* */
    int hdr_first; /* a member's first byte, read to see whether one follows; -1 */
    int reinit;    /* st starts again from hist (after a worker's chunk) */
    int full;      /* st's last call filled its output: it may hold more */
    unsigned char hist[HIST];
    uint32_t crc, isize;   /* of the member's output so far */
    unsigned char back[8]; /* input st had read ahead of its member's end */
    size_t back_len, back_pos;
    chunk_t *deliver; /* a worker's chunk being handed out from dpos */
    size_t dpos;
    int dview; /* a view of it was handed out */
    /* the views read_view handed out, oldest first: the buffer each frees once given back
     * (a worker's chunk output, with its last view), else NULL */
    unsigned char *views[VIEWS];
    size_t v_head, v_n;
    uint64_t n_chunks, n_ahead;
    int failed;
    kiln_error_t err;
};

int kiln_pinflate_auto_workers(void)
{
    const char *v = getenv("KILN_INFLATE_THREADS");
    if (v != NULL && *v != '\0') {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end == '\0' && n >= 0)
            return n > KILN_PINFLATE_MAX_WORKERS ? KILN_PINFLATE_MAX_WORKERS : (int)n;
    }
    int n = kiln_pgzip_auto_workers();
    if (n < 2)
        return 0;
    return n > KILN_PINFLATE_MAX_WORKERS ? KILN_PINFLATE_MAX_WORKERS : n;
}

/* A buffer of a pool (locked), or a new one of cap bytes. */
static unsigned char *pool_get(unsigned char **pool, size_t *n, size_t cap)
{
    return *n > 0 ? pool[--*n] : kiln_xmalloc(cap);
}

/* Gives b back to a pool (locked), freeing it when the pool is full. */
static void pool_put(unsigned char **pool, size_t *n, size_t max, unsigned char *b)
{
    if (b == NULL)
        return;
    if (*n < max)
        pool[(*n)++] = b;
    else
        free(b);
}

/* Whether st stopped at a block boundary, all its input taken and nothing held back (a
 * header it started to read with no byte of it there yet is one too: ISA-L reads it again
 * from what it kept, which is nothing). */
static int at_boundary(const struct inflate_state *st)
{
    return (st->block_state == ISAL_BLOCK_NEW_HDR || st->block_state == ISAL_BLOCK_HDR) &&
           st->read_in_length == 0 && st->tmp_in_size == 0 && st->avail_in == 0;
}

/* A worker's decode of c from its first byte with no history: J_OK with its output, or
 * J_FAIL (not a block start, a reference before it, a final block, too much output). */
static int decode_ahead(struct inflate_state *st, chunk_t *c, unsigned char *out)
{
    isal_inflate_init(st);
    st->crc_flag = ISAL_DEFLATE;
    st->next_in = c->in;
    st->avail_in = (uint32_t)c->len;
    st->next_out = out;
    st->avail_out = OUT_CAP;
    if (isal_inflate(st) != ISAL_DECOMP_OK || st->avail_out == 0 || !at_boundary(st))
        return J_FAIL;
    c->olen = OUT_CAP - st->avail_out;
    if (c->olen < HIST) /* (its end is the next chunk's dictionary) */
        return J_FAIL;
    c->crc = crc32_gzip_refl(0, out, c->olen);
    return J_OK;
}

/* A worker: decodes queued chunks, oldest first, until stopped. */
static void *worker_main(void *arg)
{
    kiln_pinflate_t *p = arg;
    struct inflate_state *st = kiln_xmalloc(sizeof(*st));
    pthread_setname_np(pthread_self(), "kiln-pinflate"); /* as ps and perf show it */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        chunk_t *c = NULL;
        while (!p->stop) {
            for (c = p->head; c != NULL && c->job != J_QUEUED; c = c->next)
                ;
            if (c != NULL)
                break;
            pthread_cond_wait(&p->cond, &p->lock);
        }
        if (p->stop)
            break;
        c->job = J_RUNNING;
        unsigned char *out = pool_get(p->free_out, &p->n_out, OUT_CAP);
        pthread_mutex_unlock(&p->lock);
        int r = decode_ahead(st, c, out);
        pthread_mutex_lock(&p->lock);
        if (r == J_OK)
            c->out = out;
        else
            pool_put(p->free_out, &p->n_out, p->maxq, out);
        c->job = r;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    free(st);
    return NULL;
}

/* Drops the first chunk (locked; waiting for a worker still decoding it). */
static void pop_locked(kiln_pinflate_t *p)
{
    chunk_t *c = p->head;
    if (c->job == J_QUEUED)
        c->job = J_NONE;
    while (c->job == J_RUNNING)
        pthread_cond_wait(&p->cond, &p->lock);
    p->head = c->next;
    if (p->head == NULL)
        p->tail = NULL;
    p->queued--;
    pool_put(p->free_out, &p->n_out, p->maxq, c->out);
    pool_put(p->free_in, &p->n_in, p->maxq, c->in);
    pthread_cond_broadcast(&p->cond); /* (the reader waits for room) */
    free(c);
}

static void pop_chunk(kiln_pinflate_t *p)
{
    pthread_mutex_lock(&p->lock);
    pop_locked(p);
    pthread_mutex_unlock(&p->lock);
}

/* Makes c's first `len` bytes visible to the decoder (locked by the caller or not). */
static void publish(kiln_pinflate_t *p, chunk_t *c, size_t len)
{
    pthread_mutex_lock(&p->lock);
    c->len = len;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Reads one chunk: from the carry on, up to the next cut (a candidate at least chunk_min
 * in, or chunk_max, or the end), publishing its bytes as they come (never past where the cut
 * may fall: a candidate may still be found from `from` on); then closes it, queued for a
 * worker when it starts after a candidate. 1 when the input goes on, 0 at its end, -1 with
 * err. */
static int read_chunk(kiln_pinflate_t *p, int *candidate, int *bare, kiln_error_t *err)
{
    chunk_t *c = kiln_xzalloc(sizeof(*c));
    pthread_mutex_lock(&p->lock);
    c->in = pool_get(p->free_in, &p->n_in, p->in_cap);
    memcpy(c->in, p->carry, p->carry_len); /* (published below: a cut may fall inside) */
    if (p->tail != NULL)
        p->tail->next = c;
    else
        p->head = c;
    p->tail = c;
    p->queued++;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    size_t len = p->carry_len, from = p->chunk_min, cut = 0;
    int at_candidate = 0, eof = 0, rc = 1;
    p->carry_len = 0;
    for (;;) {
        if (len >= from + 4) {
            const unsigned char *m = memmem(c->in + from, len - from, MARKER, 4);
            if (m != NULL) {
                cut = (size_t)(m - c->in) + 4;
                at_candidate = 1;
                break;
            }
            from = len - 3; /* (a marker may straddle two reads) */
        }
        if (len >= p->chunk_max) {
            cut = p->chunk_max;
            break;
        }
        if (eof || __atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
            cut = len;
            break;
        }
        publish(p, c, len < p->chunk_min + 4 ? len : from);
        ssize_t n = kiln_decompressor_read_input(p->d, c->in + len, READ_PIECE, err);
        if (n < 0) {
            cut = len < p->chunk_min + 4 ? len : from; /* (what was published) */
            rc = -1;
            break;
        }
        eof = n == 0;
        len += (size_t)n;
    }
    p->carry_len = rc < 0 ? 0 : len - cut; /* (at most one read: <= READ_PIECE) */
    memcpy(p->carry, c->in + cut, p->carry_len);
    *bare = at_candidate ? 0 : *bare + 1;
    pthread_mutex_lock(&p->lock);
    if (*bare >= BARE_STOP)
        p->ahead_on = 0;
    c->len = cut;
    c->closed = 1;
    c->job = *candidate && p->ahead_on && p->nth > 0 && !c->seq && rc > 0 ? J_QUEUED : J_NONE;
    p->n_chunks++;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    *candidate = at_candidate;
    return rc < 0 ? -1 : eof && p->carry_len == 0 ? 0 : 1;
}

/* The reader thread: cuts the input into chunks while fewer than maxq wait, until the input
 * ends or fails, or p stops. */
static void *reader_main(void *arg)
{
    kiln_pinflate_t *p = arg;
    kiln_error_t e = {0};
    int candidate = 0, bare = 0, r = 1;
    pthread_setname_np(pthread_self(), "kiln-pinflate"); /* as ps and perf show it */
    while (r > 0) {
        pthread_mutex_lock(&p->lock);
        while (!p->stop && p->queued >= p->maxq)
            pthread_cond_wait(&p->cond, &p->lock);
        int stop = p->stop;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;
        r = read_chunk(p, &candidate, &bare, &e);
    }
    pthread_mutex_lock(&p->lock);
    p->in_done = 1;
    if (r < 0) {
        p->in_failed = 1;
        p->in_err = e;
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* The chunk the decoder is in, once it has bytes the decoder has not taken (or st holds
 * output back): waits for the reader, dropping chunks done with; *avail: its bytes so far.
 * NULL at the end of the input (*rc 0), or when reading it failed (*rc -1, err). */
static chunk_t *cur_chunk(kiln_pinflate_t *p, size_t *avail, int *rc, kiln_error_t *err)
{
    pthread_mutex_lock(&p->lock);
    for (;;) {
        chunk_t *c = p->head;
        if (c != NULL && (c->pos < c->len || p->full)) {
            *avail = c->len;
            if (c->pos == 0 && !c->closed && p->wait_cuts) {
                pthread_cond_wait(&p->cond, &p->lock); /* (every chunk is closed in the end) */
                continue;
            }
            if (c->pos == 0 && !c->closed)
                c->seq = 1; /* (decoded as it comes: no worker's decode of it is waited for) */
            pthread_mutex_unlock(&p->lock);
            return c;
        }
        if (c != NULL && c->closed) {
            pop_locked(p);
            continue;
        }
        if (c == NULL && p->in_done) {
            *rc = p->in_failed ? -1 : 0;
            if (p->in_failed && err != NULL)
                *err = p->in_err;
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        pthread_cond_wait(&p->cond, &p->lock);
    }
}

/* The stream's next byte outside the DEFLATE data (headers, trailers): -1 at the end of the
 * input, -2 with err. */
static int next_byte(kiln_pinflate_t *p, kiln_error_t *err)
{
    if (p->back_pos < p->back_len)
        return p->back[p->back_pos++];
    size_t avail;
    int rc = 0;
    chunk_t *c = cur_chunk(p, &avail, &rc, err);
    if (c == NULL)
        return rc < 0 ? -2 : -1;
    return c->in[c->pos++];
}

/* Reads n bytes of a header or trailer into b (b NULL: skipped); a header's go into *hcrc. */
static int read_bytes(kiln_pinflate_t *p, unsigned char *b, size_t n, uint32_t *hcrc,
                      const char *what, kiln_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        int c = next_byte(p, err);
        if (c == -2)
            return -1;
        if (c == -1)
            return kiln_error_set(err, 0, "gzip stream is truncated (ends inside %s)", what);
        unsigned char ch = (unsigned char)c;
        if (hcrc != NULL)
            *hcrc = crc32_gzip_refl(*hcrc, &ch, 1);
        if (b != NULL)
            b[i] = ch;
    }
    return 0;
}

/* Skips a zero-terminated header field. */
static int skip_string(kiln_pinflate_t *p, uint32_t *hcrc, kiln_error_t *err)
{
    unsigned char ch;
    do {
        if (read_bytes(p, &ch, 1, hcrc, "a header", err) < 0)
            return -1;
    } while (ch != 0);
    return 0;
}

/* Reads a member's header (RFC 1952) up to its DEFLATE data, as ISA-L does: method 8 only,
 * the header CRC checked when there is one, the reserved flags ignored. */
static int read_header(kiln_pinflate_t *p, kiln_error_t *err)
{
    unsigned char h[10];
    uint32_t hcrc = 0;
    size_t got = 0;
    if (p->hdr_first >= 0) {
        h[got++] = (unsigned char)p->hdr_first;
        hcrc = crc32_gzip_refl(0, h, 1);
        p->hdr_first = -1;
    }
    if (read_bytes(p, h + got, 2 - got, &hcrc, "a header", err) < 0)
        return -1;
    if (h[0] != 0x1f || h[1] != 0x8b)
        return kiln_error_set(err, 0,
                              "gzip stream: unexpected data after the end of the "
                              "compressed stream");
    if (read_bytes(p, h + 2, 8, &hcrc, "a header", err) < 0)
        return -1;
    if (h[2] != 8)
        return kiln_error_set(err, 0, "gzip stream is corrupt (invalid deflate data)");
    if (h[3] & 4) { /* FEXTRA */
        unsigned char x[2];
        if (read_bytes(p, x, 2, &hcrc, "a header", err) < 0 ||
            read_bytes(p, NULL, (size_t)x[0] | (size_t)x[1] << 8, &hcrc, "a header", err) < 0)
            return -1;
    }
    if (((h[3] & 8) && skip_string(p, &hcrc, err) < 0) ||
        ((h[3] & 16) && skip_string(p, &hcrc, err) < 0))
        return -1;
    if (h[3] & 2) { /* FHCRC: the low half of the header's CRC-32 */
        unsigned char c[2];
        if (read_bytes(p, c, 2, NULL, "a header", err) < 0)
            return -1;
        if (((uint32_t)c[0] | (uint32_t)c[1] << 8) != (hcrc & 0xffff))
            return kiln_error_set(err, 0, "gzip stream is corrupt (checksum mismatch)");
    }
    isal_inflate_init(p->st);
    p->st->crc_flag = ISAL_DEFLATE;
    p->reinit = p->full = 0;
    p->crc = p->isize = 0;
    return 0;
}

/* Counts a chunk decoded ahead for nothing; after FAIL_STOP in a row none is any more. */
static void ahead_failed(kiln_pinflate_t *p)
{
    if (++p->fails < FAIL_STOP)
        return;
    pthread_mutex_lock(&p->lock);
    p->ahead_on = 0;
    pthread_mutex_unlock(&p->lock);
}

/* Takes chunk c's worker output (c closed, queued for a worker) when the decoder is at its
 * start on a block boundary: 1 when it is being handed out now, 0 when the decoder decodes
 * the chunk itself. */
static int take_ahead(kiln_pinflate_t *p, chunk_t *c)
{
    if (!p->reinit && (p->full || !at_boundary(p->st))) {
        pthread_mutex_lock(&p->lock);
        if (c->job == J_QUEUED)
            c->job = J_NONE; /* (never needed) */
        pthread_mutex_unlock(&p->lock);
        /* a candidate that was no boundary: work done or queued for nothing, which a crafted
         * stream would repeat (decoding ahead stops as after failures) */
        ahead_failed(p);
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    while (c->job == J_QUEUED || c->job == J_RUNNING)
        pthread_cond_wait(&p->cond, &p->lock);
    int job = c->job;
    pthread_mutex_unlock(&p->lock);
    if (job != J_OK) {
        ahead_failed(p);
        return 0;
    }
    p->fails = 0;
    p->n_ahead++;
    p->crc = (uint32_t)crc32_combine(p->crc, c->crc, (z_off_t)c->olen);
    p->isize += (uint32_t)c->olen;
    c->pos = c->len;
    p->deliver = c;
    p->dpos = 0;
    return 1;
}

/* The bytes st read past its member's end (its final block ends inside them): they are the
 * start of the trailer, read by next_byte before the chunk's rest. */
static int take_back(kiln_pinflate_t *p, kiln_error_t *err)
{
    struct inflate_state *st = p->st;
    if (st->tmp_in_size != 0 || st->read_in_length < 0 || st->read_in_length > 64)
        return kiln_error_set(err, 0, "gzip stream: cannot find the end of a member");
    uint64_t bits = st->read_in >> (st->read_in_length % 8);
    p->back_len = (size_t)st->read_in_length / 8;
    p->back_pos = 0;
    for (size_t i = 0; i < p->back_len; i++, bits >>= 8)
        p->back[i] = (unsigned char)bits;
    return 0;
}

/* Decodes a member's DEFLATE data into buf: bytes produced, 0 at its end (the trailer
 * next), -1 with err. */
static ssize_t read_body(kiln_pinflate_t *p, unsigned char *buf, size_t len, kiln_error_t *err)
{
    struct inflate_state *st = p->st;
    for (;;) {
        size_t avail = 0;
        int rc = 0;
        chunk_t *c = cur_chunk(p, &avail, &rc, err);
        if (c == NULL)
            return rc < 0 ? -1
                          : kiln_error_set(err, 0,
                                           "gzip stream is truncated (ends inside the "
                                           "compressed data)");
        if (c->pos == 0 && !p->full) {
            pthread_mutex_lock(&p->lock);
            int job = c->closed ? c->job : J_NONE;
            pthread_mutex_unlock(&p->lock);
            if (job != J_NONE && take_ahead(p, c))
                return HANDED_OUT;
        }
        if (p->reinit) {
            isal_inflate_init(st);
            st->crc_flag = ISAL_DEFLATE;
            if (isal_inflate_set_dict(st, p->hist, HIST) != ISAL_DECOMP_OK)
                return kiln_error_set(err, 0, "gzip stream: cannot set a dictionary");
            p->reinit = 0;
        }
        st->next_in = c->in + c->pos;
        st->avail_in = (uint32_t)(avail - c->pos);
        st->next_out = buf;
        st->avail_out = (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len);
        uint32_t before = st->avail_out;
        int r = isal_inflate(st);
        c->pos = (size_t)(st->next_in - c->in);
        if (r != ISAL_DECOMP_OK)
            return kiln_error_set(err, 0, "gzip stream is corrupt (invalid deflate data)");
        size_t n = before - st->avail_out;
        p->full = st->avail_out == 0;
        p->crc = crc32_gzip_refl(p->crc, buf, n);
        p->isize += (uint32_t)n;
        if (st->block_state == ISAL_BLOCK_FINISH) {
            if (take_back(p, err) < 0)
                return -1;
            p->phase = P_TRAILER;
            p->full = 0;
        }
        if (n > 0 || p->phase == P_TRAILER)
            return (ssize_t)n;
    }
}

/* Checks a member's trailer, and what follows it: another member or the end. */
static int read_trailer(kiln_pinflate_t *p, kiln_error_t *err)
{
    unsigned char t[8];
    if (read_bytes(p, t, 8, NULL, "the compressed data", err) < 0)
        return -1;
    uint32_t crc =
        (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    uint32_t isize =
        (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
    if (crc != p->crc || isize != p->isize)
        return kiln_error_set(err, 0, "gzip stream is corrupt (checksum mismatch)");
    int c = next_byte(p, err);
    if (c == -2)
        return -1;
    p->hdr_first = c;
    p->phase = c == -1 ? P_END : P_HEADER;
    return 0;
}

ssize_t kiln_pinflate_read_view(kiln_pinflate_t *p, void *buf, size_t len, const void **out,
                                kiln_error_t *err)
{
    if (p->failed) {
        if (err != NULL)
            *err = p->err;
        return -1;
    }
    kiln_error_t e = {0};
    ssize_t n = 0;
    *out = buf;
    while (n == 0 && len > 0) {
        if (p->deliver != NULL) {
            chunk_t *c = p->deliver;
            n = (ssize_t)(c->olen - p->dpos < len ? c->olen - p->dpos : len);
            if (p->dpos == 0)
                p->dview = 0;
            if (p->v_n < VIEWS) { /* (a caller that gives nothing back gets copies) */
                *out = c->out + p->dpos;
                p->views[(p->v_head + p->v_n++) % VIEWS] = NULL;
                p->dview = 1;
            } else {
                memcpy(buf, c->out + p->dpos, (size_t)n);
            }
            p->dpos += (size_t)n;
            if (p->dpos == c->olen) {
                memcpy(p->hist, c->out + c->olen - HIST, HIST);
                p->reinit = 1;
                p->deliver = NULL;
                if (p->dview) { /* freed with the chunk's newest view: views go back in order */
                    p->views[(p->v_head + p->v_n - 1) % VIEWS] = c->out;
                    c->out = NULL;
                }
                pop_chunk(p);
            }
            break;
        }
        if (p->phase == P_END)
            break;
        if (p->phase == P_HEADER) {
            if (read_header(p, &e) < 0)
                goto fail;
            p->phase = P_BODY;
        } else if (p->phase == P_BODY) {
            n = read_body(p, buf, len, &e);
            if (n == HANDED_OUT)
                n = 0;
            else if (n < 0)
                goto fail;
        } else if (read_trailer(p, &e) < 0) {
            goto fail;
        }
    }
    return n;
fail:
    p->failed = 1;
    p->err = e;
    if (err != NULL)
        *err = e;
    return -1;
}

void kiln_pinflate_release(kiln_pinflate_t *p)
{
    if (p->v_n == 0)
        return;
    unsigned char *b = p->views[p->v_head];
    p->v_head = (p->v_head + 1) % VIEWS;
    p->v_n--;
    if (b != NULL) {
        pthread_mutex_lock(&p->lock);
        pool_put(p->free_out, &p->n_out, p->maxq, b);
        pthread_mutex_unlock(&p->lock);
    }
}

ssize_t kiln_pinflate_read(kiln_pinflate_t *p, void *buf, size_t len, kiln_error_t *err)
{
    const void *at;
    ssize_t n = kiln_pinflate_read_view(p, buf, len, &at, err);
    if (n > 0 && at != buf) {
        memcpy(buf, at, (size_t)n);
        kiln_pinflate_release(p);
    }
    return n;
}

kiln_pinflate_t *kiln_pinflate_new(kiln_decompressor_t *d, int workers)
{
    return kiln_pinflate_new_sized(d, workers, CHUNK_MIN, CHUNK_MAX);
}

kiln_pinflate_t *kiln_pinflate_new_sized(kiln_decompressor_t *d, int workers, size_t chunk_min,
                                         size_t chunk_max)
{
    kiln_pinflate_t *p = kiln_xzalloc(sizeof(*p));
    p->d = d;
    p->chunk_min = chunk_min;
    p->chunk_max = chunk_max >= chunk_min + 4 ? chunk_max : chunk_min + 4;
    p->in_cap = p->chunk_max + READ_PIECE;
    p->st = kiln_xmalloc(sizeof(*p->st));
    p->carry = kiln_xmalloc(READ_PIECE + 4);
    p->hdr_first = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (workers > KILN_PINFLATE_MAX_WORKERS)
        workers = KILN_PINFLATE_MAX_WORKERS;
    for (; p->nth < workers; p->nth++)
        if (pthread_create(&p->th[p->nth], NULL, worker_main, p) != 0)
            break;
    p->maxq = (size_t)p->nth + 2; /* (one chunk per worker, the one decoded, the next) */
    p->ahead_on = p->nth > 0;
    if (pthread_create(&p->reader, NULL, reader_main, p) != 0) {
        kiln_pinflate_free(p);
        return NULL;
    }
    p->rstarted = 1;
    return p;
}

void kiln_pinflate_wait_cuts(kiln_pinflate_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->wait_cuts = 1;
    pthread_mutex_unlock(&p->lock);
}

void kiln_pinflate_stats(kiln_pinflate_t *p, uint64_t *chunks, uint64_t *ahead)
{
    pthread_mutex_lock(&p->lock);
    *chunks = p->n_chunks;
    pthread_mutex_unlock(&p->lock);
    *ahead = p->n_ahead;
}

void kiln_pinflate_free(kiln_pinflate_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    if (p->rstarted) /* (once a read it is blocked in returns) */
        pthread_join(p->reader, NULL);
    while (p->head != NULL) {
        chunk_t *c = p->head;
        p->head = c->next;
        free(c->in);
        free(c->out);
        free(c);
    }
    for (; p->v_n > 0; p->v_n--, p->v_head = (p->v_head + 1) % VIEWS)
        free(p->views[p->v_head]);
    for (size_t i = 0; i < p->n_in; i++)
        free(p->free_in[i]);
    for (size_t i = 0; i < p->n_out; i++)
        free(p->free_out[i]);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->carry);
    free(p->st);
    free(p);
}
