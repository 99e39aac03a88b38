/* kiln — byte sizes as people write them (see size.h): "512m", "1g", "64MiB", "4096". */
#include "utils/size.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char units[] = "kmgt";

int kiln_size_parse(const char *s, uint64_t *out, kiln_error_t *err)
{
    const char *p;
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    if (s == NULL || !isdigit((unsigned char)s[0]))
        return kiln_error_set(err, 0, "'%.64s' is not a size (e.g. 512m, 2g)", s ? s : "");
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return kiln_error_set(err, 0, "size '%.64s' is too large", s);
    if (*end != '\0' && (p = strchr(units, tolower((unsigned char)*end))) != NULL) {
        shift = 10u * (unsigned)(p - units + 1);
        end++;
        if (strcasecmp(end, "ib") == 0)
            end += 2;
    }
    if (strcasecmp(end, "b") == 0)
        end++;
    if (*end != '\0')
        return kiln_error_set(err, 0, "'%.64s' is not a size (e.g. 512m, 2g)", s);
    if (shift && v > (UINT64_MAX >> shift))
        return kiln_error_set(err, 0, "size '%.64s' is too large", s);
    *out = (uint64_t)v << shift;
    return 0;
}

void kiln_size_format(uint64_t n, char *buf, size_t len)
{
    unsigned i = 0;

    while (n != 0 && i < sizeof(units) - 1 && (n & 1023) == 0) {
        n >>= 10;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%llu", (unsigned long long)n);
    else
        snprintf(buf, len, "%llu%c", (unsigned long long)n, units[i - 1]);
}
