/* Scratch directories for unit tests that work on real trees: a fresh directory under /tmp
 * and files written into it with a given mode (the umask does not apply). */
#ifndef KILN_TESTS_TMPDIR_H
#define KILN_TESTS_TMPDIR_H

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* A new empty directory /tmp/kiln-<name>-XXXXXX (malloc'ed path); NULL when it fails. */
static inline char *tmpdir_make(const char *name)
{
    char *tmpl = kiln_xasprintf("/tmp/kiln-%s-XXXXXX", name);
    if (mkdtemp(tmpl) == NULL) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

/* Writes dir/rel with content and exactly mode; 0, or -1 when it fails. */
static inline int tmpdir_put(const char *dir, const char *rel, const char *content, mode_t mode)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, rel);
    if (kiln_fs_write_file_atomic(p, content, strlen(content), mode, NULL) < 0)
        return -1;
    return chmod(p, mode);
}

#endif
