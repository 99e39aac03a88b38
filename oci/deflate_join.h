/* kiln — joining independently compressed raw DEFLATE streams into one.
 *
 * libdeflate compresses a whole buffer and always ends its output with a final
 * block (BFINAL = 1). To make one stream of several such outputs (one gzip
 * member, as pigz writes), every output but the last needs its final block
 * marked non-final and is then padded to a byte boundary with an empty stored
 * block (a "sync flush"). Where the final block starts is only known by
 * walking the blocks, which this does: it decodes the Huffman symbols without
 * producing any output. */
#ifndef KILN_OCI_DEFLATE_JOIN_H
#define KILN_OCI_DEFLATE_JOIN_H

#include <stddef.h>

/* Turns the raw DEFLATE stream buf[0..*len) (written by a conforming
 * compressor, ending with its final block) into a non-final, byte-aligned
 * piece that another DEFLATE stream may follow: the final block's BFINAL bit
 * is cleared and an empty stored block appended. buf must have room for
 * KILN_DEFLATE_JOIN_EXTRA more bytes; *len is updated. Returns 0, or -1 when
 * the stream is not valid DEFLATE or ends early (nothing is changed then). */
#define KILN_DEFLATE_JOIN_EXTRA 5
int kiln_deflate_make_nonfinal(unsigned char *buf, size_t *len);

/* The bytes of an empty final fixed-Huffman block: ends a joined stream. */
#define KILN_DEFLATE_EMPTY_FINAL "\x03\x00"

#endif
