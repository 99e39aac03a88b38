/* kiln — uploaded build contexts (the API's POST /v1/contexts, a queued job's staged
 * tarball): a tar (plain or compressed) unpacked safely. */
#ifndef KILN_JOB_CONTEXT_H
#define KILN_JOB_CONTEXT_H

#include <stdint.h>
#include <sys/stat.h>

#include "utils/error.h"

/* What an uploaded context may unpack to (the compressed size is capped as it arrives). */
typedef struct kiln_context_caps {
    uint64_t max_bytes;   /* files' sizes added up (a sparse file counts its full size) */
    uint64_t max_entries; /* members, directories and links included */
} kiln_context_caps_t;

#define KILN_CONTEXT_MAX_BYTES (2ULL << 30)
#define KILN_CONTEXT_MAX_ENTRIES 100000ULL

/* The length of the content id an unpack reports for a file (engine/statcache's oid size). */
#define KILN_CONTEXT_OID_LEN 20

/* Called for each regular file the unpack wrote whole from the tarball's data (not a hard
 * link, not sparse): its member path (as in the tarball), its stat once written, and its
 * content id, the first KILN_CONTEXT_OID_LEN bytes of the sha256 of the bytes written (so
 * that the stat cache can keep a file's digest across uploads while its content is the
 * same, without reading it again). A later member of the same path is reported again. */
typedef void (*kiln_context_file_fn)(void *ctx, const char *member, const struct stat *st,
                                     const unsigned char oid[KILN_CONTEXT_OID_LEN]);

/* Unpacks the tarball into the existing directory dir, refusing absolute paths, ".."
 * components, links that leave the tree, FIFOs and devices. caps NULL means the defaults
 * above. on_file (may be NULL) hears of every regular file written (see above). Past a cap
 * it fails with err->code EFBIG and a message naming the cap (the caller removes dir). */
int kiln_context_unpack(const char *tarball, const char *dir, const kiln_context_caps_t *caps,
                        kiln_context_file_fn on_file, void *on_file_ctx, kiln_error_t *err);

#endif
