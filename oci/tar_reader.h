/* kiln — a libarchive tar reader over a (gzip/zstd/plain, detected) stream,
 * shared by the layer unpacker and the layer writer's tar copier: errors of
 * the decompressor (truncation, corruption) come back as kiln errors. */
#ifndef KILN_OCI_TAR_READER_H
#define KILN_OCI_TAR_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <archive.h>
#include <archive_entry.h>

#include "oci/compress.h"
#include "utils/error.h"

typedef struct kiln_tar_reader kiln_tar_reader_t;

/* Starts reading a tar stream from fd (not closed by the reader). raw_hash /
 * out_hash (may be NULL) see every compressed / decompressed chunk. */
int kiln_tar_reader_open(int fd, kiln_hash_fn raw_hash, kiln_hash_fn out_hash, void *hash_ctx,
                         kiln_tar_reader_t **res, kiln_error_t *err);
/* The same over a decompressor made by the caller (any input source); the
 * reader owns dec from here on, also when it fails. */
int kiln_tar_reader_open_dec(kiln_decompressor_t *dec, kiln_tar_reader_t **res, kiln_error_t *err);
/* The same over blocks (kiln_block_fn, oci/compress.h) of plain (already decompressed) tar; the
 * format reported is none. */
int kiln_tar_reader_open_blocks(kiln_block_fn fn, void *ctx, kiln_tar_reader_t **res,
                                kiln_error_t *err);
/* The next entry: 1 and *entry (owned by the reader, valid until the next
 * call), 0 at the end of the archive, <0 on error. */
int kiln_tar_reader_next(kiln_tar_reader_t *t, struct archive_entry **entry, kiln_error_t *err);
/* Reads data of the current entry: bytes read, 0 at its end, <0 on error. */
ssize_t kiln_tar_reader_data(kiln_tar_reader_t *t, void *buf, size_t len, kiln_error_t *err);
/* The next block of the current entry's data, without copying it: 1 with
 * *buf (valid until the next call), *len and its *offset in the entry (a
 * sparse entry skips its holes), 0 at its end, <0 on error. */
int kiln_tar_reader_data_block(kiln_tar_reader_t *t, const void **buf, size_t *len, int64_t *offset,
                               kiln_error_t *err);
/* Reads the rest of the stream after the end-of-archive marker (so that
 * digests cover it and a truncated stream is noticed). */
int kiln_tar_reader_finish(kiln_tar_reader_t *t, kiln_error_t *err);
/* The compression detected. */
kiln_compression_t kiln_tar_reader_format(const kiln_tar_reader_t *t);
void kiln_tar_reader_free(kiln_tar_reader_t *t);

#endif
