/* kiln — what the image store's commands share (src/cmd_image*.c, push, run, build). */
#ifndef KILN_SRC_CMD_IMAGE_H
#define KILN_SRC_CMD_IMAGE_H

#include <stdio.h>

#include "oci/digest.h"
#include "oci/store.h"
#include "utils/error.h"

/* Opens the content store of --root (or kiln's default root). */
int kiln_cli_image_store_open(const char *opt_root, kiln_store_t **s, kiln_error_t *err);

/* The manifest digest of an image named in the store (NAME[:TAG], or a sha256: digest of
 * a blob in it); an unknown name fails saying so and where names are listed. */
int kiln_cli_image_resolve(kiln_store_t *s, const char *name, kiln_digest_t *d, kiln_error_t *err);

/* The options the image store's commands share (images, save, load, tag, rmi): --root DIR,
 * -h/--help, and those a command adds: a flag, an option with a value, --format among a
 * fixed set. Set the inputs, parse, read the outputs. */
typedef struct kiln_cli_image_opts {
    const char *cmd;            /* for messages */
    void (*usage)(FILE *out);   /* -h: printed to stdout */
    const char *flag;           /* long name of a flag whose short form is its first letter */
    const char *value;          /* long name of an option with a value (short: first letter) */
    const char *const *formats; /* --format's values, NULL-terminated (NULL: no --format) */
    const char *root;           /* out: --root, or NULL */
    const char *value_arg;      /* out: the value's argument, or NULL */
    const char *format;         /* in: the default; out: the one given */
    int flag_set;               /* out */
} kiln_cli_image_opts_t;

/* Parses argv (operands then start at optind): -1 to go on, else the exit status to return
 * (0 after -h; a usage error, said, for an unknown option or --format value). */
int kiln_cli_image_getopt(kiln_cli_image_opts_t *o, int argc, char **argv);

#endif
