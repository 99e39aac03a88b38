/* kiln server — opaque cursors for paginated lists ("c" + the position in hex). */
#ifndef KILN_SERVER_CURSOR_H
#define KILN_SERVER_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "utils/error.h"

/* Writes the cursor for position pos (> 0) into buf. */
void kiln_cursor_encode(int64_t pos, char *buf, size_t len);

/* Decodes a cursor; fails on anything kiln_cursor_encode did not produce. */
int kiln_cursor_decode(const char *s, int64_t *pos, kiln_error_t *err);

#endif
