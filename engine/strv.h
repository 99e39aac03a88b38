/* kiln — the engine's string vectors: a NULL-terminated list of owned strings, used as
 * "K=V" variable lists (kv_set replaces, kv_get finds the last), and a qsort comparator. */
#ifndef KILN_ENGINE_STRV_H
#define KILN_ENGINE_STRV_H

#include <stdlib.h>
#include <string.h>

#include "utils/mem.h"

typedef struct strv {
    char **v;
    size_t n;
} strv_t;

static inline void strv_add(strv_t *s, char *owned)
{
    s->v = kiln_xrealloc(s->v, (s->n + 2) * sizeof(char *));
    s->v[s->n++] = owned;
    s->v[s->n] = NULL;
}

static inline void strv_clear(strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* Sets "K=V" in s, replacing an existing K. */
static inline void kv_set(strv_t *s, const char *k, const char *v)
{
    size_t kl = strlen(k);
    for (size_t i = 0; i < s->n; i++) {
        if (strncmp(s->v[i], k, kl) == 0 && (s->v[i][kl] == '=' || s->v[i][kl] == '\0')) {
            free(s->v[i]);
            s->v[i] = kiln_xasprintf("%s=%s", k, v);
            return;
        }
    }
    strv_add(s, kiln_xasprintf("%s=%s", k, v));
}

static inline const char *kv_get(const strv_t *s, const char *k)
{
    size_t kl = strlen(k);
    for (size_t i = s->n; i > 0; i--)
        if (strncmp(s->v[i - 1], k, kl) == 0 && s->v[i - 1][kl] == '=')
            return s->v[i - 1] + kl + 1;
    return NULL;
}

static inline char tolower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static inline int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#endif
