/* kiln — what the Rust provider reads from Cargo.toml and rust-toolchain(.toml):
 * the package (name, rust-version, default-run), its [[bin]] targets, the
 * workspace members, and every path the manifest names (path dependencies,
 * patches, target paths, package.workspace) so that the provider can refuse
 * one that leaves the source. */
#ifndef KILN_HANDLERS_CARGO_H
#define KILN_HANDLERS_CARGO_H

#include <stddef.h>

#include "utils/error.h"

#define KILN_CARGO_MAX_LIST 256

typedef struct kiln_cargo {
    char *name, *rust_version, *default_run; /* [package]; NULL when absent */
    int has_package, has_workspace;
    char *bins[KILN_CARGO_MAX_LIST]; /* [[bin]] name, in order */
    size_t n_bins;
    char *members[KILN_CARGO_MAX_LIST]; /* workspace.members (may hold globs) */
    size_t n_members;
    char *paths[KILN_CARGO_MAX_LIST]; /* "<what>\t<path>": every path the manifest names */
    size_t n_paths;
} kiln_cargo_t;

/* Parses Cargo.toml text; `what` names it in messages. */
int kiln_cargo_parse(const char *text, size_t len, const char *what, kiln_cargo_t *out,
                     kiln_error_t *err);
void kiln_cargo_clear(kiln_cargo_t *c);

/* The channel of a rust-toolchain.toml ([toolchain] channel) or of the legacy
 * one-line rust-toolchain file (`toml` false); malloc'ed, NULL when none. */
int kiln_cargo_toolchain(const char *text, size_t len, int toml, const char *what, char **channel,
                         kiln_error_t *err);

#endif
