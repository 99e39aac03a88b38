/* kiln — a TOML 1.0 reader (pyproject.toml, uv.lock, poetry.lock, pdm.lock, Pipfile,
 * Cargo.toml): the document as a jansson object.
 *
 * Tables are objects, arrays (and arrays of tables) arrays, strings strings (valid
 * UTF-8), integers integers, floats reals ("inf"/"nan" as strings: JSON has no such
 * numbers), booleans booleans, dates and times their text. The reader is strict about
 * syntax and duplicate keys; it is lenient about two rules that do not change what a
 * document says (a table header repeated without repeating a key, an inline table
 * extended by a later dotted key). */
#ifndef KILN_UTILS_TOML_H
#define KILN_UTILS_TOML_H

#include <jansson.h>
#include <stddef.h>

#include "utils/error.h"

/* Largest document read (the caller's file cap should not exceed it). */
#define KILN_TOML_DOC_MAX (8 * 1024 * 1024)
/* Deepest nesting of arrays / inline tables and most parts of one dotted key. */
#define KILN_TOML_DOC_DEPTH 64

/* Parses `len` bytes of `text` into *out (a new reference to an object).
 * `name` (the file's name) starts every error message, with the line: "pyproject.toml
 * line 3: ...". Returns 0, or -1 with err set and *out untouched. */
int kiln_toml_load(const char *name, const char *text, size_t len, json_t **out, kiln_error_t *err);

#endif
