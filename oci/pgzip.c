/* kiln — parallel gzip with libdeflate, one gzip member (see pgzip.h). */
#include "oci/pgzip.h"

#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "oci/deflate_join.h"
#include "utils/mem.h"

#define GZIP_HEADER_SIZE 10

/* One block in flight: its input, then its piece. A slot holds block number
 * b where b % nslots is its index; it is free again once the piece of b went
 * to the sink (b < next_write). */
struct slot {
    unsigned char *in;
    size_t in_len;
    unsigned char *out; /* GZIP_HEADER_SIZE bytes of room, then the DEFLATE piece */
    size_t out_len;     /* of the piece */
    uint32_t crc;       /* CRC-32 of the block */
    int bad;            /* libdeflate's output could not be joined */
    int done;           /* the piece is in out */
};

struct kiln_pgzip {
    int level;
    kiln_sink_t *out;
    kiln_sha256_t *in_hash; /* NULL, or hashed with each block's input as it is written */
    size_t out_cap;         /* libdeflate's bound for one block, plus the joining bytes */
    struct libdeflate_compressor *inline_comp;
    struct slot *slots;
    unsigned nslots;
    struct slot *cur; /* the slot the producer fills (NULL: none taken) */

    /* threaded mode */
    int nworkers;
    int started; /* threads created */
    pthread_t *threads;
    struct libdeflate_compressor **comps;
    pthread_mutex_t mu;
    pthread_cond_t cv_job;  /* workers wait for a queued block */
    pthread_cond_t cv_free; /* the producer waits for a written block */
    uint64_t head;          /* blocks handed to the workers */
    uint64_t next_job;      /* the next block a worker takes */
    uint64_t next_write;    /* the next block whose piece goes to the sink */
    int writing;            /* a thread is writing pieces to the sink */
    int closing;            /* no more blocks will come */
    int failed;             /* the sink failed (werr) or the stream is dropped */
    kiln_error_t werr;
    uint32_t crc;   /* of the blocks written so far */
    uint64_t isize; /* their length */
};

int kiln_pgzip_auto_workers(void)
{
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    if (n < 1)
        n = 1;
    return n > KILN_PGZIP_MAX_WORKERS ? KILN_PGZIP_MAX_WORKERS : n;
}

/* Compresses a slot's block into a non-final, byte-aligned DEFLATE piece
 * (oci/deflate_join) and its CRC. Cannot fail but for a libdeflate output
 * that does not parse (bad = 1): out_cap is libdeflate's bound for a block. */
static void compress_slot(struct libdeflate_compressor *c, size_t cap, struct slot *s)
{
    unsigned char *out = s->out + GZIP_HEADER_SIZE;
    size_t n = libdeflate_deflate_compress(c, s->in, s->in_len, out,
                                           cap - GZIP_HEADER_SIZE - KILN_DEFLATE_JOIN_EXTRA);
    s->bad = n == 0 || kiln_deflate_make_nonfinal(out, &n) < 0;
    s->out_len = n;
    s->crc = (uint32_t)libdeflate_crc32(0, s->in, s->in_len);
}

/* The gzip header (RFC 1952): deflate, no name, no time, OS unknown. */
static const unsigned char gzip_header[GZIP_HEADER_SIZE] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};

/* Writes block number b's piece (with the gzip header before the first one)
 * and adds its CRC and length to the stream's. */
static int write_piece(kiln_pgzip_t *p, uint64_t b, struct slot *s, kiln_error_t *err)
{
    if (s->bad)
        return kiln_error_set(err, EIO, "gzip: block %llu of the layer could not be joined",
                              (unsigned long long)b);
    unsigned char *start = s->out + GZIP_HEADER_SIZE;
    size_t len = s->out_len;
    if (b == 0) {
        start = s->out;
        memcpy(start, gzip_header, GZIP_HEADER_SIZE);
        len += GZIP_HEADER_SIZE;
    }
    if (kiln_sink_write(p->out, start, len, err) < 0)
        return -1;
    if (p->in_hash != NULL)
        kiln_sha256_update(p->in_hash, s->in, s->in_len);
    p->crc = (uint32_t)crc32_combine(p->crc, s->crc, (z_off_t)s->in_len);
    p->isize += s->in_len;
    return 0;
}

/* Writes the pieces that are ready, in block order, to the sink. Called with
 * mu held; one thread writes at a time (the others only mark their block
 * done, and the writer picks it up before it stops). */
static void flush_in_order(kiln_pgzip_t *p)
{
    while (!p->writing && !p->failed && p->next_write < p->head &&
           p->slots[p->next_write % p->nslots].done) {
        struct slot *s = &p->slots[p->next_write % p->nslots];
        kiln_error_t e = {0};
        p->writing = 1;
        pthread_mutex_unlock(&p->mu);
        int r = write_piece(p, p->next_write, s, &e);
        pthread_mutex_lock(&p->mu);
        p->writing = 0;
        if (r < 0) {
            if (!p->failed)
                p->werr = e;
            p->failed = 1;
            pthread_cond_broadcast(&p->cv_job);
        } else {
            s->done = 0;
            p->next_write++;
        }
        pthread_cond_broadcast(&p->cv_free);
    }
}

