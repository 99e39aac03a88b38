/* kiln — streaming layer compression: gzip (libdeflate, one member per 1 MiB
 * block, oci/pgzip), zstd (libzstd) or none, and the matching decompressing
 * reader (ISA-L igzip for gzip) that detects the format by its magic bytes.
 *
 * A compressor consumes raw bytes and writes the compressed stream to a sink.
 * In threaded mode gzip blocks are compressed by one thread per CPU and zstd
 * by libzstd's workers, so that producing the input (tar + hashing) and
 * compressing it use every core; memory stays bounded (a few MiB per thread).
 * The bytes never depend on the number of threads. */
#ifndef KILN_OCI_COMPRESS_H
#define KILN_OCI_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci/digest.h"
#include "oci/sink.h"
#include "utils/error.h"

typedef enum kiln_compression {
    KILN_COMPRESSION_NONE = 0,
    KILN_COMPRESSION_GZIP,
    KILN_COMPRESSION_ZSTD,
} kiln_compression_t;

/* Default levels: libdeflate level 3 for gzip, zstd level 3 (zstd's own
 * default). See KILN_GZIP_DEFAULT_LEVEL's measurements in docs/cli.md
 * (bench/gzip_parity.sh). */
#define KILN_GZIP_DEFAULT_LEVEL 3
#define KILN_ZSTD_DEFAULT_LEVEL 3

/* "gzip", "zstd" or "none". */
const char *kiln_compression_name(kiln_compression_t c);
/* Parses "gzip" | "zstd" | "none" (also "uncompressed"). */
int kiln_compression_parse(const char *s, kiln_compression_t *out, kiln_error_t *err);
/* Checks a level for a compression: gzip 0..12 (libdeflate's), zstd 1..19,
 * none ignores it; -1 means the default. */
int kiln_compression_check_level(kiln_compression_t c, int level, kiln_error_t *err);
/* Detects the format of a stream from its first bytes (at least 4 for a sure
 * answer): gzip 1f 8b, zstd 28 b5 2f fd, anything else is "none". */
kiln_compression_t kiln_compression_detect(const void *buf, size_t len);

typedef struct kiln_compressor kiln_compressor_t;

/* Creates a compressor writing to out (which must outlive it). level -1 =
 * default. threaded = 1 compresses in worker threads (gzip: one per CPU; zstd:
 * libzstd's own workers); the gzip bytes are the same either way. Fails on a
 * bad level, an allocation or a thread that cannot start. */
int kiln_compressor_new(kiln_compression_t c, int level, int threaded, kiln_sink_t *out,
                        kiln_compressor_t **res, kiln_error_t *err);
/* Lets the compressor hash its input, in order, into h (initialised, outliving
 * it) where that costs the caller's thread nothing: gzip does it in the
 * thread writing its output. Returns 1 when it will, 0 when the caller must
 * hash the input itself (zstd, none). Call before the first write. */
int kiln_compressor_hash_input(kiln_compressor_t *c, kiln_sha256_t *h);
/* Feeds raw bytes. Fails when the sink failed (the error names it). */
int kiln_compressor_write(kiln_compressor_t *c, const void *buf, size_t len, kiln_error_t *err);
/* Where the producer may put its next input bytes to save a copy (see
 * kiln_pgzip_buffer: a kiln_compressor_write of exactly those bytes, no other
 * write between, takes them in place): *buf and *room, or *buf = NULL when
 * the compressor has no such buffer (zstd, none). -1 when the stream failed. */
int kiln_compressor_buffer(kiln_compressor_t *c, void **buf, size_t *room, kiln_error_t *err);
/* Ends the stream (trailer, last frame) and waits until the sink has it all. */
int kiln_compressor_finish(kiln_compressor_t *c, kiln_error_t *err);
/* Frees (stopping the worker). NULL is fine. */
void kiln_compressor_free(kiln_compressor_t *c);
/* A sink writing into the compressor (for libarchive callbacks and copiers). */
kiln_sink_t kiln_compressor_sink(kiln_compressor_t *c);

/* A reader that yields decompressed bytes. */
typedef struct kiln_decompressor kiln_decompressor_t;

/* Reads the compressed stream from fd (not closed by the decompressor). The
 * format is detected from the first bytes. raw_hash / out_hash, when not NULL,
 * are called with every compressed / decompressed chunk (for digest checks). */
typedef void (*kiln_hash_fn)(void *ctx, const void *buf, size_t len);
int kiln_decompressor_new(int fd, kiln_hash_fn raw_hash, void *raw_ctx, kiln_hash_fn out_hash,
                          void *out_ctx, kiln_decompressor_t **res, kiln_error_t *err);
/* Where a decompressor can read its input from besides an fd (e.g. a blob
 * still downloading): up to len bytes, 0 at the end, -1 with err. */
typedef ssize_t (*kiln_read_fn)(void *ctx, void *buf, size_t len, kiln_error_t *err);
/* The same reading the compressed stream through fn(ctx, ...). */
int kiln_decompressor_new_reader(kiln_read_fn fn, void *ctx, kiln_hash_fn raw_hash, void *raw_ctx,
                                 kiln_hash_fn out_hash, void *out_ctx, kiln_decompressor_t **res,
                                 kiln_error_t *err);
/* Where input can come from in blocks: the next block (the previous one given back; valid
 * until the next call) and its length in *len (0 at the end), or NULL with err. */
typedef const void *(*kiln_block_fn)(void *ctx, size_t *len, kiln_error_t *err);
/* The same taking the compressed stream as blocks from fn(ctx, ...), decompressed where they
 * are (no copy into a buffer of its own: e.g. a streamed blob's bytes in its ring). */
int kiln_decompressor_new_blocks(kiln_block_fn fn, void *ctx, kiln_hash_fn raw_hash, void *raw_ctx,
                                 kiln_hash_fn out_hash, void *out_ctx, kiln_decompressor_t **res,
                                 kiln_error_t *err);
/* Reads up to len decompressed bytes; 0 at the clean end of the stream. A
 * stream that ends early ("truncated"), corrupt data or trailing garbage fails
 * with a message saying so. */
ssize_t kiln_decompressor_read(kiln_decompressor_t *d, void *buf, size_t len, kiln_error_t *err);
/* The detected format. */
kiln_compression_t kiln_decompressor_format(const kiln_decompressor_t *d);

/* Takes d's output hook (kiln_hash_fn and its context) off d: *fn, *ctx (NULL when none).
 * The caller hashes the output itself from then on (oci/inflate_thread's hasher). */
void kiln_decompressor_take_out_hash(kiln_decompressor_t *d, kiln_hash_fn *fn, void **ctx);

/* Puts an output hook (back) on d. */
void kiln_decompressor_set_out_hash(kiln_decompressor_t *d, kiln_hash_fn fn, void *ctx);
/* Reads up to len bytes of the compressed stream itself, from where decoding would go on
 * (its input hook sees them as usual); 0 at its end. For a reader that decodes the stream on
 * its own (oci/pinflate): d is not read with kiln_decompressor_read afterwards. */
ssize_t kiln_decompressor_read_input(kiln_decompressor_t *d, void *buf, size_t len,
                                     kiln_error_t *err);
/* Reads and discards the rest of the decompressed stream (so that digests
 * cover it all, e.g. tar padding after the end-of-archive marker). */
int kiln_decompressor_drain(kiln_decompressor_t *d, kiln_error_t *err);
void kiln_decompressor_free(kiln_decompressor_t *d);

#endif
