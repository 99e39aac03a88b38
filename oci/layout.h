/* kiln — OCI image layout v1, written as BuildKit does and read back.
 *
 *   <dir>/oci-layout          {"imageLayoutVersion":"1.0.0"}
 *   <dir>/index.json          an OCI index; each image's descriptor carries
 *                             org.opencontainers.image.ref.name = its tag and
 *                             io.containerd.image.name = its full name
 *   <dir>/blobs/sha256/<hex>  manifests, configs, layers
 *
 * One layout holds several images: writing into an existing layout keeps the
 * other images and replaces the one with the same tag. An OCI archive is the
 * same tree in a tar file (written when tar is requested or the destination
 * ends in ".tar", as buildx does); an existing archive is replaced. Every write
 * is atomic at file level: blobs and index.json appear via temp+rename, the
 * archive via a temp file renamed over the destination. */
#ifndef KILN_OCI_LAYOUT_H
#define KILN_OCI_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

#define KILN_ANNOT_REF_NAME "org.opencontainers.image.ref.name"
#define KILN_ANNOT_CONTAINERD_NAME "io.containerd.image.name"

/* The tag of a full image name: "reg:5000/a/b:v1" → "v1", "a/b" → "latest",
 * "a/b@sha256:…" → NULL (digest references have no tag). Malloc'ed. */
char *kiln_layout_tag_of(const char *name);

/* Writes the image whose top-level manifest or index `top` is in the store
 * into the layout at path (a directory, or an OCI archive when tar is true or
 * path ends in ".tar"). name (may be NULL: no annotations) is the full image
 * name, e.g. "docker.io/library/busybox:1.36". Blobs are hardlinked from the
 * store when possible, else copied (and verified). */
int kiln_layout_write(kiln_store_t *s, const char *path, int tar, const kiln_descriptor_t *top,
                      const char *name, kiln_error_t *err);

/* Writes an OCI archive of the image (as kiln_layout_write with tar) with
 * one more top-level file extra_name holding extra (e.g. the docker-archive
 * manifest.json). */
int kiln_layout_write_archive_extra(kiln_store_t *s, const char *path, const kiln_descriptor_t *top,
                                    const char *name, const char *extra_name, const char *extra,
                                    size_t extra_len, kiln_error_t *err);

/* The same for n images in one archive: index.json lists tops[i] named names[i] (NULL: no
 * name), each blob written once. */
int kiln_layout_write_archive_multi(kiln_store_t *s, const char *path,
                                    const kiln_descriptor_t *tops, const char *const *names,
                                    size_t n, const char *extra_name, const char *extra,
                                    size_t extra_len, kiln_error_t *err);

/* The names of the images a layout (directory or archive) lists in index.json: each entry's
 * io.containerd.image.name, else its ref.name, else NULL (names[i] NULL), as kiln_layout_resolve
 * takes them. *names malloc'ed (kiln_strv-like, n entries, free each). */
int kiln_layout_list(const char *path, char ***names, size_t *n, kiln_error_t *err);

/* Splits "oci:DIR[:TAG]" (the "oci:" or "oci-archive:" prefix is optional) into a malloc'ed dir
 * and tag (NULL when absent). The tag is what follows the last ':' when that
 * part has no '/'. */
int kiln_layout_parse_ref(const char *ref, char **dir, char **tag, kiln_error_t *err);

/* An image resolved in a layout directory. */
typedef struct kiln_layout_image {
    char *dir;                       /* the layout directory */
    char *name;                      /* ref.name annotation of the entry, or NULL */
    char *full_name;                 /* io.containerd.image.name of the entry, or NULL */
    kiln_descriptor_t manifest_desc; /* the selected manifest's descriptor */
    kiln_manifest_t *manifest;
    json_t *config;
    int archive; /* dir is an OCI archive (tar file) */
} kiln_layout_image_t;

/* Resolves tag (ref.name, or the full io.containerd.image.name) in the layout
 * at dir — a directory, or an OCI archive when dir is a regular file (its
 * JSON entries are read in one pass, layers are skipped); tag NULL picks the only image (error when
 * there are several). An index entry that is itself an index is resolved to its linux/amd64 (or
 * only) manifest. Blobs read are verified against their digests. */
int kiln_layout_resolve(const char *dir, const char *tag, kiln_layout_image_t **out,
                        kiln_error_t *err);
void kiln_layout_image_free(kiln_layout_image_t *img);

/* Opens blob d of the layout at dir (O_CLOEXEC, read-only). */
int kiln_layout_open_blob(const char *dir, const kiln_digest_t *d, int *fd, uint64_t *size,
                          kiln_error_t *err);

/* Copies a resolved image (manifest, config, layers) into the store,
 * verifying every blob's digest and size (from an archive in one streaming
 * pass). */
int kiln_layout_import(kiln_store_t *s, const kiln_layout_image_t *img, kiln_error_t *err);

#endif
