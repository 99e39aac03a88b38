/* kiln — cache namespaces: where the tenant-writable caches of a build live.
 *
 * A build server runs many tenants' builds against one kiln root. The caches a
 * build can write, and a later build would trust, are kept per namespace (the
 * server passes the build's tenant name): RUN --mount=type=cache directories,
 * the context stat cache and the git mirrors live under
 *
 *     <root>/ns/<NAME>/cache-mounts/   <root>/ns/<NAME>/statcache   <root>/ns/<NAME>/git/
 *
 * (each directory 0700, owned by kiln), and step cache entries are the store
 * refs "cache/ns/<NAME>/<key>". <root>/ns/<NAME>/blobs/ lists the blobs of the
 * shared store the namespace fetched or built itself: a blob another namespace
 * stored is fetched and verified once before this one may use it; <root>/ns/<NAME>/lazy/
 * records the blobs it named without fetching them yet, each with the namespace's own source
 * (oci/store_lazy). Without a namespace (a CLI build)
 * the paths are the historical ones (<root>/build/cache-mounts, <root>/build/statcache, <root>/git,
 * refs "cache/<key>"), so CLI users keep their caches.
 *
 * Content-addressed data stays shared (blobs verified by digest, layer trees
 * named by diff_id, toolchains checked against their registry's hash): see
 * docs/security.md, Cache namespaces. */
#ifndef KILN_UTILS_CACHENS_H
#define KILN_UTILS_CACHENS_H

#include "utils/error.h"

/* The longest namespace name. */
#define KILN_CACHENS_NAME_MAX 64

typedef enum kiln_cachens_kind {
    KILN_CACHENS_MOUNTS = 0, /* a directory: RUN cache mounts */
    KILN_CACHENS_GIT,        /* a directory: bare git mirrors */
    KILN_CACHENS_STATCACHE,  /* a file: content hashes of context files */
    KILN_CACHENS_BLOBS,      /* a directory: the store blobs the namespace has shown it may use
                              * (one empty file per digest hex; no historical path: NULL) */
    KILN_CACHENS_LAZY,       /* a directory: the namespace's lazy blob records (oci/store_lazy;
                              * the historical path is the store's own <root>/lazy: NULL) */
} kiln_cachens_kind_t;

/* Checks that name can be a namespace: 1..KILN_CACHENS_NAME_MAX characters of
 * [A-Za-z0-9._-], starting with a letter or digit (so a single path component
 * that is never ".", ".." or hidden). Returns -1 with err naming it otherwise. */
int kiln_cachens_check(const char *name, kiln_error_t *err);

/* The path of the cache of kind `kind` for namespace ns under the kiln root:
 * the historical path when ns is NULL (nothing is created; NULL for
 * KILN_CACHENS_BLOBS and KILN_CACHENS_LAZY, which have none), else
 * <root>/ns/<ns>/<kind> with <root>/ns, <root>/ns/<ns> (and a directory kind's
 * own directory) made 0700 when missing. Each of them is opened without
 * following symbolic links and must be a directory owned by kiln's user (a
 * symlink or another owner is refused naming the path); an existing one gets
 * mode 0700. *out is malloc'ed. Returns -1 with err set. */
int kiln_cachens_path(const char *root, const char *ns, kiln_cachens_kind_t kind, char **out,
                      kiln_error_t *err);

/* The store ref prefix of step cache entries: "cache/" or "cache/ns/<ns>/". */
char *kiln_cachens_ref_prefix(const char *ns);

#endif
