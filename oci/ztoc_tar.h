/* kiln — the streaming tar walker of zTOCs: fed the uncompressed bytes of a layer in any
 * chunks, it records each entry as soci's TOC builder sees it through Go's archive/tar
 * (name after PAX / GNU long names / the ustar prefix, type name, the offset of the data
 * in the stream, size, mode, ids, names, mtime, device numbers, PAX records) and where
 * the reader stops (after the two zero blocks of the end-of-archive, or at a clean end).
 * Hostile input: header checksums checked, numbers parsed strictly, PAX / long-name data
 * at most 1 MiB, at most KILN_ZTOC_MAX_FILES entries. */
#ifndef KILN_OCI_ZTOC_TAR_H
#define KILN_OCI_ZTOC_TAR_H

#include <stddef.h>
#include <stdint.h>

#include "oci/ztoc.h"
#include "utils/error.h"

#define KILN_ZTOC_TAR_EXT_MAX (1024 * 1024)

typedef struct kiln_ztoc_tar {
    int64_t pos; /* stream bytes consumed */
    int state;
    uint8_t blk[512];
    size_t have;
    int zeros;
    int ext_type; /* 'x', 'L' or 'K' while its data is read */
    uint8_t *ext;
    size_t ext_len, ext_need;
    int64_t skip; /* data + padding of the current entry still to pass */
    kiln_ztoc_xattr_t *pax;
    size_t n_pax;
    char *long_name, *long_link;
    int done;
    int64_t end; /* where the reader stopped (valid once done) */
    kiln_ztoc_file_t *files;
    size_t n_files, cap_files;
} kiln_ztoc_tar_t;

/* Feeds stream bytes; bytes after the end-of-archive are ignored. Fails on a malformed
 * header, PAX record or number, an entry type soci cannot index, past the caps. */
int kiln_ztoc_tar_feed(kiln_ztoc_tar_t *t, const uint8_t *buf, size_t len, kiln_error_t *err);
/* The stream ended: fine at a block boundary with no entry pending (sets done/end). */
int kiln_ztoc_tar_finish(kiln_ztoc_tar_t *t, kiln_error_t *err);
/* Frees what the walker holds (files included unless taken: set files NULL, n_files 0). */
void kiln_ztoc_tar_clear(kiln_ztoc_tar_t *t);

/* Compares two entries field by field; on a difference fills err naming the field. */
int kiln_ztoc_file_compare(const kiln_ztoc_file_t *a, const kiln_ztoc_file_t *b, kiln_error_t *err);

/* The TOC type of a tar entry's type flag ("reg", "hardlink", "symlink", "char", "block",
 * "dir", "fifo"; as SOCI and zstd:chunked name them), NULL for other flags. */
const char *kiln_ztoc_tar_type_name(int flag);

#endif
