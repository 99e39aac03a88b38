/* kiln — streaming gzip (ISA-L) / zstd / none compression and decompression. */
#include "oci/compress.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define CHUNK_SIZE (1024 * 1024) /* one unit of work for the compression thread */
#define CHUNK_COUNT 4            /* chunks in flight: bounds the memory to ~4 MiB */
#define OUT_SIZE (512 * 1024)    /* compressed output buffer */
#define IN_SIZE (256 * 1024)     /* decompressor input buffer */
#define ZSTD_WORKERS 2
#define ZSTD_JOB_SIZE (2 * 1024 * 1024)

const char *kiln_compression_name(kiln_compression_t c)
{
    switch (c) {
    case KILN_COMPRESSION_GZIP:
        return "gzip";
    case KILN_COMPRESSION_ZSTD:
        return "zstd";
    default:
        return "none";
    }
}

int kiln_compression_parse(const char *s, kiln_compression_t *out, kiln_error_t *err)
{
    if (strcmp(s, "gzip") == 0)
        *out = KILN_COMPRESSION_GZIP;
    else if (strcmp(s, "zstd") == 0)
        *out = KILN_COMPRESSION_ZSTD;
    else if (strcmp(s, "none") == 0 || strcmp(s, "uncompressed") == 0)
        *out = KILN_COMPRESSION_NONE;
    else
        return kiln_error_set(err, EINVAL, "unknown compression '%.64s' (gzip, zstd or none)", s);
    return 0;
}

int kiln_compression_check_level(kiln_compression_t c, int level, kiln_error_t *err)
{
    if (level == -1 || c == KILN_COMPRESSION_NONE)
        return 0;
    if (c == KILN_COMPRESSION_GZIP && (level < 0 || level > ISAL_DEF_MAX_LEVEL))
        return kiln_error_set(err, EINVAL, "gzip compression level %d out of range 0..%d", level,
                              ISAL_DEF_MAX_LEVEL);
    if (c == KILN_COMPRESSION_ZSTD && (level < 1 || level > 19))
        return kiln_error_set(err, EINVAL, "zstd compression level %d out of range 1..19", level);
    return 0;
}

