/* kiln — a set of strings (see strset.h). */
#include "utils/strset.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utils/mem.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of s, or the free slot where it would go. */
static size_t find(const kiln_strset_t *set, const char *s)
{
    size_t i = hash_str(s) % set->alloc;
    while (set->slots[i] != NULL && strcmp(set->slots[i], s) != 0)
        i = (i + 1) % set->alloc;
    return i;
}

void kiln_strset_add(kiln_strset_t *set, const char *s)
{
    if ((set->n + 1) * 2 > set->alloc) {
        kiln_strset_t grown = {kiln_xzalloc((set->alloc ? set->alloc * 2 : 1024) * sizeof(char *)),
                               set->n, set->alloc ? set->alloc * 2 : 1024};
        for (size_t j = 0; j < set->alloc; j++)
            if (set->slots[j] != NULL)
                grown.slots[find(&grown, set->slots[j])] = set->slots[j];
        free(set->slots);
        *set = grown;
    }
    size_t i = find(set, s);
    if (set->slots[i] != NULL)
        return;
    set->slots[i] = kiln_xstrdup(s);
    set->n++;
}

bool kiln_strset_has(const kiln_strset_t *set, const char *s)
{
    return set->alloc != 0 && set->slots[find(set, s)] != NULL;
}

void kiln_strset_free(kiln_strset_t *set)
{
    for (size_t i = 0; i < set->alloc; i++)
        free(set->slots[i]);
    free(set->slots);
    memset(set, 0, sizeof(*set));
}

bool kiln_strset_has_dir_of(const kiln_strset_t *set, const char *path)
{
    if (set->n == 0 || path[0] == '\0')
        return false;
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof(buf))
        return true;
    memcpy(buf, path, len + 1);
    for (size_t i = 0; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        bool hit = kiln_strset_has(set, buf);
        buf[i] = c;
        if (hit)
            return true;
    }
    return false;
}
