/* kiln — the unpacked-lower cache: each layer of a base image unpacked once,
 * in overlay form (whiteouts as 0:0 character devices, opaque directories
 * with user.overlay.opaque, as the step's overlay is mounted with
 * "userxattr"), owned as in the layer (the sandbox id-maps lowers), and
 * shared read-only by every step that builds on it.
 *
 *   <cache>/<sha256 hex of the layer blob>/      one dir per layer
 *
 * A layer is unpacked into a temp dir and renamed into place, so concurrent
 * builds and a kill in the middle never leave a half layer in the cache. */
#ifndef KILN_SANDBOX_ROOTFS_H
#define KILN_SANDBOX_ROOTFS_H

#include <stddef.h>

#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

#define KILN_ROOTFS_CACHE_DEFAULT "/var/cache/kiln/layers"

/* Resolves tag (NULL: the only image) in the OCI layout at layout_dir,
 * unpacks the layers missing from cache_dir and returns the lower dirs for
 * kiln_step_t, top-most first (*lowers: malloc'ed, NULL-terminated). */
int kiln_rootfs_from_layout(const char *layout_dir, const char *tag, const char *cache_dir,
                            char ***lowers, size_t *n, kiln_error_t *err);

/* The same for the image of manifest m whose layers are in the store. */
int kiln_rootfs_from_store(kiln_store_t *store, const kiln_manifest_t *m, const char *cache_dir,
                           char ***lowers, size_t *n, kiln_error_t *err);

#endif