kiln_compression_t kiln_compression_detect(const void *buf, size_t len)
{
    const unsigned char *b = buf;
    if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return KILN_COMPRESSION_GZIP;
    if (len >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
        return KILN_COMPRESSION_ZSTD;
    return KILN_COMPRESSION_NONE;
}

/* ---------------------------------------------------------------- compressor */

struct chunk {
    unsigned char *buf;
    size_t len;
};

struct kiln_compressor {
    kiln_compression_t type;
    kiln_sink_t *out;
    unsigned char *obuf;
    struct isal_zstream zs;
    unsigned char *level_buf;
    ZSTD_CCtx *zc;

    /* threaded mode: a ring of chunks between the producer and the worker */
    int threaded;
    pthread_t worker;
    int worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_filled; /* worker waits for a filled chunk */
    pthread_cond_t cv_free;   /* producer waits for a free chunk */
    struct chunk chunks[CHUNK_COUNT];
    unsigned head;   /* next chunk the producer fills */
    unsigned tail;   /* next chunk the worker compresses */
    unsigned filled; /* chunks handed to the worker, not yet done */
    int closing;     /* producer is done: worker ends the stream after the last chunk */
    int worker_done;
    int failed;
    kiln_error_t werr; /* the worker's error */
    struct chunk *cur; /* chunk being filled by the producer (NULL: none taken) */
};

/* Compresses len bytes (end = last call) and writes the output to the sink. */
static int compress_block(kiln_compressor_t *c, const void *buf, size_t len, int end,
                          kiln_error_t *err)
{
    if (c->type == KILN_COMPRESSION_NONE)
        return len ? kiln_sink_write(c->out, buf, len, err) : 0;
    if (c->type == KILN_COMPRESSION_GZIP) {
        c->zs.next_in = (uint8_t *)buf;
        c->zs.avail_in = (uint32_t)len;
        c->zs.end_of_stream = end ? 1 : 0;
        for (;;) {
            c->zs.next_out = c->obuf;
            c->zs.avail_out = OUT_SIZE;
            int r = isal_deflate(&c->zs);
            if (r != COMP_OK)
                return kiln_error_set(err, 0, "gzip compression failed (isal_deflate %d)", r);
            size_t n = OUT_SIZE - c->zs.avail_out;
            if (n > 0 && kiln_sink_write(c->out, c->obuf, n, err) < 0)
                return -1;
            if (end ? c->zs.internal_state.state == ZSTATE_END : c->zs.avail_in == 0)
                return 0;
        }
    }
    ZSTD_inBuffer in = {buf, len, 0};
    for (;;) {
        ZSTD_outBuffer o = {c->obuf, OUT_SIZE, 0};
        size_t r = ZSTD_compressStream2(c->zc, &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(r))
            return kiln_error_set(err, 0, "zstd compression failed: %s", ZSTD_getErrorName(r));
        if (o.pos > 0 && kiln_sink_write(c->out, c->obuf, o.pos, err) < 0)
            return -1;
        if (end ? r == 0 : in.pos == in.size)
            return 0;
    }
}

/* The worker: compresses filled chunks in order until the producer closes. */
static void *worker_main(void *arg)
{
    kiln_compressor_t *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->filled == 0 && !c->closing)
            pthread_cond_wait(&c->cv_filled, &c->mu);
        if (c->filled == 0 && c->closing)
            break;
        struct chunk *ch = &c->chunks[c->tail % CHUNK_COUNT];
        int failed = c->failed;
        pthread_mutex_unlock(&c->mu);
        int r = failed ? 0 : compress_block(c, ch->buf, ch->len, 0, &c->werr);
        pthread_mutex_lock(&c->mu);
        if (r < 0)
            c->failed = 1;
        c->tail++;
        c->filled--;
        pthread_cond_signal(&c->cv_free);
    }
    int failed = c->failed;
    pthread_mutex_unlock(&c->mu);
    int r = failed ? 0 : compress_block(c, NULL, 0, 1, &c->werr);
    pthread_mutex_lock(&c->mu);
    if (r < 0)
        c->failed = 1;
    c->worker_done = 1;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int kiln_compressor_new(kiln_compression_t type, int level, int threaded, kiln_sink_t *out,
                        kiln_compressor_t **res, kiln_error_t *err)
{
    if (kiln_compression_check_level(type, level, err) < 0)
        return -1;
    kiln_compressor_t *c = kiln_xzalloc(sizeof(*c));
    c->type = type;
    c->out = out;
    if (type == KILN_COMPRESSION_GZIP) {
        static const uint32_t level_sizes[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
                                               ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};
        int lvl = level < 0 ? KILN_GZIP_DEFAULT_LEVEL : level;
        c->obuf = kiln_xmalloc(OUT_SIZE);
        isal_deflate_init(&c->zs);
        c->zs.level = (uint32_t)lvl;
        c->zs.level_buf_size = level_sizes[lvl];
        c->level_buf = c->zs.level_buf_size ? kiln_xmalloc(c->zs.level_buf_size) : NULL;
        c->zs.level_buf = c->level_buf;
        c->zs.gzip_flag = IGZIP_GZIP;
        c->threaded = threaded;
    } else if (type == KILN_COMPRESSION_ZSTD) {
        c->obuf = kiln_xmalloc(OUT_SIZE);
        c->zc = ZSTD_createCCtx();
        if (c->zc == NULL) {
            kiln_compressor_free(c);
            return kiln_error_set(err, ENOMEM, "zstd: cannot create a compression context");
        }
        ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel,
                               level < 0 ? KILN_ZSTD_DEFAULT_LEVEL : level);
        ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 1);
        /* libzstd's own workers (ignored when built without threads). */
        if (threaded) {
            ZSTD_CCtx_setParameter(c->zc, ZSTD_c_nbWorkers, ZSTD_WORKERS);
            /* Smaller jobs keep the buffered input (and peak RSS) small. */
            ZSTD_CCtx_setParameter(c->zc, ZSTD_c_jobSize, ZSTD_JOB_SIZE);
        }
    }
    if (c->threaded) {
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv_filled, NULL);
        pthread_cond_init(&c->cv_free, NULL);
        for (int i = 0; i < CHUNK_COUNT; i++)
            c->chunks[i].buf = kiln_xmalloc(CHUNK_SIZE);
        int r = pthread_create(&c->worker, NULL, worker_main, c);
        if (r != 0) {
            kiln_compressor_free(c);
            return kiln_error_set(err, r, "cannot start the compression thread");
        }
        c->worker_started = 1;
    }
    *res = c;
    return 0;
}

