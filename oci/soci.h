/* kiln — SOCI index manifest v2: a built image made lazy-loadable by the AWS SOCI
 * snapshotter (ECS on Fargate), without containerd or the soci CLI.
 *
 * What kiln_soci_convert writes into the store, as `soci convert` does:
 *   - a zTOC (oci/ztoc.h) per gzip layer of at least min_layer bytes (10 MiB by default,
 *     like soci's --min-layer-size), a blob of media type application/octet-stream;
 *   - the empty JSON config "{}";
 *   - the SOCI index: an OCI image manifest whose config has media type
 *     application/vnd.amazon.soci.index.v2+json and whose layers are the zTOC descriptors,
 *     each annotated com.amazon.soci.image-layer-digest / -mediaType (the layer it
 *     indexes), the manifest annotated com.amazon.soci.build-tool-identifier; no subject;
 *   - the image manifest again, as an OCI manifest annotated com.amazon.soci.index-digest
 *     = the SOCI index's digest (so the image's manifest digest changes);
 *   - an OCI image index listing that manifest (with its platform and annotation) and the
 *     SOCI index (artifactType application/vnd.amazon.soci.index.v2+json, the same
 *     platform, annotated com.amazon.soci.image-manifest-digest). Pushing this index is
 *     pushing the SOCI-enabled image; runtimes that know nothing of SOCI pick the image
 *     manifest (the first entry for the platform).
 * zstd layers cannot be indexed (soci's zinfo is gzip only): a zstd layer at or above
 * the threshold fails the conversion with a message saying to build with gzip.
 *
 * kiln_soci_verify reads such an image back from the store and checks the links both
 * ways and every zTOC against its layer span by span (kiln_ztoc_verify). */
#ifndef KILN_OCI_SOCI_H
#define KILN_OCI_SOCI_H

#include <stddef.h>
#include <stdint.h>

#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

#define KILN_SOCI_INDEX_V2 "application/vnd.amazon.soci.index.v2+json"
#define KILN_SOCI_ZTOC_MEDIA_TYPE "application/octet-stream"
#define KILN_SOCI_ANN_INDEX_DIGEST "com.amazon.soci.index-digest"
#define KILN_SOCI_ANN_MANIFEST_DIGEST "com.amazon.soci.image-manifest-digest"
#define KILN_SOCI_ANN_LAYER_DIGEST "com.amazon.soci.image-layer-digest"
#define KILN_SOCI_ANN_LAYER_MEDIA_TYPE "com.amazon.soci.image-layer-mediaType"
#define KILN_SOCI_ANN_BUILD_TOOL "com.amazon.soci.build-tool-identifier"
#define KILN_SOCI_DEFAULT_MIN_LAYER (10 * 1024 * 1024)

typedef struct kiln_soci_opts {
    int64_t span;           /* uncompressed bytes per span; 0 = 4 MiB */
    int64_t min_layer;      /* layers smaller get no zTOC; <0 = 10 MiB */
    const char *build_tool; /* the build-tool-identifier; NULL = "kiln" */
} kiln_soci_opts_t;

typedef struct kiln_soci_result {
    kiln_descriptor_t top;  /* the OCI index to push (media type, digest, size) */
    kiln_digest_t manifest; /* the annotated image manifest */
    kiln_digest_t index;    /* the SOCI index manifest */
    size_t ztocs, skipped;  /* layers indexed / below the threshold */
} kiln_soci_result_t;

/* Converts the image whose manifest is `manifest` (in the store) into a SOCI-enabled
 * image, all written into the store; *out describes it. When no layer reaches the
 * threshold nothing is written and out->ztocs is 0 (out->top is then the manifest
 * itself: push it as it is). Fails on a zstd or uncompressed layer at or above the
 * threshold (naming it and what to do), a corrupt layer, or a bad option. */
int kiln_soci_convert(kiln_store_t *s, const kiln_descriptor_t *manifest, const kiln_soci_opts_t *o,
                      kiln_soci_result_t *out, kiln_error_t *err);

typedef struct kiln_soci_verify_stats {
    size_t indexes; /* SOCI indexes (one per platform) */
    size_t ztocs, spans, files;
    size_t layers_without_ztoc;
} kiln_soci_verify_stats_t;

/* Checks the SOCI-enabled image whose top document (an OCI index) is in the store:
 * at least one SOCI v2 index, each linked both ways with an image manifest of the same
 * platform, each zTOC naming a layer of that manifest with its media type, decoding,
 * and verifying against the layer span by span. Fails naming the first problem. */
int kiln_soci_verify(kiln_store_t *s, const kiln_digest_t *top, kiln_soci_verify_stats_t *stats,
                     kiln_error_t *err);

#endif
