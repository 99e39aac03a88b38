/* kiln — the size of a built image, for the build record: compressed (the manifest, its
 * config and layer blobs: what a pull transfers) and uncompressed (the layers' tar
 * streams: what the image takes unpacked, as `docker images` counts it). */
#ifndef KILN_OCI_IMAGESIZE_H
#define KILN_OCI_IMAGESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

typedef struct kiln_image_size {
    uint64_t compressed;
    uint64_t uncompressed;
} kiln_image_size_t;

/* Measures the image of `manifest` whose layers are `layers` (all in the store). A
 * layer's uncompressed size is read by decompressing it once and kept on its blob
 * (extended attribute user.kiln.usize), so a layer shared by many builds is measured
 * once. Fails naming the layer that cannot be read. */
int kiln_image_size(kiln_store_t *store, const kiln_descriptor_t *manifest,
                    const kiln_digest_t *config, const kiln_descriptor_t *layers, size_t n_layers,
                    kiln_image_size_t *out, kiln_error_t *err);

/* Notes the uncompressed size of a layer blob kiln has just written (the layer writer
 * counted it), so kiln_image_size never decompresses it to measure it. Best effort: a
 * store whose file system has no user xattrs measures later instead. */
void kiln_image_size_note(kiln_store_t *store, const kiln_digest_t *layer, uint64_t usize);

#endif