struct worker_arg {
    kiln_pgzip_t *p;
    struct libdeflate_compressor *comp;
};

/* A worker: takes the next queued block, compresses it, and writes what is
 * ready; ends when the producer closed and no block is left, or on failure. */
static void *worker_main(void *arg)
{
    kiln_pgzip_t *p = ((struct worker_arg *)arg)->p;
    struct libdeflate_compressor *comp = ((struct worker_arg *)arg)->comp;
    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->failed && !p->closing && p->next_job == p->head)
            pthread_cond_wait(&p->cv_job, &p->mu);
        if (p->failed || p->next_job == p->head)
            break;
        struct slot *s = &p->slots[p->next_job % p->nslots];
        p->next_job++;
        pthread_mutex_unlock(&p->mu);
        compress_slot(comp, p->out_cap, s);
        pthread_mutex_lock(&p->mu);
        s->done = 1;
        flush_in_order(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int kiln_pgzip_new(int level, int workers, kiln_sink_t *out, kiln_pgzip_t **res, kiln_error_t *err)
{
    if (level < 0 || level > KILN_PGZIP_MAX_LEVEL)
        return kiln_error_set(err, EINVAL, "gzip compression level %d out of range 0..%d", level,
                              KILN_PGZIP_MAX_LEVEL);
    if (workers == KILN_PGZIP_AUTO)
        workers = kiln_pgzip_auto_workers();
    if (workers < 0 || workers > KILN_PGZIP_MAX_WORKERS)
        return kiln_error_set(err, EINVAL, "gzip: %d compression threads (0..%d)", workers,
                              KILN_PGZIP_MAX_WORKERS);
    kiln_pgzip_t *p = kiln_xzalloc(sizeof(*p));
    p->level = level;
    p->out = out;
    p->nworkers = workers;
    p->inline_comp = libdeflate_alloc_compressor(level);
    if (p->inline_comp == NULL) {
        free(p);
        return kiln_error_set(err, ENOMEM, "gzip: cannot allocate a level-%d compressor", level);
    }
    p->out_cap = GZIP_HEADER_SIZE +
                 libdeflate_deflate_compress_bound(p->inline_comp, KILN_PGZIP_BLOCK) +
                 KILN_DEFLATE_JOIN_EXTRA;
    /* One slot filling, one written meanwhile, and three per worker: with one
     * per worker the producer and the workers took turns waiting for each
     * other (a quarter more context switches on a busy machine). */
    p->nslots = workers == 0 ? 1 : 3 * (unsigned)workers + 2;
    p->slots = kiln_xzalloc(p->nslots * sizeof(*p->slots));
    for (unsigned i = 0; i < p->nslots; i++) {
        p->slots[i].in = kiln_xmalloc(KILN_PGZIP_BLOCK);
        p->slots[i].out = kiln_xmalloc(p->out_cap);
    }
    if (workers > 0) {
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv_job, NULL);
        pthread_cond_init(&p->cv_free, NULL);
        p->threads = kiln_xzalloc((size_t)workers * sizeof(*p->threads));
        p->comps = kiln_xzalloc((size_t)workers * sizeof(*p->comps));
        for (int i = 0; i < workers; i++) {
            p->comps[i] = libdeflate_alloc_compressor(level);
            struct worker_arg *a = kiln_xzalloc(sizeof(*a));
            a->p = p;
            a->comp = p->comps[i];
            int r =
                p->comps[i] == NULL ? ENOMEM : pthread_create(&p->threads[i], NULL, worker_main, a);
            if (r != 0) {
                free(a);
                kiln_pgzip_free(p);
                return kiln_error_set(err, r, "gzip: cannot start compression thread %d", i + 1);
            }
            p->started = i + 1;
        }
    }
    *res = p;
    return 0;
}

/* Compresses the current block in the caller and writes its piece (no threads). */
static int inline_block(kiln_pgzip_t *p, kiln_error_t *err)
{
    compress_slot(p->inline_comp, p->out_cap, p->cur);
    int r = write_piece(p, p->head - 1, p->cur, err);
    p->cur->in_len = 0;
    p->next_write = p->head;
    return r;
}

/* The producer's error once the stream failed (the sink's, as the worker saw it). */
static int failed_err(kiln_pgzip_t *p, kiln_error_t *err)
{
    if (err)
        *err = p->werr;
    return -1;
}

