/* kiln — jansson helpers: scope cleanup for json_t and capped loading. */
#ifndef KILN_UTILS_JSON_H
#define KILN_UTILS_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "utils/error.h"

static inline void kiln_json_decrefp(json_t **j)
{
    if (*j != NULL)
        json_decref(*j);
}

#define _cleanup_json_ __attribute__((cleanup(kiln_json_decrefp)))

/* Parses JSON text of at most cap bytes (EFBIG past it). `what` names the
 * document in errors, which carry line and column. Rejects duplicate keys and
 * NUL bytes in strings. */
int kiln_json_loadb(const char *buf, size_t len, size_t cap, const char *what, json_t **out,
                    kiln_error_t *err);

/* Canonical serialization: sorted keys, compact, UTF-8. *out malloc'ed. */
int kiln_json_dump_canonical(const json_t *j, char **out, size_t *len, kiln_error_t *err);

/* String member `key` of object j, or NULL when absent or not a string. */
const char *kiln_json_get_string(const json_t *j, const char *key);

#endif