/* Hands the current chunk to the worker. Fails when the worker failed. */
static int submit_chunk(kiln_compressor_t *c, kiln_error_t *err)
{
    pthread_mutex_lock(&c->mu);
    c->head++;
    c->filled++;
    c->cur = NULL;
    pthread_cond_signal(&c->cv_filled);
    int failed = c->failed;
    pthread_mutex_unlock(&c->mu);
    if (failed) {
        if (err)
            *err = c->werr;
        return -1;
    }
    return 0;
}

/* Takes a free chunk for the producer, waiting while all are in flight. */
static int take_chunk(kiln_compressor_t *c, kiln_error_t *err)
{
    pthread_mutex_lock(&c->mu);
    while (c->filled == CHUNK_COUNT && !c->failed)
        pthread_cond_wait(&c->cv_free, &c->mu);
    int failed = c->failed;
    if (!failed) {
        c->cur = &c->chunks[c->head % CHUNK_COUNT];
        c->cur->len = 0;
    }
    pthread_mutex_unlock(&c->mu);
    if (failed) {
        if (err)
            *err = c->werr;
        return -1;
    }
    return 0;
}

int kiln_compressor_write(kiln_compressor_t *c, const void *buf, size_t len, kiln_error_t *err)
{
    if (!c->threaded)
        return compress_block(c, buf, len, 0, err);
    const unsigned char *p = buf;
    while (len > 0) {
        if (c->cur == NULL && take_chunk(c, err) < 0)
            return -1;
        size_t n = CHUNK_SIZE - c->cur->len;
        if (n > len)
            n = len;
        memcpy(c->cur->buf + c->cur->len, p, n);
        c->cur->len += n;
        p += n;
        len -= n;
        if (c->cur->len == CHUNK_SIZE && submit_chunk(c, err) < 0)
            return -1;
    }
    return 0;
}

int kiln_compressor_finish(kiln_compressor_t *c, kiln_error_t *err)
{
    if (!c->threaded)
        return compress_block(c, NULL, 0, 1, err);
    if (c->cur != NULL && c->cur->len > 0 && submit_chunk(c, err) < 0)
        return -1;
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    pthread_cond_signal(&c->cv_filled);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->worker, NULL);
    c->worker_started = 0;
    if (c->failed) {
        if (err)
            *err = c->werr;
        return -1;
    }
    return 0;
}

void kiln_compressor_free(kiln_compressor_t *c)
{
    if (c == NULL)
        return;
    if (c->worker_started) {
        pthread_mutex_lock(&c->mu);
        c->failed = 1; /* drop whatever is queued */
        c->closing = 1;
        pthread_cond_signal(&c->cv_filled);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->worker, NULL);
    }
    if (c->threaded) {
        for (int i = 0; i < CHUNK_COUNT; i++)
            free(c->chunks[i].buf);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv_filled);
        pthread_cond_destroy(&c->cv_free);
    }
    ZSTD_freeCCtx(c->zc);
    free(c->level_buf);
    free(c->obuf);
    free(c);
}

static int compressor_sink_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    return kiln_compressor_write(ctx, buf, len, err);
}

kiln_sink_t kiln_compressor_sink(kiln_compressor_t *c)
{
    kiln_sink_t s = {compressor_sink_write, c};
    return s;
}

