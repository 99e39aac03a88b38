/* kiln — CLI helpers shared by subcommands: the blob store root (`--root DIR`)
 * and `--output type=T,key=value,...` specs (as buildx: comma-separated
 * key=value pairs; a value may be double-quoted to hold commas). */
#ifndef KILN_SRC_CLI_OUTPUT_H
#define KILN_SRC_CLI_OUTPUT_H

#include <stddef.h>

#include "utils/error.h"

typedef struct kiln_cli_kv {
    char *key;
    char *value;
} kiln_cli_kv_t;

typedef struct kiln_cli_output {
    char *type;        /* value of type= (required) */
    kiln_cli_kv_t *kv; /* the other pairs, in order */
    size_t n;
} kiln_cli_output_t;

/* Parses "type=oci,dest=out,tar=true". Fails (EINVAL) on a missing type, an
 * empty key, a pair without '=', a repeated key or an unterminated quote. */
int kiln_cli_output_parse(const char *spec, kiln_cli_output_t *out, kiln_error_t *err);
void kiln_cli_output_free(kiln_cli_output_t *o);

/* The value of key, or NULL. */
const char *kiln_cli_output_get(const kiln_cli_output_t *o, const char *key);
/* A boolean key (true/false/1/0, absent = def); error on anything else. */
int kiln_cli_output_get_bool(const kiln_cli_output_t *o, const char *key, int def, int *out,
                             kiln_error_t *err);
/* Fails naming the first key not in the NULL-terminated allowed list. */
int kiln_cli_output_check_keys(const kiln_cli_output_t *o, const char *const *allowed,
                               kiln_error_t *err);

/* The store root: opt_root when given, else kiln_store_default_root().
 * Malloc'ed; fails when neither is available. */
int kiln_cli_store_root(const char *opt_root, char **out, kiln_error_t *err);

#endif
