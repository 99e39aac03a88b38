/* kiln — parallel gzip: the input is cut into fixed blocks of KILN_PGZIP_BLOCK
 * bytes, each block is compressed by libdeflate on one of N threads into a
 * DEFLATE piece made non-final and byte-aligned (oci/deflate_join), and the
 * pieces are written in input order between one gzip header and one trailer
 * (CRC-32 combined from the blocks'): one gzip member, as pigz writes.
 *
 * One member, not a series: every gzip reader reads a series, but the SOCI
 * snapshotter's span extraction (zran-style raw inflate from a checkpoint)
 * stops at the end of a member, so a span across two members would come back
 * short. Cutting at fixed input offsets (never at "whatever a thread had")
 * makes the bytes depend only on the input and the level: the same input
 * gives the same blob, and so the same digest, with 0, 1 or 8 threads and
 * whatever their timing.
 *
 * A block loses the 32 KiB of history before it (libdeflate takes no
 * dictionary): about 0.3% of output on a mixed tree at 1 MiB blocks, against
 * libdeflate's far better matching than ISA-L's at the same speed. Memory:
 * (3 * workers + 2) slots of a block plus its compression bound (about 17 MiB
 * with two workers), and one
 * libdeflate compressor per thread. */
#ifndef KILN_OCI_PGZIP_H
#define KILN_OCI_PGZIP_H

#include <stddef.h>

#include "oci/digest.h"
#include "oci/sink.h"
#include "utils/error.h"

#define KILN_PGZIP_BLOCK (1024 * 1024)
#define KILN_PGZIP_MAX_LEVEL 12 /* libdeflate's levels: 0 stored .. 12 slowest */
#define KILN_PGZIP_MAX_WORKERS 8
#define KILN_PGZIP_AUTO (-1) /* one worker per CPU this process may run on */

typedef struct kiln_pgzip kiln_pgzip_t;

/* The worker count KILN_PGZIP_AUTO stands for: the CPUs in this process's
 * affinity mask, 1..KILN_PGZIP_MAX_WORKERS. */
int kiln_pgzip_auto_workers(void);

/* Creates a compressor writing members to out (which must outlive it).
 * workers: 0 compresses in the caller's thread, N > 0 starts N threads,
 * KILN_PGZIP_AUTO as kiln_pgzip_auto_workers(). Fails on a level outside
 * 0..KILN_PGZIP_MAX_LEVEL, an allocation or a thread that cannot start. */
int kiln_pgzip_new(int level, int workers, kiln_sink_t *out, kiln_pgzip_t **res, kiln_error_t *err);
/* Makes the compressor hash every input byte, in input order, into h (the
 * caller's, initialised, outliving it): done by the thread that writes the
 * pieces out, so the producer spends no time on it. Call before the first
 * write. */
void kiln_pgzip_hash_input(kiln_pgzip_t *p, kiln_sha256_t *h);
/* Feeds raw bytes. Fails when the sink failed (its error). */
int kiln_pgzip_write(kiln_pgzip_t *p, const void *buf, size_t len, kiln_error_t *err);
/* Where the next input bytes go in the block being filled (taking the next
 * block's slot first, waiting while all are in flight), with *room bytes of
 * space: a producer may read its input there, and a kiln_pgzip_write of those
 * bytes (buf = the pointer returned, len <= *room, no other write between)
 * takes them in place instead of copying them. NULL when the stream failed
 * (the sink's error). */
void *kiln_pgzip_buffer(kiln_pgzip_t *p, size_t *room, kiln_error_t *err);
/* Compresses what is left, waits until the sink has every piece and writes the
 * trailer. An empty input gives a valid empty gzip stream. */
int kiln_pgzip_finish(kiln_pgzip_t *p, kiln_error_t *err);
/* Stops the threads (dropping queued blocks) and frees. NULL is fine. */
void kiln_pgzip_free(kiln_pgzip_t *p);

#endif
