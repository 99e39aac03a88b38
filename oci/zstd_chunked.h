/* kiln — zstd:chunked layers (the containers/storage format that lets podman/CRI-O fetch only
 * the files they lack; SOCI cannot index zstd): a tar compressed as one zstd frame per
 * non-empty regular file's content and one per run of tar headers between them (so the blob
 * is also a plain zstd stream of the same tar, its diff_id unchanged for any zstd reader),
 * followed by two zstd skippable frames a zstd reader ignores:
 *
 *   [skippable: zstd-compressed TOC JSON]  {"version": 1, "entries": [{"type": "reg",
 *       "name": "a/b", "mode": 420, "size": N, "uid": 0, "gid": 0, "modtime": RFC 3339,
 *       "digest": "sha256:<content>", "offset": O, "endOffset": E}, {"type": "dir" ...},
 *       {"type": "symlink", "linkName": ...}, ...]}   (O..E: the compressed frame of the file)
 *   [skippable: 64-byte footer]  little-endian u64: TOC offset (after its frame header),
 *       compressed length, uncompressed length, manifest type 1, tar-split offset, length,
 *       uncompressed length (all 0: no tar-split is written), then "GNUlInUx"
 *
 * and the layer descriptor's annotations KILN_ZSTD_CHUNKED_CHECKSUM ("sha256:" of the
 * compressed TOC bytes) and KILN_ZSTD_CHUNKED_POSITION ("offset:length:uncompressed:1"). No
 * tar-split is written (readers that need one to rebuild the tar fall back to the whole blob).
 */
#ifndef KILN_OCI_ZSTD_CHUNKED_H
#define KILN_OCI_ZSTD_CHUNKED_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci/digest.h"
#include "oci/image.h"
#include "oci/sink.h"
#include "utils/error.h"

#define KILN_ZSTD_CHUNKED_CHECKSUM "io.github.containers.zstd-chunked.manifest-checksum"
#define KILN_ZSTD_CHUNKED_POSITION "io.github.containers.zstd-chunked.manifest-position"
#define KILN_ZSTD_CHUNKED_FOOTER 72           /* skippable header + 64 bytes */
#define KILN_ZSTD_CHUNKED_TOC_MAX (64u << 20) /* compressed or not, on read */
#define KILN_ZSTD_CHUNKED_ENTRIES_MAX 1000000 /* on read */

typedef struct kiln_zstd_chunked_info {
    uint64_t size;         /* bytes written */
    kiln_digest_t digest;  /* of the blob */
    kiln_digest_t diff_id; /* of the tar read */
    uint64_t toc_offset, toc_length, toc_uncompressed;
    kiln_digest_t toc_digest; /* of the compressed TOC bytes */
    size_t entries;
} kiln_zstd_chunked_info_t;

/* Where the writer reads the uncompressed tar: up to len bytes, 0 at its end, -1 with err. */
typedef ssize_t (*kiln_zstd_chunked_read_fn)(void *ud, void *buf, size_t len, kiln_error_t *err);

/* Compresses the uncompressed tar read (to its end) into out as zstd:chunked at zstd level
 * (1..19; 0: 3). -1 with err naming the tar entry that could not be read. */
int kiln_zstd_chunked_write(kiln_zstd_chunked_read_fn rd, void *rd_ud, int level,
                            const kiln_sink_t *out, kiln_zstd_chunked_info_t *info,
                            kiln_error_t *err);
/* The same reading a file descriptor. */
int kiln_zstd_chunked_write_fd(int tar_fd, int level, const kiln_sink_t *out,
                               kiln_zstd_chunked_info_t *info, kiln_error_t *err);

/* Makes the image manifest top (or top's linux/amd64 manifest when it is an index) in store s
 * zstd:chunked: every layer decompressed and written again (level as above), its diff_id
 * checked against the config (unchanged), the manifest with the new layers and their
 * annotations put into the store: its descriptor in *out. -1 with err naming the layer. */
struct kiln_store;
int kiln_zstd_chunked_convert(struct kiln_store *s, const kiln_descriptor_t *top, int level,
                              kiln_descriptor_t *out, kiln_error_t *err);

/* The two annotation values of info (malloc'ed "sha256:..." and "O:L:U:1"). */
void kiln_zstd_chunked_annotations(const kiln_zstd_chunked_info_t *info, char **checksum,
                                   char **position);

/* Reads back blob_fd (size bytes): the footer, checked against the annotations when given
 * (either may be NULL), the TOC's checksum, the TOC itself, and every regular file's frame
 * (decompressed alone: its size and sha256 must be the entry's). *toc (may be NULL) gets the
 * parsed TOC. -1 with err naming what does not match. */
int kiln_zstd_chunked_verify(int blob_fd, uint64_t size, const char *checksum, const char *position,
                             json_t **toc, kiln_error_t *err);

#endif
