/* kiln — the pack writer of a cache-mount save (engine/remote_mounts): the content of the
 * files a remote cache lacks, appended to pack files of at most KILN_CM_PACK_MAX bytes in the
 * build's work directory, each pack one blob of the new manifest (its ranges pointing into
 * it), ready to upload. Internal to the engine. */
#ifndef KILN_ENGINE_REMOTE_MOUNTS_PACK_H
#define KILN_ENGINE_REMOTE_MOUNTS_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/cachemanifest.h"
#include "oci/digest.h"

typedef struct kiln_mount_pack {
    char *path; /* in the work directory */
    int fd;     /* open while it is filled, -1 once closed */
    uint64_t size;
    kiln_sha256_t h;
    uint32_t blob; /* index in the new manifest's table (its digest set when closed) */
} kiln_mount_pack_t;

typedef struct kiln_mount_packer {
    kiln_cm_t *now;   /* in: the new manifest (its entries get ranges, its table the packs) */
    int rootfd;       /* in: the cache directory (O_PATH), files opened under it */
    const char *work; /* in: where the packs are written */
    kiln_mount_pack_t *packs; /* out: the packs written, each closed */
    size_t n_packs;
} kiln_mount_packer_t;

/* Packs the n entries missing[] of s->now (sorted here; each content once: an entry with the
 * content of the one before shares its ranges). A file changed since the scan is marked
 * dropped (type 0). 0, or -1 with err naming the file or pack. */
int kiln_mount_packs_write(kiln_mount_packer_t *s, size_t *missing, size_t n, kiln_error_t *err);

/* Bytes of every pack written. */
uint64_t kiln_mount_packs_bytes(const kiln_mount_packer_t *s);

/* Closes and removes every pack file and frees the list. */
void kiln_mount_packs_clear(kiln_mount_packer_t *s);

/* Leaves out of m the entries marked dropped (type 0) and the blobs no entry uses any more. */
void kiln_mount_packs_compact(kiln_cm_t *m);

#endif
