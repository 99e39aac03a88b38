/* kiln — CLI helpers shared by subcommands: the blob store root (`--root DIR`). The
 * `--output type=T,key=value,...` specs are parsed by export/ (kiln_export_opts_parse). */
#ifndef KILN_SRC_CLI_OUTPUT_H
#define KILN_SRC_CLI_OUTPUT_H

#include "utils/error.h"

/* The store root: opt_root when given, else kiln_store_default_root().
 * Malloc'ed; fails when neither is available. */
int kiln_cli_store_root(const char *opt_root, char **out, kiln_error_t *err);

#endif
