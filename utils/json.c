/* kiln — jansson helpers. */
#include "utils/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kiln_json_loadb(const char *buf, size_t len, size_t cap, const char *what, json_t **out,
                    kiln_error_t *err)
{
    json_error_t jerr;
    json_t *j;

    if (len > cap)
        return kiln_error_set(err, EFBIG, "%s: %zu bytes exceeds the limit of %zu bytes", what, len,
                              cap);
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return kiln_error_set(err, 0, "%s: invalid JSON at line %d column %d: %s", what, jerr.line,
                              jerr.column, jerr.text);
    *out = j;
    return 0;
}

int kiln_json_dump_canonical(const json_t *j, char **out, size_t *len, kiln_error_t *err)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

    if (s == NULL)
        return kiln_error_set(err, ENOMEM, "cannot serialize JSON document");
    *len = strlen(s);
    *out = s;
    return 0;
}

const char *kiln_json_get_string(const json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
