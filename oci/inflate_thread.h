/* kiln — inflating a compressed layer in a thread of its own: the decompression (and the
 * digests its hooks compute) runs beside the tar parsing and file writing, on another CPU.
 * The plain tar passes in a few slots of up to 256 KiB, handed to the reader without a copy;
 * each slot holds what one read of the input gave (a layer still downloading is unpacked as
 * far as it arrived). The decompressor's output hook (the diff_id's SHA-256) runs in a
 * hasher thread of its own over the same slots, in order. A gzip layer is decoded through
 * oci/pinflate (its chunks decoded ahead by worker threads where the stream allows it) when
 * kiln_pinflate_auto_workers gives any. Used by the layer unpacker (oci/unpack) as its tar
 * reader's blocks. */
#ifndef KILN_OCI_INFLATE_THREAD_H
#define KILN_OCI_INFLATE_THREAD_H

#include <stddef.h>

#include "oci/compress.h"
#include "utils/error.h"

typedef struct kiln_inflate_thread kiln_inflate_thread_t;

/* Starts inflating dec in a new thread (its output hook moved to a hasher thread when one
 * starts); dec is taken over on success (freed by kiln_inflate_thread_stop). NULL when no
 * thread can start (dec is then still the caller's, its hook back on it). */
kiln_inflate_thread_t *kiln_inflate_thread_start(kiln_decompressor_t *dec);

/* A kiln_block_fn (oci/tar_reader) over t: the next block of plain tar (the previous one
 * given back), *len 0 at the end, NULL with the decompressor's error. */
const void *kiln_inflate_thread_block(void *t, size_t *len, kiln_error_t *err);

/* Stops the threads (one blocked reading its input ends once that read returns) and frees
 * t and its decompressor. After the reader saw the end, the hasher finishes first: the
 * hooks have then seen every byte, and the digests they computed are complete. NULL is
 * ignored. */
void kiln_inflate_thread_stop(kiln_inflate_thread_t *t);
/* Whether the inflate is ahead of the reader (at least half its slots filled and waiting):
 * the reader, not the inflate, is then what the unpack waits for. */
int kiln_inflate_thread_ahead(kiln_inflate_thread_t *t);

#endif