/* Takes the slot of the next block, waiting while every slot is in flight. */
static int take_slot(kiln_pgzip_t *p, kiln_error_t *err)
{
    if (p->nworkers == 0) {
        p->cur = &p->slots[0];
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->failed && p->head - p->next_write >= p->nslots)
        pthread_cond_wait(&p->cv_free, &p->mu);
    int failed = p->failed;
    if (!failed) {
        p->cur = &p->slots[p->head % p->nslots];
        p->cur->in_len = 0;
        p->cur->done = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return failed ? failed_err(p, err) : 0;
}

/* Hands the current block to the workers (or compresses it inline). */
static int submit_slot(kiln_pgzip_t *p, kiln_error_t *err)
{
    if (p->nworkers == 0) {
        p->head++;
        return inline_block(p, err);
    }
    pthread_mutex_lock(&p->mu);
    p->head++;
    p->cur = NULL;
    pthread_cond_signal(&p->cv_job);
    int failed = p->failed;
    pthread_mutex_unlock(&p->mu);
    return failed ? failed_err(p, err) : 0;
}

void kiln_pgzip_hash_input(kiln_pgzip_t *p, kiln_sha256_t *h)
{
    p->in_hash = h;
}

void *kiln_pgzip_buffer(kiln_pgzip_t *p, size_t *room, kiln_error_t *err)
{
    if (p->cur == NULL && take_slot(p, err) < 0)
        return NULL;
    *room = KILN_PGZIP_BLOCK - p->cur->in_len;
    return p->cur->in + p->cur->in_len;
}

int kiln_pgzip_write(kiln_pgzip_t *p, const void *buf, size_t len, kiln_error_t *err)
{
    const unsigned char *b = buf;
    if (p->cur != NULL && b == p->cur->in + p->cur->in_len &&
        len <= KILN_PGZIP_BLOCK - p->cur->in_len) {
        /* Read into the block by the producer (kiln_pgzip_buffer). */
        p->cur->in_len += len;
        if (p->cur->in_len == KILN_PGZIP_BLOCK && submit_slot(p, err) < 0)
            return -1;
        return 0;
    }
    while (len > 0) {
        if (p->cur == NULL && take_slot(p, err) < 0)
            return -1;
        size_t n = KILN_PGZIP_BLOCK - p->cur->in_len;
        if (n > len)
            n = len;
        memcpy(p->cur->in + p->cur->in_len, b, n);
        p->cur->in_len += n;
        b += n;
        len -= n;
        if (p->cur->in_len == KILN_PGZIP_BLOCK && submit_slot(p, err) < 0)
            return -1;
    }
    return 0;
}

/* The end of the stream: an empty final block, the CRC and the length mod 2^32
 * (and the header first when no block was written: an empty input). */
static int write_trailer(kiln_pgzip_t *p, kiln_error_t *err)
{
    unsigned char t[GZIP_HEADER_SIZE + 2 + 8];
    size_t n = 0;
    if (p->head == 0) {
        memcpy(t, gzip_header, GZIP_HEADER_SIZE);
        n = GZIP_HEADER_SIZE;
    }
    memcpy(t + n, KILN_DEFLATE_EMPTY_FINAL, 2);
    n += 2;
    for (int i = 0; i < 4; i++)
        t[n++] = (unsigned char)(p->crc >> (8 * i));
    for (int i = 0; i < 4; i++)
        t[n++] = (unsigned char)(p->isize >> (8 * i));
    return kiln_sink_write(p->out, t, n, err);
}

int kiln_pgzip_finish(kiln_pgzip_t *p, kiln_error_t *err)
{
    if (p->cur != NULL && p->cur->in_len > 0 && submit_slot(p, err) < 0)
        return -1;
    if (p->nworkers > 0) {
        pthread_mutex_lock(&p->mu);
        p->closing = 1;
        pthread_cond_broadcast(&p->cv_job);
        while (!p->failed && p->next_write < p->head)
            pthread_cond_wait(&p->cv_free, &p->mu);
        int failed = p->failed;
        pthread_mutex_unlock(&p->mu);
        if (failed)
            return failed_err(p, err);
    }
    return write_trailer(p, err);
}

void kiln_pgzip_free(kiln_pgzip_t *p)
{
    if (p == NULL)
        return;
    if (p->nworkers > 0) {
        pthread_mutex_lock(&p->mu);
        p->closing = 1;
        if (p->next_write < p->head)
            p->failed = 1; /* unfinished: drop what is queued */
        pthread_cond_broadcast(&p->cv_job);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->started; i++)
            pthread_join(p->threads[i], NULL);
        for (int i = 0; i < p->nworkers; i++)
            if (p->comps[i] != NULL)
                libdeflate_free_compressor(p->comps[i]);
        free(p->comps);
        free(p->threads);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv_job);
        pthread_cond_destroy(&p->cv_free);
    }
    for (unsigned i = 0; p->slots && i < p->nslots; i++) {
        free(p->slots[i].in);
        free(p->slots[i].out);
    }
    free(p->slots);
    libdeflate_free_compressor(p->inline_comp);
    free(p);
}
