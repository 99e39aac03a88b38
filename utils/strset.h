/* kiln — a set of strings (open addressing, FNV-1a): membership of many paths at O(1), e.g.
 * the entries a layer created so far. */
#ifndef KILN_UTILS_STRSET_H
#define KILN_UTILS_STRSET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kiln_strset {
    char **slots; /* NULL: free */
    size_t n, alloc;
} kiln_strset_t;

/* Adds a copy of s (nothing when already there); the table doubles past half full. */
void kiln_strset_add(kiln_strset_t *set, const char *s);

bool kiln_strset_has(const kiln_strset_t *set, const char *s);

/* Whether path, or a directory above it (a '/'-separated prefix of it), is in the set. A
 * path longer than PATH_MAX is taken as in it. */
bool kiln_strset_has_dir_of(const kiln_strset_t *set, const char *path);

void kiln_strset_free(kiln_strset_t *set);

#endif
