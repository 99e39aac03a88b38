/* kiln — garbage collection of a remote build cache in S3 (`kiln cache gc`): blobs under
 * <base>/blobs/sha256/ that no manifest (mounts/ID.json) and no layer index (layers.json)
 * under the same base names are deleted, safely with concurrent writers:
 *
 *  - a blob younger than the grace period is never deleted (a writer uploads its blobs
 *    before the manifest naming them: its fresh blobs are unnamed for a while);
 *  - a blob is deleted only when an earlier collection, at least the grace period ago,
 *    already found it unnamed (kept in <base>/gc.json): a writer that reuses a blob named by
 *    the manifest it read when its save began names it again within its save, so a blob
 *    unnamed for a whole grace period is one no save shorter than it can still name.
 *
 * The grace period must exceed the longest build plus save. Anything else under the base
 * (another prefix nested in it, unknown keys) is never touched. A manifest that cannot be
 * read or parsed stops the collection before anything is deleted. */
#ifndef KILN_ENGINE_REMOTE_GC_H
#define KILN_ENGINE_REMOTE_GC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/remote_store.h"
#include "utils/error.h"

#define KILN_RCACHE_GC_DEFAULT_GRACE (24 * 3600)

typedef struct kiln_rcache_gc_opts {
    int64_t grace;  /* seconds (>= 0) */
    int dry_run;    /* count, write and delete nothing */
    time_t now;     /* 0: time(NULL) (tests pass their own) */
    const char *ns; /* the cache namespace (tenant), or NULL */
} kiln_rcache_gc_opts_t;

typedef struct kiln_rcache_gc_stats {
    size_t manifests;  /* mounts/ID.json and layers.json read */
    size_t blobs;      /* blobs listed */
    size_t referenced; /* of them named by a manifest */
    size_t young;      /* unnamed but younger than the grace period: kept */
    size_t marked;     /* unnamed, old: noted, deleted by a later collection */
    size_t deleted;    /* unnamed since an earlier collection >= grace ago: deleted */
    uint64_t deleted_bytes;
} kiln_rcache_gc_stats_t;

/* Collects the S3 cache of spec (type=s3; see above). -1 with err naming the object that
 * could not be listed, read, parsed or deleted; what was deleted before a failure stays
 * deleted (each blob was unnamed). */
int kiln_rcache_gc(const kiln_rcache_spec_t *spec, const kiln_rcache_gc_opts_t *o,
                   kiln_rcache_gc_stats_t *st, kiln_error_t *err);

#endif
