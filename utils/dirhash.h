/* kiln — the Go checksum of a module zip ("h1:" dirhash, as go.sum and the Go
 * checksum database record it): SHA-256 of the summary made of one line
 * "<sha256 hex>  <name>\n" per file, sorted by name, in base64.
 *
 * A module zip is hostile until its hash matched: every file must be under
 * the "<module>@<version>/" prefix, names are unique, sizes and counts are
 * capped, and nothing is written anywhere. */
#ifndef KILN_UTILS_DIRHASH_H
#define KILN_UTILS_DIRHASH_H

#include <stddef.h>

#include "utils/error.h"

/* Computes the h1 dirhash of the zip in memory (*h1, malloc'ed, "h1:<base64>").
 * Fails naming `what` when the data is not a zip, a file lies outside
 * `prefix`, a name repeats or the zip holds too many files. */
int kiln_dirhash_zip(const void *data, size_t len, const char *prefix, const char *what, char **h1,
                     kiln_error_t *err);

#endif
