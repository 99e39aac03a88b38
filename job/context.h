/* kiln — uploaded build contexts (the API's POST /v1/contexts, a queued job's staged
 * tarball): a tar (plain or compressed) unpacked safely. */
#ifndef KILN_JOB_CONTEXT_H
#define KILN_JOB_CONTEXT_H

#include <stdint.h>

#include "utils/error.h"

/* What an uploaded context may unpack to (the compressed size is capped as it arrives). */
typedef struct kiln_context_caps {
    uint64_t max_bytes;   /* files' sizes added up (a sparse file counts its full size) */
    uint64_t max_entries; /* members, directories and links included */
} kiln_context_caps_t;

#define KILN_CONTEXT_MAX_BYTES (2ULL << 30)
#define KILN_CONTEXT_MAX_ENTRIES 100000ULL

/* Unpacks the tarball into the existing directory dir, refusing absolute paths, ".."
 * components, links that leave the tree, FIFOs and devices. caps NULL means the defaults
 * above. Past a cap it fails with err->code EFBIG and a message naming the cap (the caller
 * removes dir). */
int kiln_context_unpack(const char *tarball, const char *dir, const kiln_context_caps_t *caps,
                        kiln_error_t *err);

#endif
