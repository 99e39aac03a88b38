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
    uint64_t uncompressed; /* of the layers measured */
    size_t unmeasured;     /* lazy layers (oci/store_lazy) of unknown uncompressed size */
    size_t unmemoized;     /* kiln_image_size_noted: layers in the store not measured yet */
} kiln_image_size_t;

/* Measures the image of `manifest` whose layers are `layers` (in the store, or lazy: a lazy
 * layer is not fetched, its size is its record's or counted in `unmeasured`). A
 * layer's uncompressed size is read by decompressing it once and kept on its blob
 * (extended attribute user.kiln.usize), so a layer shared by many builds is measured
 * once. Fails naming the layer that cannot be read. */
int kiln_image_size(kiln_store_t *store, const kiln_descriptor_t *manifest,
                    const kiln_digest_t *config, const kiln_descriptor_t *layers, size_t n_layers,
                    kiln_image_size_t *out, kiln_error_t *err);

/* kiln_image_size without decompressing anything: a layer in the store whose size was never
 * noted (a blob a plain `kiln pull` downloaded) is counted in `unmemoized` instead (naming a
 * pulled image then costs no second inflate of its layers; `kiln images` measures it when
 * it lists the image). Fails like kiln_image_size. */
int kiln_image_size_noted(kiln_store_t *store, const kiln_descriptor_t *manifest,
                          const kiln_digest_t *config, const kiln_descriptor_t *layers,
                          size_t n_layers, kiln_image_size_t *out, kiln_error_t *err);

/* The uncompressed size of layer blob d when known without reading it (its memo, or its
 * lazy blob record), else 0. */
uint64_t kiln_image_size_known(kiln_store_t *store, const kiln_digest_t *d);

/* Notes the uncompressed size of a layer blob kiln has just written or unpacked (the layer
 * writer or the unpack counted it), so kiln_image_size never decompresses it to measure it.
 * Only a blob of the root itself (not a lazy one, not an additional store's). Best effort: a
 * store whose file system has no user xattrs measures later instead. */
void kiln_image_size_note(kiln_store_t *store, const kiln_digest_t *layer, uint64_t usize);

#endif
