/* kiln server — opaque cursors for paginated lists (see cursor.h). */
#include "src/server/cursor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kiln_cursor_encode(int64_t pos, char *buf, size_t len)
{
    snprintf(buf, len, "c%" PRIx64, (uint64_t)pos);
}

int kiln_cursor_decode(const char *s, int64_t *pos, kiln_error_t *err)
{
    char *end = NULL;
    unsigned long long v;
    size_t n;

    if (s == NULL || s[0] != 'c')
        return kiln_error_set(err, 0, "invalid cursor '%.64s'", s ? s : "");
    n = strlen(s + 1);
    if (n == 0 || n > 15 || strspn(s + 1, "0123456789abcdef") != n)
        return kiln_error_set(err, 0, "invalid cursor '%.64s'", s);
    errno = 0;
    v = strtoull(s + 1, &end, 16);
    if (errno != 0 || *end != '\0' || v == 0)
        return kiln_error_set(err, 0, "invalid cursor '%.64s'", s);
    *pos = (int64_t)v;
    return 0;
}
