/* kiln — one gzip stream inflated on several threads where its bytes allow it.
 *
 * DEFLATE cannot be split in general: a block may copy from the 32 KiB before it, and where
 * a block starts is known only by decoding everything before it. A stream made of pieces
 * compressed independently and joined by sync flushes (kiln's own layers, oci/pgzip; any
 * parallel compressor that does not carry its dictionary over) has the bytes 00 00 FF FF of
 * an empty stored block after each piece, and nothing after it refers back.
 *
 * The input is cut into chunks after such candidates (at least 512 KiB apart), and worker
 * threads decode each chunk ahead: from its first byte as a block start, with no history.
 * ISA-L refuses a distance that reaches before the start of its output, so such a decode
 * either fails or gives exactly what decoding the whole stream gives there, provided the
 * chunk does start a block. That is checked in order by the one sequential decoder. It
 * decodes the first chunk itself (after the gzip header), and takes a worker's result only
 * when two things hold: it reached that chunk's first byte at a block boundary, with no bits
 * pending, and the worker's decode ended the same way at the chunk's end.
 *
 * Anything else is decoded by the sequential decoder, with the last 32 KiB of output as its
 * dictionary: a candidate that was no boundary, a reference into the previous chunk (pigz
 * keeps its dictionary), a final block, or more than 16 MiB of output for one chunk. The
 * output is the same as one decoder's, byte for byte. Each member's CRC-32 and size are
 * checked against its trailer. Further members, trailing data, truncation and corruption
 * are treated as oci/compress treats them. Streams with no candidates, or whose chunks keep
 * failing, are soon decoded by the sequential decoder alone, reading no further ahead. */
#ifndef KILN_OCI_PINFLATE_H
#define KILN_OCI_PINFLATE_H

#include <stdint.h>
#include <sys/types.h>

#include "oci/compress.h"
#include "utils/error.h"

#define KILN_PINFLATE_MAX_WORKERS 4

typedef struct kiln_pinflate kiln_pinflate_t;

/* The worker count for this process: one per CPU it may run on (at most
 * KILN_PINFLATE_MAX_WORKERS), 0 on one CPU (nothing would run beside the decoder);
 * KILN_INFLATE_THREADS=N in the environment sets it (0: off). */
int kiln_pinflate_auto_workers(void);

/* Starts decoding the gzip stream d (detected as gzip, nothing decoded from it yet; d must
 * outlive p). A reader thread of p's reads d's input (kiln_decompressor_read_input) and cuts
 * it into chunks, up to workers + 2 of them ahead, each visible to the decoder as its
 * bytes arrive (a layer still downloading is decoded as far as it came); up to `workers`
 * threads decode chunks ahead (fewer when a thread cannot start; none is fine). NULL when
 * the reader thread cannot start (d untouched). */
kiln_pinflate_t *kiln_pinflate_new(kiln_decompressor_t *d, int workers);

/* The same cutting chunks at the first candidate chunk_min bytes in, or at chunk_max (the
 * defaults: 512 KiB and 2 MiB): small ones let tests and the fuzzer cross many cuts. */
kiln_pinflate_t *kiln_pinflate_new_sized(kiln_decompressor_t *d, int workers, size_t chunk_min,
                                         size_t chunk_max);

/* Reads up to len decompressed bytes; 0 at the clean end of the stream, -1 with err as
 * kiln_decompressor_read would fail (truncated, corrupt, checksum mismatch, trailing data);
 * after a failure every call fails the same way. */
ssize_t kiln_pinflate_read(kiln_pinflate_t *p, void *buf, size_t len, kiln_error_t *err);

/* The same without a copy where it can: *out points at the n bytes read, in buf, or in p's
 * output of a chunk decoded ahead. Those stay valid until kiln_pinflate_release has been
 * called once for this read and once for every earlier one that put them elsewhere than in
 * buf (in order: oldest first); each read with *out != buf takes one release. */
ssize_t kiln_pinflate_read_view(kiln_pinflate_t *p, void *buf, size_t len, const void **out,
                                kiln_error_t *err);
/* Gives back the oldest view read_view put outside its buf. */
void kiln_pinflate_release(kiln_pinflate_t *p);

/* For tests, before the first read: the decoder waits for the reader to cut each chunk
 * before it starts on it (never decoding a chunk as it arrives), so which chunks come from a
 * worker's decode depends on the bytes only, not on how the threads are scheduled. Only for
 * an input that is all there: with one held back until output is read, reads would wait
 * forever. */
void kiln_pinflate_wait_cuts(kiln_pinflate_t *p);

/* How many chunks the input was cut into, and how many of them came from a worker's decode
 * (for tests and benches). */
void kiln_pinflate_stats(kiln_pinflate_t *p, uint64_t *chunks, uint64_t *ahead);

/* Stops the workers (each finishes the chunk it decodes) and frees p, not its decompressor.
 * NULL is ignored. */
void kiln_pinflate_free(kiln_pinflate_t *p);

#endif
