/* kiln — pull + unpack: an image's layers unpacked in order into one directory (`kiln pull
 * -o type=local`), each layer unpacked while it downloads, the next layers downloading
 * meanwhile. Whiteouts are applied as the layer's entries stream by. Each layer's digest
 * (as it downloads) and its diff_id (the config's, as it is unpacked) are checked.
 *
 * Without keep a layer's blob never touches the disk: its bytes go from the download (hashed
 * on the way) through memory to the unpacker (oci/pull_stream's memory mode; the download
 * pauses while the unpacker is behind), and the image is not put in the store (only its
 * config is, and layers that were there already are read from it). With keep every blob is
 * written to the store as it arrives and read back from its temp file, and the image is in
 * the store afterwards.
 *
 * The tree is built in a temp directory beside dest (".kiln-unpack-*", locked while in use)
 * and renamed into place only once every layer's blob and diff_id are verified: a mismatch,
 * a failed download or a bad layer leaves nothing at dest and no blob in the store. A temp
 * directory left by a killed pull is removed by the next pull into the same parent. */
#ifndef KILN_OCI_PULL_UNPACK_H
#define KILN_OCI_PULL_UNPACK_H

#include "oci/registry.h"
#include "oci/store.h"
#include "utils/error.h"

/* Pulls ref (as kiln_registry_pull; po's hooks are taken over) and unpacks the selected
 * platform's layers into dest, which must not exist or be an empty directory. keep: the
 * blobs go into the store (else img->streamed counts the layers that did not). */
int kiln_pull_unpacked(kiln_registry_t *r, kiln_store_t *s, const char *ref,
                       kiln_registry_pull_opts_t *po, kiln_registry_image_t *img, const char *dest,
                       int keep, kiln_error_t *err);

#endif
