/* kiln — the options of one output: `type=T,key=value,...` as buildx writes them
 * (comma-separated key=value pairs; a value may be double-quoted to hold commas). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"
#include "utils/mem.h"

#define SPEC_MAX 4096

/* Reads one field (up to ',' or end) into a fresh string; handles "..." quoting. */
static int next_field(const char **pp, char **out, kiln_error_t *err)
{
    const char *p = *pp;
    char *buf = kiln_xmalloc(strlen(p) + 1);
    size_t n = 0;
    int quoted = 0;

    for (; *p != '\0'; p++) {
        if (*p == '"') {
            quoted = !quoted;
            continue;
        }
        if (*p == ',' && !quoted)
            break;
        buf[n++] = *p;
    }
    if (quoted) {
        free(buf);
        return kiln_error_set(err, 0, "--output: unterminated quote");
    }
    buf[n] = '\0';
    *pp = *p == ',' ? p + 1 : p;
    *out = buf;
    return 0;
}

int kiln_export_opts_parse(const char *spec, kiln_export_opts_t *out, kiln_error_t *err)
{
    kiln_export_opts_t o = {0};
    const char *p = spec;

    if (spec == NULL || spec[0] == '\0')
        return kiln_error_set(err, 0, "--output: empty specification");
    if (strlen(spec) > SPEC_MAX)
        return kiln_error_set(err, 0, "--output: longer than %d bytes", SPEC_MAX);
    while (*p != '\0') {
        char *field = NULL, *eq;
        if (next_field(&p, &field, err) < 0)
            goto fail;
        eq = strchr(field, '=');
        if (eq == NULL || eq == field) {
            kiln_error_set(err, 0, "--output: '%s' is not key=value", field);
            free(field);
            goto fail;
        }
        *eq = '\0';
        if (strcmp(field, "type") == 0 ? o.type != NULL : kiln_export_opts_get(&o, field) != NULL) {
            kiln_error_set(err, 0, "--output: key '%s' given twice", field);
            free(field);
            goto fail;
        }
        if (strcmp(field, "type") == 0) {
            o.type = kiln_xstrdup(eq + 1);
        } else {
            o.kv = kiln_xrealloc(o.kv, (o.n + 1) * sizeof(*o.kv));
            o.kv[o.n].key = kiln_xstrdup(field);
            o.kv[o.n].value = kiln_xstrdup(eq + 1);
            o.n++;
        }
        free(field);
    }
    if (o.type == NULL || o.type[0] == '\0') {
        kiln_error_set(err, 0, "--output '%s': missing type=", spec);
        goto fail;
    }
    *out = o;
    return 0;
fail:
    kiln_export_opts_free(&o);
    return -1;
}

void kiln_export_opts_free(kiln_export_opts_t *o)
{
    free(o->spec);
    for (size_t i = 0; i < o->n; i++) {
        free(o->kv[i].key);
        free(o->kv[i].value);
    }
    free(o->kv);
    free(o->type);
    memset(o, 0, sizeof(*o));
}

const char *kiln_export_opts_get(const kiln_export_opts_t *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->kv[i].key, key) == 0)
            return o->kv[i].value;
    return NULL;
}

int kiln_export_opts_get_bool(const kiln_export_opts_t *o, const char *key, int def, int *out,
                              kiln_error_t *err)
{
    const char *v = kiln_export_opts_get(o, key);

    if (v == NULL)
        *out = def;
    else if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = 0;
    else
        return kiln_error_set(err, 0, "--output: %s=%s is not true or false", key, v);
    return 0;
}

int kiln_export_opts_check_keys(const kiln_export_opts_t *o, const char *const *allowed,
                                kiln_error_t *err)
{
    for (size_t i = 0; i < o->n; i++) {
        size_t k;
        for (k = 0; allowed[k] != NULL; k++)
            if (strcmp(allowed[k], o->kv[i].key) == 0)
                break;
        if (allowed[k] == NULL)
            return kiln_error_set(err, 0, "--output type=%s: unknown key '%s'", o->type,
                                  o->kv[i].key);
    }
    return 0;
}
