/* kiln — a blob read while it downloads: the pull writes each blob into its store temp file
 * and says how far it got; a reader (an unpacker) follows the file, waiting for more bytes,
 * and learns at the end whether the blob was published (its digest and size verified) or
 * failed. The reader's last read returns 0 only once the blob is in the store, so whatever
 * it built from the bytes is kept only for a verified blob.
 *
 * One stream per blob download, shared by reference between the download and its readers;
 * every reader has its own position (a layer named twice is read twice). */
#ifndef KILN_OCI_PULL_STREAM_H
#define KILN_OCI_PULL_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci/digest.h"
#include "utils/error.h"

typedef struct kiln_blob_stream kiln_blob_stream_t;

/* A stream of blob d (refcount 1), with no file yet. */
kiln_blob_stream_t *kiln_blob_stream_new(const kiln_digest_t *d);
kiln_blob_stream_t *kiln_blob_stream_ref(kiln_blob_stream_t *bs);
void kiln_blob_stream_unref(kiln_blob_stream_t *bs);
const kiln_digest_t *kiln_blob_stream_digest(const kiln_blob_stream_t *bs);

/* For hooks tracking several blobs: a reference to bs into each empty slots[i] whose
 * digests[i] is its blob (a layer named twice gets it twice); the number stored. */
size_t kiln_blob_stream_adopt(kiln_blob_stream_t **slots, const kiln_digest_t *digests, size_t n,
                              kiln_blob_stream_t *bs);

/* Producer side (the download). The blob's bytes are (again) written from the start into
 * the file read through fd (taken over; a download that starts over gives a new one). */
void kiln_blob_stream_restart(kiln_blob_stream_t *bs, int fd);
/* The first `avail` bytes are in the file. */
void kiln_blob_stream_grow(kiln_blob_stream_t *bs, uint64_t avail);
/* The end: ok (the blob, of `avail` bytes, is verified and in the store) or failed with e
 * (NULL: a generic message). Only the first call counts. */
void kiln_blob_stream_finish(kiln_blob_stream_t *bs, int ok, uint64_t avail, const kiln_error_t *e);

/* Memory mode (instead of restart/grow: no file): the producer pushes the bytes, hashed on the
 * way, into a ring of cap bytes that the one reader empties; a push that finds no room either
 * waits or (wait 0) returns 0 and has the reader call wake(ud) (from its thread) once there
 * is. The blob is never on disk: a download that starts over cannot be read again. Call
 * before the first push; -1 when no hash context can be made. */
int kiln_blob_stream_memory(kiln_blob_stream_t *bs, size_t cap, void (*wake)(void *ud), void *ud,
                            kiln_error_t *err);
/* Changes the wake-up (NULL: none; e.g. before what it wakes goes away). */
void kiln_blob_stream_set_wake(kiln_blob_stream_t *bs, void (*wake)(void *ud), void *ud);
/* 1: buf taken (copied and hashed); 0: no room (only when !wait; nothing taken). */
int kiln_blob_stream_push(kiln_blob_stream_t *bs, const void *buf, size_t len, int wait);
/* Whether the last push found no room and the reader has not made it yet. */
int kiln_blob_stream_blocked(kiln_blob_stream_t *bs);
/* The bytes pushed so far (where a resumed download continues). */
uint64_t kiln_blob_stream_pushed(kiln_blob_stream_t *bs);
/* The end of a memory-mode download: finishes the stream, ok when the bytes pushed hash to
 * its digest and are `size` bytes; else -1 with the error naming the blob (the stream
 * fails with it too). */
int kiln_blob_stream_commit(kiln_blob_stream_t *bs, uint64_t size, kiln_error_t *err);
/* The reader stops reading (it failed): later pushes are only hashed, so the download
 * still ends and says whether the blob was good. NULL is ignored. */
void kiln_blob_stream_abandon(kiln_blob_stream_t *bs);

/* Reader side. */
typedef struct kiln_blob_reader {
    kiln_blob_stream_t *bs;
    uint64_t pos;
} kiln_blob_reader_t;

/* A kiln_read_fn over a kiln_blob_reader_t: up to len bytes (waiting until they are
 * written), 0 once the blob is verified and read to its end, -1 with the download's error. */
ssize_t kiln_blob_stream_read(void *reader, void *buf, size_t len, kiln_error_t *err);
/* A kiln_block_fn (oci/compress.h) over a kiln_blob_reader_t of a stream in memory mode, its
 * one reader: the next bytes where they are in the ring (no copy; up to 256 KiB, held until
 * the next call, which gives them back), *len 0 once the blob is verified and read to its
 * end, NULL with the download's error. */
const void *kiln_blob_stream_block(void *reader, size_t *len, kiln_error_t *err);
/* Whether bs is in memory mode (kiln_blob_stream_memory was called). */
int kiln_blob_stream_in_memory(kiln_blob_stream_t *bs);
/* Waits for the end: 0 when the blob was verified and published, -1 with its error. */
int kiln_blob_stream_wait(kiln_blob_stream_t *bs, kiln_error_t *err);

#endif
