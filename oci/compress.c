/* kiln — streaming gzip (libdeflate members, oci/pgzip; ISA-L to read) / zstd / none
 * compression and decompression. */
#include "oci/compress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include "oci/pgzip.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define OUT_SIZE (512 * 1024) /* zstd output buffer */
#define IN_SIZE (256 * 1024)  /* decompressor input buffer */
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
    if (c == KILN_COMPRESSION_GZIP && (level < 0 || level > KILN_PGZIP_MAX_LEVEL))
        return kiln_error_set(err, EINVAL, "gzip compression level %d out of range 0..%d", level,
                              KILN_PGZIP_MAX_LEVEL);
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

struct kiln_compressor {
    kiln_compression_t type;
    kiln_sink_t *out;
    kiln_pgzip_t *gz; /* gzip: parallel libdeflate members */
    ZSTD_CCtx *zc;
    unsigned char *obuf; /* zstd output */
};

/* Compresses len bytes with zstd (end = last call) and writes the output to the sink. */
static int zstd_block(kiln_compressor_t *c, const void *buf, size_t len, int end, kiln_error_t *err)
{
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

int kiln_compressor_new(kiln_compression_t type, int level, int threaded, kiln_sink_t *out,
                        kiln_compressor_t **res, kiln_error_t *err)
{
    if (kiln_compression_check_level(type, level, err) < 0)
        return -1;
    kiln_compressor_t *c = kiln_xzalloc(sizeof(*c));
    c->type = type;
    c->out = out;
    if (type == KILN_COMPRESSION_GZIP) {
        if (kiln_pgzip_new(level < 0 ? KILN_GZIP_DEFAULT_LEVEL : level,
                           threaded ? KILN_PGZIP_AUTO : 0, out, &c->gz, err) < 0) {
            free(c);
            return -1;
        }
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
    *res = c;
    return 0;
}

int kiln_compressor_hash_input(kiln_compressor_t *c, kiln_sha256_t *h)
{
    if (c->type != KILN_COMPRESSION_GZIP)
        return 0;
    kiln_pgzip_hash_input(c->gz, h);
    return 1;
}

int kiln_compressor_write(kiln_compressor_t *c, const void *buf, size_t len, kiln_error_t *err)
{
    switch (c->type) {
    case KILN_COMPRESSION_GZIP:
        return kiln_pgzip_write(c->gz, buf, len, err);
    case KILN_COMPRESSION_ZSTD:
        return zstd_block(c, buf, len, 0, err);
    default:
        return len ? kiln_sink_write(c->out, buf, len, err) : 0;
    }
}

int kiln_compressor_buffer(kiln_compressor_t *c, void **buf, size_t *room, kiln_error_t *err)
{
    *buf = NULL;
    *room = 0;
    if (c->type != KILN_COMPRESSION_GZIP)
        return 0;
    *buf = kiln_pgzip_buffer(c->gz, room, err);
    return *buf == NULL ? -1 : 0;
}

int kiln_compressor_finish(kiln_compressor_t *c, kiln_error_t *err)
{
    switch (c->type) {
    case KILN_COMPRESSION_GZIP:
        return kiln_pgzip_finish(c->gz, err);
    case KILN_COMPRESSION_ZSTD:
        return zstd_block(c, NULL, 0, 1, err);
    default:
        return 0;
    }
}

void kiln_compressor_free(kiln_compressor_t *c)
{
    if (c == NULL)
        return;
    kiln_pgzip_free(c->gz);
    ZSTD_freeCCtx(c->zc);
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
    kiln_read_fn read;
    void *read_ctx;
    /* block mode (kiln_decompressor_new_blocks): the input taken where it is, no copy */
    kiln_block_fn block;
    void *block_ctx;
    const unsigned char *bp; /* the block held: bytes [boff, blen) not yet in `in` */
    size_t blen, boff;
    kiln_compression_t type;
    kiln_hash_fn raw_hash, out_hash;
    void *raw_ctx, *out_ctx;
    unsigned char *ibuf;
    const unsigned char *in; /* the input: ibuf, or the block held (block mode) */
    size_t ipos, ilen;       /* unconsumed input: in[ipos..ilen) */
    int eof;                 /* fd reached its end */
    int done;                /* the stream ended cleanly */
    int in_frame;            /* inside a gzip member / zstd frame */
    struct inflate_state *is;
    ZSTD_DCtx *zd;
};

/* Block mode's refill: the next block's bytes used in place when nothing is left over (a
 * block is given back only once every byte of it was consumed or copied out); bytes left
 * over (e.g. the start of a gzip member's magic at a block's end) are copied into ibuf with
 * what follows them. 0 at the end is fine. */
static int refill_block(kiln_decompressor_t *d, kiln_error_t *err)
{
    size_t rest = d->ilen - d->ipos;
    if (rest >= IN_SIZE) /* (callers refill with at most a few bytes left) */
        return 0;
    if (rest > 0)
        memmove(d->ibuf, d->in + d->ipos, rest);
    d->in = d->ibuf; /* (never pointing at a block that is given back below) */
    d->ipos = 0;
    d->ilen = rest;
    if (d->boff == d->blen) {
        if (d->eof)
            return 0;
        size_t n = 0;
        const void *b = d->block(d->block_ctx, &n, err);
        if (b == NULL)
            return -1;
        d->bp = b;
        d->blen = n;
        d->boff = 0;
        if (n == 0) {
            d->eof = 1;
            return 0;
        }
    }
    size_t take = d->blen - d->boff;
    if (rest == 0) {
        d->in = d->bp + d->boff;
    } else {
        take = take < IN_SIZE - rest ? take : IN_SIZE - rest;
        memcpy(d->ibuf + rest, d->bp + d->boff, take);
    }
    if (d->raw_hash)
        d->raw_hash(d->raw_ctx, d->in + rest, take);
    d->boff += take;
    d->ilen = rest + take;
    return 0;
}

/* Refills the input buffer (keeping unconsumed bytes). 0 at EOF is fine. */
static int refill(kiln_decompressor_t *d, kiln_error_t *err)
{
    if (d->block != NULL)
        return refill_block(d, err);
    if (d->ipos > 0) {
        memmove(d->ibuf, d->ibuf + d->ipos, d->ilen - d->ipos);
        d->ilen -= d->ipos;
        d->ipos = 0;
    }
    while (d->ilen < IN_SIZE && !d->eof) {
        ssize_t n = d->read(d->read_ctx, d->ibuf + d->ilen, IN_SIZE - d->ilen, err);
        if (n < 0)
            return -1;
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

/* The reader of a plain fd (ctx holds the fd number). */
static ssize_t fd_read(void *ctx, void *buf, size_t len, kiln_error_t *err)
{
    for (;;) {
        ssize_t n = read((int)(intptr_t)ctx, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return kiln_error_set(err, errno, "reading the layer stream");
    }
}

int kiln_decompressor_new(int fd, kiln_hash_fn raw_hash, void *raw_ctx, kiln_hash_fn out_hash,
                          void *out_ctx, kiln_decompressor_t **res, kiln_error_t *err)
{
    return kiln_decompressor_new_reader(fd_read, (void *)(intptr_t)fd, raw_hash, raw_ctx, out_hash,
                                        out_ctx, res, err);
}

/* A decompressor reading its input through read_fn, or (when set) taking it as blocks from
 * block_fn; its format detected from the first bytes. */
static int decompressor_new(kiln_read_fn read_fn, void *read_ctx, kiln_block_fn block_fn,
                            void *block_ctx, kiln_hash_fn raw_hash, void *raw_ctx,
                            kiln_hash_fn out_hash, void *out_ctx, kiln_decompressor_t **res,
                            kiln_error_t *err)
{
    kiln_decompressor_t *d = kiln_xzalloc(sizeof(*d));
    d->read = read_fn;
    d->read_ctx = read_ctx;
    d->block = block_fn;
    d->block_ctx = block_ctx;
    d->raw_hash = raw_hash;
    d->raw_ctx = raw_ctx;
    d->out_hash = out_hash;
    d->out_ctx = out_ctx;
    d->ibuf = kiln_xmalloc(IN_SIZE);
    d->in = d->ibuf;
    /* Enough bytes for the magic (a stream shorter than 4 bytes is tested as is). */
    while (d->ilen < 4 && !d->eof) {
        if (refill(d, err) < 0) {
            kiln_decompressor_free(d);
            return -1;
        }
    }
    d->type = kiln_compression_detect(d->in, d->ilen);
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

int kiln_decompressor_new_reader(kiln_read_fn fn, void *ctx, kiln_hash_fn raw_hash, void *raw_ctx,
                                 kiln_hash_fn out_hash, void *out_ctx, kiln_decompressor_t **res,
                                 kiln_error_t *err)
{
    return decompressor_new(fn, ctx, NULL, NULL, raw_hash, raw_ctx, out_hash, out_ctx, res, err);
}

int kiln_decompressor_new_blocks(kiln_block_fn fn, void *ctx, kiln_hash_fn raw_hash, void *raw_ctx,
                                 kiln_hash_fn out_hash, void *out_ctx, kiln_decompressor_t **res,
                                 kiln_error_t *err)
{
    return decompressor_new(NULL, NULL, fn, ctx, raw_hash, raw_ctx, out_hash, out_ctx, res, err);
}

kiln_compression_t kiln_decompressor_format(const kiln_decompressor_t *d)
{
    return d->type;
}

void kiln_decompressor_take_out_hash(kiln_decompressor_t *d, kiln_hash_fn *fn, void **ctx)
{
    *fn = d->out_hash;
    *ctx = d->out_ctx;
    d->out_hash = NULL;
    d->out_ctx = NULL;
}

void kiln_decompressor_set_out_hash(kiln_decompressor_t *d, kiln_hash_fn fn, void *ctx)
{
    d->out_hash = fn;
    d->out_ctx = ctx;
}

/* One step of gzip decoding; returns bytes produced (0 with done set at the end). */
static ssize_t read_gzip(kiln_decompressor_t *d, unsigned char *buf, size_t len, kiln_error_t *err)
{
    for (;;) {
        if (!d->in_frame) {
            /* Between members: the end, or another member must start here. */
            while (d->ilen - d->ipos < 2 && !d->eof) /* (the magic may come in pieces) */
                if (refill(d, err) < 0)
                    return -1;
            if (d->ilen == d->ipos && d->eof) {
                d->done = 1;
                return 0;
            }
            if (d->ilen - d->ipos < 2 || d->in[d->ipos] != 0x1f || d->in[d->ipos + 1] != 0x8b)
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
        d->is->next_in = (uint8_t *)(d->in + d->ipos); /* (ISA-L only reads it) */
        d->is->avail_in = (uint32_t)(d->ilen - d->ipos);
        d->is->next_out = buf;
        d->is->avail_out = (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len);
        uint32_t before_out = d->is->avail_out;
        int r = isal_inflate(d->is);
        d->ipos = (size_t)(d->is->next_in - d->in);
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
        ZSTD_inBuffer in = {d->in, d->ilen, d->ipos};
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
        memcpy(buf, d->in + d->ipos, (size_t)n);
        d->ipos += (size_t)n;
        if (n == 0)
            d->done = 1;
        break;
    }
    if (n > 0 && d->out_hash)
        d->out_hash(d->out_ctx, buf, (size_t)n);
    return n;
}

ssize_t kiln_decompressor_read_input(kiln_decompressor_t *d, void *buf, size_t len,
                                     kiln_error_t *err)
{
    while (d->ipos == d->ilen) {
        if (d->eof)
            return 0;
        if (refill(d, err) < 0)
            return -1;
    }
    size_t n = d->ilen - d->ipos < len ? d->ilen - d->ipos : len;
    memcpy(buf, d->in + d->ipos, n);
    d->ipos += n;
    return (ssize_t)n;
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
