/* kiln — byte sizes as people write them on command lines and in requests:
 * "512m", "1g", "64MiB", "4096" (the units of docker's --memory, powers of 1024). */
#ifndef KILN_UTILS_SIZE_H
#define KILN_UTILS_SIZE_H

#include <stddef.h>
#include <stdint.h>

#include "utils/error.h"

/* Parses s: digits, then an optional unit k, m, g or t (any case, optionally
 * followed by "b" or "ib"). On failure err names the text and *out is untouched. */
int kiln_size_parse(const char *s, uint64_t *out, kiln_error_t *err);

/* Writes n in the shortest exact form kiln_size_parse reads back ("512m", "1g", "1000"). */
void kiln_size_format(uint64_t n, char *buf, size_t len);

#endif
