/* kiln — a reader of the TOML that build manifests use (Cargo.toml,
 * rust-toolchain.toml, deno-less TOML configs): tables, arrays of tables,
 * dotted and quoted keys, strings of all four kinds, arrays, inline tables,
 * and other scalars (numbers, booleans, dates) as their raw text. Each
 * key/value pair is handed to a callback with the table it is in; inline
 * tables are flattened into dotted keys ("serde.path"); arrays give their
 * string items (other items are skipped).
 *
 * Manifests are hostile: nesting is capped at KILN_TOML_MAX_DEPTH, strings at
 * KILN_TOML_MAX_STRING bytes, arrays at KILN_TOML_MAX_ITEMS strings, the
 * pairs at KILN_TOML_MAX_PAIRS; an error names the file and line. */
#ifndef KILN_HANDLERS_TOML_LITE_H
#define KILN_HANDLERS_TOML_LITE_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

#define KILN_TOML_MAX_DEPTH 16
#define KILN_TOML_MAX_STRING (64 * 1024)
#define KILN_TOML_MAX_ITEMS 4096
#define KILN_TOML_MAX_PAIRS 100000

typedef enum kiln_toml_kind {
    KILN_TOML_STRING,
    KILN_TOML_ARRAY, /* items: its string items */
    KILN_TOML_OTHER, /* value: the raw text of a number, boolean or date */
} kiln_toml_kind_t;

typedef struct kiln_toml_pair {
    const char *table; /* "package", "bin", "target.cfg(unix).dependencies", "" at the top */
    bool array_table;  /* the table is a [[table]] entry */
    size_t index;      /* which [[table]] entry of that name (0-based) */
    const char *key;   /* dotted key inside the table, inline tables flattened */
    kiln_toml_kind_t kind;
    const char *value; /* STRING / OTHER */
    char *const *items;
    size_t n_items;
    unsigned line;
} kiln_toml_pair_t;

/* Returns <0 (with err set) to stop the parse. */
typedef int (*kiln_toml_cb)(const kiln_toml_pair_t *pair, void *data, kiln_error_t *err);

/* Parses `len` bytes; `what` names the file in messages ("Cargo.toml"). */
int kiln_toml_parse(const char *text, size_t len, const char *what, kiln_toml_cb cb, void *data,
                    kiln_error_t *err);

#endif
