/* kiln — the stat cache: content hashes of build-context files keyed by what
 * stat says about them, so an unchanged file is not read again to compute a
 * COPY/ADD cache key.
 *
 * An entry is (absolute path, device, inode, size, mtime ns, ctime ns) →
 * sha256 of the content. Any change of those fields is a miss. The cache
 * lives in one file under the kiln root ("<root>/build/statcache"), loaded
 * once per build and written back atomically when it changed. A damaged file
 * is treated as empty. */
#ifndef KILN_SRC_BUILD_STATCACHE_H
#define KILN_SRC_BUILD_STATCACHE_H

#include <sys/stat.h>

#include "oci/digest.h"
#include "utils/error.h"

typedef struct kiln_statcache kiln_statcache_t;

/* Loads (or starts) the cache stored at path. Never fails on a missing or
 * unreadable file; *out is freed with kiln_statcache_free(). */
void kiln_statcache_open(const char *path, kiln_statcache_t **out);

/* The content digest of the regular file `path` (the key; fd is the file,
 * opened by the caller inside its root) whose lstat is st: from the cache
 * when every stat field matches, else by reading fd (and remembering). */
int kiln_statcache_hash(kiln_statcache_t *c, const char *path, int fd, const struct stat *st,
                        kiln_digest_t *out, kiln_error_t *err);

/* Writes the cache back when it changed (temp file + rename). */
int kiln_statcache_save(kiln_statcache_t *c, kiln_error_t *err);

void kiln_statcache_free(kiln_statcache_t *c);

#endif
