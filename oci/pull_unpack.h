/* kiln — pull + unpack: an image pulled into the store and its layers unpacked in order into
 * one directory (`kiln pull -o type=local`), each layer unpacked while it downloads (read
 * from its store temp file as the bytes arrive, oci/pull_stream), the next layers
 * downloading meanwhile. Whiteouts are applied as the layer's entries stream by.
 *
 * The tree is built in a temp directory beside dest (".kiln-unpack-*", locked while in use)
 * and renamed into place only once every layer's blob is verified: a digest mismatch, a
 * failed download or a bad layer leaves nothing at dest and no blob in the store. A temp
 * directory left by a killed pull is removed by the next pull into the same parent. */
#ifndef KILN_OCI_PULL_UNPACK_H
#define KILN_OCI_PULL_UNPACK_H

#include "oci/registry.h"
#include "oci/store.h"
#include "utils/error.h"

/* Pulls ref (as kiln_registry_pull; po's hooks are taken over) and unpacks the selected
 * platform's layers into dest, which must not exist or be an empty directory. */
int kiln_pull_unpacked(kiln_registry_t *r, kiln_store_t *s, const char *ref,
                       kiln_registry_pull_opts_t *po, kiln_registry_image_t *img, const char *dest,
                       kiln_error_t *err);

#endif
