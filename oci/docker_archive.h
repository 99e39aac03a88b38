/* kiln — docker-archive: the `docker save` / `docker load` tarball.
 *
 * Written as Docker 25+ saves: manifest.json
 *   [{"Config":"blobs/sha256/<hex>","RepoTags":["name:tag"],"Layers":["blobs/sha256/<hex>",…]}]
 * plus oci-layout, index.json and blobs/sha256/<hex> (so the same file is also
 * an OCI archive). Layer blobs are stored as they are in the store
 * (compressed or not): `docker load` and skopeo detect the compression.
 * The tarball is written to a temp file and renamed over the destination.
 *
 * Read: manifest.json (both the old "<hex>/layer.tar" and the blobs/ shape),
 * the config, and every layer (hashed; stored when a store is given). */
#ifndef KILN_OCI_DOCKER_ARCHIVE_H
#define KILN_OCI_DOCKER_ARCHIVE_H

#include <jansson.h>

#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

/* Writes the image whose manifest is `manifest` (in the store) to path.
 * repo_tags is a NULL-terminated list of "name:tag" (may be NULL/empty). */
int kiln_docker_archive_write(kiln_store_t *s, const char *path, const kiln_descriptor_t *manifest,
                              const char *const *repo_tags, kiln_error_t *err);

/* The same for n images in one archive: manifests[i] named repo_tags[i] (NULL-terminated,
 * may be NULL), each blob written once. */
int kiln_docker_archive_write_multi(kiln_store_t *s, const char *path,
                                    const kiln_descriptor_t *manifests,
                                    const char *const *const *repo_tags, size_t n,
                                    kiln_error_t *err);

/* One image read from an archive. */
typedef struct kiln_docker_archive_image {
    json_t *manifest;                /* an OCI manifest describing config + layers */
    json_t *config;                  /* the image config */
    json_t *repo_tags;               /* array of strings (possibly empty) */
    kiln_descriptor_t manifest_desc; /* digest/size of the canonical manifest */
} kiln_docker_archive_image_t;

/* Reads image number `index` (0 = first) of the archive at path. Layers are
 * streamed and hashed (never held in memory); when store != NULL the config,
 * layers and manifest are also put in it. Layer media types are detected from
 * their content (gzip, zstd, or plain tar). */
int kiln_docker_archive_read(const char *path, size_t index, kiln_store_t *store,
                             kiln_docker_archive_image_t **out, kiln_error_t *err);
/* How many images the archive's manifest.json lists. */
int kiln_docker_archive_count(const char *path, size_t *n, kiln_error_t *err);
void kiln_docker_archive_image_free(kiln_docker_archive_image_t *img);

#endif