/* -------------------------------------------------------------- decompressor */

struct kiln_decompressor {
    int fd;
    kiln_compression_t type;
    kiln_hash_fn raw_hash, out_hash;
    void *raw_ctx, *out_ctx;
    unsigned char *ibuf;
    size_t ipos, ilen; /* unconsumed input: ibuf[ipos..ilen) */
    int eof;           /* fd reached its end */
    int done;          /* the stream ended cleanly */
    int in_frame;      /* inside a gzip member / zstd frame */
    struct inflate_state *is;
    ZSTD_DCtx *zd;
};

/* Refills the input buffer (keeping unconsumed bytes). 0 at EOF is fine. */
static int refill(kiln_decompressor_t *d, kiln_error_t *err)
{
    if (d->ipos > 0) {
        memmove(d->ibuf, d->ibuf + d->ipos, d->ilen - d->ipos);
        d->ilen -= d->ipos;
        d->ipos = 0;
    }
    while (d->ilen < IN_SIZE && !d->eof) {
        ssize_t n = read(d->fd, d->ibuf + d->ilen, IN_SIZE - d->ilen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_set(err, errno, "reading the layer stream");
        if (n == 0) {
            d->eof = 1;
            break;
        }
        if (d->raw_hash)
            d->raw_hash(d->raw_ctx, d->ibuf + d->ilen, (size_t)n);
        d->ilen += (size_t)n;
        break;
    }
    return 0;
}

int kiln_decompressor_new(int fd, kiln_hash_fn raw_hash, void *raw_ctx, kiln_hash_fn out_hash,
                          void *out_ctx, kiln_decompressor_t **res, kiln_error_t *err)
{
    kiln_decompressor_t *d = kiln_xzalloc(sizeof(*d));
    d->fd = fd;
    d->raw_hash = raw_hash;
    d->raw_ctx = raw_ctx;
    d->out_hash = out_hash;
    d->out_ctx = out_ctx;
    d->ibuf = kiln_xmalloc(IN_SIZE);
    /* Enough bytes for the magic (a stream shorter than 4 bytes is tested as is). */
    while (d->ilen < 4 && !d->eof) {
        if (refill(d, err) < 0) {
            kiln_decompressor_free(d);
            return -1;
        }
    }
    d->type = kiln_compression_detect(d->ibuf, d->ilen);
    if (d->type == KILN_COMPRESSION_GZIP) {
        d->is = kiln_xmalloc(sizeof(*d->is));
        isal_inflate_init(d->is);
        d->is->crc_flag = ISAL_GZIP;
    } else if (d->type == KILN_COMPRESSION_ZSTD) {
        d->zd = ZSTD_createDCtx();
        if (d->zd == NULL) {
            kiln_decompressor_free(d);
            return kiln_error_set(err, ENOMEM, "zstd: cannot create a decompression context");
        }
        /* Caps the window (memory) at 128 MiB whatever the frame header claims. */
        ZSTD_DCtx_setParameter(d->zd, ZSTD_d_windowLogMax, 27);
    }
    *res = d;
    return 0;
}

kiln_compression_t kiln_decompressor_format(const kiln_decompressor_t *d)
{
    return d->type;
}

/* One step of gzip decoding; returns bytes produced (0 with done set at the end). */
static ssize_t read_gzip(kiln_decompressor_t *d, unsigned char *buf, size_t len, kiln_error_t *err)
{
    for (;;) {
        if (!d->in_frame) {
            /* Between members: the end, or another member must start here. */
            if (d->ilen - d->ipos < 2 && refill(d, err) < 0)
                return -1;
            if (d->ilen == d->ipos && d->eof) {
                d->done = 1;
                return 0;
            }
            if (d->ilen - d->ipos < 2 || d->ibuf[d->ipos] != 0x1f || d->ibuf[d->ipos + 1] != 0x8b)
                return kiln_error_set(err, 0,
                                      "gzip stream: unexpected data after the end of the "
                                      "compressed stream");
            isal_inflate_reset(d->is);
            d->is->crc_flag = ISAL_GZIP;
            d->in_frame = 1;
        }
        if (d->ipos == d->ilen) {
            if (d->eof)
                return kiln_error_set(err, 0,
                                      "gzip stream is truncated (ends inside the "
                                      "compressed data)");
            if (refill(d, err) < 0)
                return -1;
            continue;
        }
        d->is->next_in = d->ibuf + d->ipos;
        d->is->avail_in = (uint32_t)(d->ilen - d->ipos);
        d->is->next_out = buf;
        d->is->avail_out = (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len);
        uint32_t before_out = d->is->avail_out;
        int r = isal_inflate(d->is);
        d->ipos = (size_t)(d->is->next_in - d->ibuf);
        if (r != ISAL_DECOMP_OK)
            return kiln_error_set(err, 0, "gzip stream is corrupt (%s)",
                                  r == ISAL_INCORRECT_CHECKSUM ? "checksum mismatch"
                                                               : "invalid deflate data");
        size_t produced = before_out - d->is->avail_out;
        if (d->is->block_state == ISAL_BLOCK_FINISH)
            d->in_frame = 0;
        if (produced > 0)
            return (ssize_t)produced;
        if (d->in_frame && d->ipos == d->ilen && d->eof)
            return kiln_error_set(err, 0,
                                  "gzip stream is truncated (ends inside the "
                                  "compressed data)");
    }
}

/* One step of zstd decoding; returns bytes produced (0 with done set at the end). */
static ssize_t read_zstd(kiln_decompressor_t *d, unsigned char *buf, size_t len, kiln_error_t *err)
{
    for (;;) {
        if (d->ipos == d->ilen) {
            if (d->eof) {
                if (d->in_frame)
                    return kiln_error_set(err, 0,
                                          "zstd stream is truncated (ends inside a "
                                          "frame)");
                d->done = 1;
                return 0;
            }
            if (refill(d, err) < 0)
                return -1;
            continue;
        }
        ZSTD_inBuffer in = {d->ibuf, d->ilen, d->ipos};
        ZSTD_outBuffer o = {buf, len, 0};
        size_t r = ZSTD_decompressStream(d->zd, &o, &in);
        d->ipos = in.pos;
        if (ZSTD_isError(r))
            return kiln_error_set(err, 0, "zstd stream is corrupt: %s", ZSTD_getErrorName(r));
        d->in_frame = r != 0;
        if (o.pos > 0)
            return (ssize_t)o.pos;
    }
}

ssize_t kiln_decompressor_read(kiln_decompressor_t *d, void *buf, size_t len, kiln_error_t *err)
{
    ssize_t n;
    if (d->done || len == 0)
        return 0;
    switch (d->type) {
    case KILN_COMPRESSION_GZIP:
        n = read_gzip(d, buf, len, err);
        break;
    case KILN_COMPRESSION_ZSTD:
        n = read_zstd(d, buf, len, err);
        break;
    default:
        if (d->ipos == d->ilen && refill(d, err) < 0)
            return -1;
        n = (ssize_t)(d->ilen - d->ipos);
        if ((size_t)n > len)
            n = (ssize_t)len;
        memcpy(buf, d->ibuf + d->ipos, (size_t)n);
        d->ipos += (size_t)n;
        if (n == 0)
            d->done = 1;
        break;
    }
    if (n > 0 && d->out_hash)
        d->out_hash(d->out_ctx, buf, (size_t)n);
    return n;
}

int kiln_decompressor_drain(kiln_decompressor_t *d, kiln_error_t *err)
{
    _cleanup_free_ unsigned char *buf = kiln_xmalloc(64 * 1024);
    for (;;) {
        ssize_t n = kiln_decompressor_read(d, buf, 64 * 1024, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
    }
}

void kiln_decompressor_free(kiln_decompressor_t *d)
{
    if (d == NULL)
        return;
    free(d->is);
    ZSTD_freeDCtx(d->zd);
    free(d->ibuf);
    free(d);
}
