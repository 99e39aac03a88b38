/* kiln — what the image store's commands share (src/cmd_image*.c, push, run, build). */
#ifndef KILN_SRC_CMD_IMAGE_H
#define KILN_SRC_CMD_IMAGE_H

#include "oci/digest.h"
#include "oci/store.h"
#include "utils/error.h"

/* Opens the content store of --root (or kiln's default root). */
int kiln_cli_image_store_open(const char *opt_root, kiln_store_t **s, kiln_error_t *err);

/* The manifest digest of an image named in the store (NAME[:TAG], or a sha256: digest of
 * a blob in it); an unknown name fails saying so and where names are listed. */
int kiln_cli_image_resolve(kiln_store_t *s, const char *name, kiln_digest_t *d, kiln_error_t *err);

#endif
