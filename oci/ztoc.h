/* kiln — zTOC: the per-layer table of contents of a SOCI index (AWS SOCI snapshotter).
 *
 * A zTOC lets a lazy-loading snapshotter read one file of a gzip layer without the whole
 * layer: the TOC gives every tar entry's metadata and the offset of its data in the
 * uncompressed stream; the zinfo ("checkpoints") gives, every span (4 MiB of uncompressed
 * data by default), the compressed offset of a deflate block boundary, the bits left over
 * in the byte before it and the 32 KiB window of output before it, so inflating can start
 * there; each span's compressed bytes have a sha256 in the zTOC so that a fetched range
 * is checked.
 *
 * Serialized as the flatbuffers schema ztoc.fbs of soci-snapshotter (root table Ztoc:
 * version, build_tool_identifier, compressed/uncompressed_archive_size, toc.metadata[],
 * compression_info{compression_algorithm, max_span_id, span_digests[], checkpoints[]}),
 * version "0.9". The checkpoints blob is zran's packed layout, little endian:
 * u32 count, u64 span size, then per checkpoint u64 in, u64 out, u8 bits, 32768 window
 * bytes (soci's zinfo v2).
 *
 * oci/ztoc.c: the model and the flatbuffers encoder/decoder (every offset and length of a
 * read zTOC is bounds-checked; a malformed one is refused naming what is wrong);
 * oci/ztoc_build.c: a zTOC built from a gzip layer; oci/ztoc_verify.c: a zTOC checked
 * against its layer span by span; oci/ztoc_tar.c: the streaming tar walker both use. */
#ifndef KILN_OCI_ZTOC_H
#define KILN_OCI_ZTOC_H

#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "utils/error.h"

#define KILN_ZTOC_VERSION "0.9"
#define KILN_ZTOC_WINDOW 32768
#define KILN_ZTOC_DEFAULT_SPAN (4 * 1024 * 1024)
/* The smallest span accepted: a window's worth, else checkpoints cost more than data. */
#define KILN_ZTOC_MIN_SPAN (64 * 1024)
/* Caps on what is read back: the serialized zTOC, TOC entries, checkpoints. */
#define KILN_ZTOC_MAX_BYTES (512u * 1024 * 1024)
#define KILN_ZTOC_MAX_FILES (1u << 20)
#define KILN_ZTOC_CHECKPOINT_BYTES (8 + 8 + 1 + KILN_ZTOC_WINDOW)
#define KILN_ZTOC_ZINFO_HEADER 12

typedef struct kiln_ztoc_xattr {
    char *key;
    char *value; /* NUL-terminated; PAX values are text */
} kiln_ztoc_xattr_t;

/* One tar entry, as soci's TOC builder records it from Go's archive/tar header. */
typedef struct kiln_ztoc_file {
    char *name;
    char *type;     /* reg, dir, symlink, hardlink, char, block, fifo */
    int64_t offset; /* of the entry's data in the uncompressed stream */
    int64_t size;
    char *linkname;
    int64_t mode;
    uint32_t uid, gid;
    char *uname, *gname;
    char *mod_time; /* RFC 3339, UTC, nanoseconds without trailing zeros */
    int64_t devmajor, devminor;
    kiln_ztoc_xattr_t *xattrs; /* the entry's PAX records, sorted by key */
    size_t n_xattrs;
} kiln_ztoc_file_t;

typedef struct kiln_ztoc {
    char *version;
    char *build_tool;
    int64_t compressed_size;
    int64_t uncompressed_size; /* where the tar reader stopped: after end-of-archive */
    kiln_ztoc_file_t *files;
    size_t n_files;
    int8_t algorithm; /* 1 = gzip (the only one kiln writes or reads) */
    int32_t max_span_id;
    char **span_digests; /* "sha256:<hex>" of each span's compressed bytes */
    size_t n_span_digests;
    uint8_t *checkpoints; /* the zinfo blob */
    size_t checkpoints_len;
} kiln_ztoc_t;

void kiln_ztoc_free(kiln_ztoc_t *z);
/* Frees the members of one entry (not the struct). */
void kiln_ztoc_file_clear(kiln_ztoc_file_t *f);

/* Serializes z as a ztoc.fbs flatbuffer (*out malloc'ed). */
int kiln_ztoc_encode(const kiln_ztoc_t *z, uint8_t **out, size_t *len, kiln_error_t *err);

/* Reads a serialized zTOC. Every offset, length and count is checked against the buffer;
 * strings must not hold NUL; the version must be 0.9 and the algorithm gzip; the
 * checkpoint blob must match its count (EINVAL naming the field otherwise). */
int kiln_ztoc_decode(const void *buf, size_t len, kiln_ztoc_t **out, kiln_error_t *err);

/* One checkpoint of a zinfo blob; window points into the blob. */
typedef struct kiln_zinfo_point {
    int64_t in;   /* compressed offset of the first full byte after the block boundary */
    int64_t out;  /* uncompressed offset there */
    uint8_t bits; /* bits (0..7) of the byte at in-1 still to be read */
    const uint8_t *window;
} kiln_zinfo_point_t;

/* The checkpoints of a zinfo blob (v2 layout: the count matches the length). Checks
 * bits < 8, in and out increasing, the first out 0. *points malloc'ed (views into blob). */
int kiln_zinfo_parse(const uint8_t *blob, size_t len, kiln_zinfo_point_t **points, size_t *n,
                     int64_t *span, kiln_error_t *err);

/* The compressed range [start, end) of span i (soci's rule: start steps back one byte
 * when the checkpoint has bits; end is the next checkpoint's in, or the layer's size). */
void kiln_zinfo_span_range(const kiln_zinfo_point_t *p, size_t n, size_t i, int64_t layer_size,
                           int64_t *start, int64_t *end);

/* ---- building and checking (oci/ztoc_build.c, oci/ztoc_verify.c) ---- */

/* Builds the zTOC of the gzip layer read from fd (size bytes, read with pread): one pass
 * inflating with block-boundary stops (checkpoints where more than span bytes came out
 * since the last one, as soci/zran do), the tar entries walked from the output, then the
 * span digests. Fails on a corrupt or non-gzip layer, a tar soci cannot index (a global
 * PAX header, an unknown entry type) or past the caps. */
int kiln_ztoc_build(int fd, uint64_t size, int64_t span, const char *build_tool, kiln_ztoc_t **out,
                    kiln_error_t *err);

typedef struct kiln_ztoc_verify_stats {
    size_t spans;
    size_t files;
    uint64_t uncompressed;
} kiln_ztoc_verify_stats_t;

/* Checks z against the gzip layer in fd (size bytes): sizes; each span's sha256; each
 * span inflated from its checkpoint alone (bits primed, window as dictionary) from its
 * own compressed range only, compared byte for byte with the layer inflated from the
 * start; the tar walked over the span output gives exactly the TOC's entries (names,
 * types, data offsets, sizes, modes, owners, times, links, PAX records). The first
 * mismatch fails naming the span or the entry. stats may be NULL. */
int kiln_ztoc_verify(const kiln_ztoc_t *z, int fd, uint64_t size, kiln_ztoc_verify_stats_t *stats,
                     kiln_error_t *err);

#endif
