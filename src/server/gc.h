/* kiln server — the garbage collector that keeps the disk bounded: build logs (of finished
 * builds), uploaded contexts no queued build needs, leftover scratch and secret directories,
 * and in the kiln root the git mirrors and RUN cache mounts (the shared ones and every cache
 * namespace's, utils/cachens) — each by age, then by total size (oldest first, from the
 * namespace holding the most) — and namespaces' unused stat caches and blob marks by age,
 * then the blob store (`kiln prune`, which first drops build cache entries
 * unused for max_age_s). Runs periodically in `kiln serve` and as
 * `kiln gc`. */
#ifndef KILN_SERVER_GC_H
#define KILN_SERVER_GC_H

#include <stdint.h>

#include "src/server/db.h"
#include "utils/error.h"

typedef struct kiln_gc_opts {
    const char *server_root; /* logs/, contexts/, builds/, secrets/ */
    kiln_db_t *db;
    const char *kiln_root; /* git/, build/cache-mounts/, ns/, the blob store; NULL = skip */
    const char *prune_cmd; /* kiln itself, run as `CMD prune --root KILN_ROOT --no-wait` */
    double max_age_s;      /* older entries go (0 = no age limit) */
    double logs_max_age_s; /* build logs: older go (0 = max_age_s; config build_log_retention) */
    /* the access log's retention (config access_log_retention; 0 or no log: none) */
    struct kiln_accesslog *access_log;
    double access_log_max_age_s;
    uint64_t logs_max; /* total bytes kept for each kind (0 = no size limit) */
    uint64_t contexts_max;
    uint64_t artifacts_max; /* files builds wrote (static sites, function packages) */
    uint64_t git_max;
    uint64_t cache_max;
    int dry_run;
} kiln_gc_opts_t;

typedef struct kiln_gc_stats {
    uint64_t freed_bytes;
    unsigned removed; /* entries removed (or that would be, with dry_run) */
    int prune_status; /* exit status of kiln prune, -1 when not run */
} kiln_gc_stats_t;

int kiln_gc_run(const kiln_gc_opts_t *o, kiln_gc_stats_t *st, kiln_error_t *err);

/* Runs the collection every interval_s seconds in a thread (first run after one interval). */
/* Removes at once the secret directories of builds that are finished or unknown (a crash's
 * leftovers; run at startup after recovery, whatever the gc interval): only queued and
 * running builds keep theirs, without their tenant credential files. Fails naming the
 * directory. */
int kiln_gc_sweep_secrets(const kiln_gc_opts_t *o, kiln_error_t *err);

typedef struct kiln_gc_timer kiln_gc_timer_t;
int kiln_gc_start(const kiln_gc_opts_t *o, int interval_s, kiln_gc_timer_t **out,
                  kiln_error_t *err);
void kiln_gc_stop(kiln_gc_timer_t *t);

#endif
