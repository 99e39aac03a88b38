/* kiln server — the durable store: builds, their phases and results, and the
 * local queue (builds in status "queued"), in one SQLite database (WAL mode).
 * All functions are thread-safe (one connection behind a mutex). */
#ifndef KILN_SERVER_DB_H
#define KILN_SERVER_DB_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "utils/error.h"

typedef struct kiln_db kiln_db_t;

/* A build claimed from the queue by a worker. Strings are malloc'ed. */
typedef struct kiln_db_job {
    char *id;
    char *repo;
    char *request; /* the validated request JSON (secrets stripped) */
    int attempts;
} kiln_db_job_t;

/* Aggregates for /metrics. */
#define KILN_DB_HIST_BUCKETS 10
typedef struct kiln_db_stats {
    int64_t by_status[8];                           /* indexed like kiln_db_statuses[] */
    int64_t duration_buckets[KILN_DB_HIST_BUCKETS]; /* cumulative counts <= bounds */
    int64_t duration_count;
    double duration_sum;
    int64_t bytes_pushed;
} kiln_db_stats_t;

extern const char *const kiln_db_statuses[8];
extern const double kiln_db_hist_bounds[KILN_DB_HIST_BUCKETS];

/* Opens (creating) the database at path in WAL mode. */
int kiln_db_open(const char *path, kiln_db_t **out, kiln_error_t *err);
void kiln_db_close(kiln_db_t *db);

/* True for statuses a build is in while a process runs it. */
int kiln_db_status_running(const char *status);
/* True for final statuses. */
int kiln_db_status_final(const char *status);
/* True for any known status name. */
int kiln_db_status_valid(const char *status);

/* Webhook deliveries and idempotency keys remembered at most (the oldest are forgotten). */
#define KILN_DB_MAX_DELIVERIES 100000

/* How a new build came to be, besides its request. */
typedef struct kiln_db_origin {
    const char *audit_json; /* who triggered it (the audit trail, shown as "triggered_by") */
    const char *dedupe_key; /* a webhook delivery id or idempotency key, or NULL */
    double key_retention;   /* seconds a dedupe key is remembered */
} kiln_db_origin_t;

/* Records a new queued build (origin may be NULL). With a dedupe key already recorded within
 * its retention nothing is inserted: *existing gets the id of the build the key started
 * (malloc'ed) and 1 is returned. Keys past their retention, and the oldest past
 * KILN_DB_MAX_DELIVERIES, are forgotten as new ones arrive. Returns 0 once inserted. */
int kiln_db_build_insert(kiln_db_t *db, const char *id, const char *repo, const char *request_json,
                         const kiln_db_origin_t *origin, char **existing, kiln_error_t *err);

/* Forgets a dedupe key (its build could not be started: a replay may start another). */
void kiln_db_delivery_forget(kiln_db_t *db, const char *key);

/* Longest tenant name stored (src/server/tenant.h). A build's tenant is its stored request's
 * "tenant" ("default" when it names none), kept in a column of its own. */
#define KILN_DB_TENANT_MAX 63

/* 1 when build id exists and is tenant's, 0 when it is unknown or another tenant's (the
 * caller answers both alike), -1 on a store error. */
int kiln_db_build_owned(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err);

/* Records that tenant uploaded context id. */
int kiln_db_context_insert(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err);
/* 1 when context id is tenant's (a context uploaded before owners were recorded is
 * "default"'s), 0 when not, -1 on a store error. Whether it exists on disk is not checked. */
int kiln_db_context_owned(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err);
/* Drops the owner record of a removed context. */
int kiln_db_context_forget(kiln_db_t *db, const char *id, kiln_error_t *err);

/* Fetches a build as its API JSON object. Fails with code ENOENT for an unknown id. */
int kiln_db_build_get(kiln_db_t *db, const char *id, json_t **out, kiln_error_t *err);

/* The API body (JSON and a newline) of build id for tenant: 1 and *body (malloc'ed, *len
 * bytes), 0 when the build is unknown or another tenant's (the caller answers both alike; the
 * owner is read from the very row answered), -1 on a store error. Unchanged rows reuse the
 * body made last time (src/server/bodymemo.h). */
int kiln_db_build_body(kiln_db_t *db, const char *id, const char *tenant, char **body, size_t *len,
                       kiln_error_t *err);

/* Reads only the status (into buf). ENOENT for an unknown id. */
int kiln_db_build_status(kiln_db_t *db, const char *id, char *buf, size_t len, kiln_error_t *err);

/* Lists builds newest first, optionally filtered; `before` is a cursor (0 = from the newest).
 * *next is the cursor of the next page, 0 when this is the last one. */
int kiln_db_build_list(kiln_db_t *db, const char *status, const char *repo, int64_t before,
                       int limit, json_t **out, int64_t *next, kiln_error_t *err);
/* What a list is narrowed to (NULL: anything). repo and branch match exactly, or, ending
 * with '*', as a prefix (the part before it): both through an index on (tenant, column,
 * seq), never a scan of every build. */
typedef struct kiln_db_build_filter {
    const char *tenant; /* NULL: every tenant's */
    const char *status, *repo, *branch;
} kiln_db_build_filter_t;

int kiln_db_build_list_filtered(kiln_db_t *db, const kiln_db_build_filter_t *f, int64_t before,
                                int limit, json_t **out, int64_t *next, kiln_error_t *err);

/* Takes the next queued build, fair across repositories (the repo with the fewest running
 * builds first, then oldest), and marks it `first_status` (NULL: "cloning" for a git source,
 * else "building"). Returns 1 and fills *job, 0 when the queue is empty. */
int kiln_db_claim(kiln_db_t *db, const char *first_status, kiln_db_job_t *job, kiln_error_t *err);
/* Like kiln_db_claim, among the queued builds of one tenant only (NULL: any). */
int kiln_db_claim_tenant(kiln_db_t *db, const char *tenant, const char *first_status,
                         kiln_db_job_t *job, kiln_error_t *err);
void kiln_db_job_free(kiln_db_job_t *job);

/* The load of each tenant with builds queued or running, for the fair scheduler:
 * {"acme": [queued, running], …}. */
int kiln_db_tenant_load(kiln_db_t *db, json_t **out, kiln_error_t *err);

/* A remote worker started (or restarted) the build: status becomes `status`, a new phase
 * opens and attempts counts up. Final builds are left alone. */
int kiln_db_remote_start(kiln_db_t *db, const char *id, const char *status, kiln_error_t *err);

/* Records the process group running a build (and its start time, to recognise it later). */
int kiln_db_set_process(kiln_db_t *db, const char *id, pid_t pgid, uint64_t start_ticks,
                        kiln_error_t *err);

/* Moves a running build to a new phase/status (closing the previous phase). A build that is
 * not running any more is left alone. */
int kiln_db_phase(kiln_db_t *db, const char *id, const char *status, kiln_error_t *err);

/* Sets the commit a build resolved to. */
int kiln_db_set_commit(kiln_db_t *db, const char *id, const char *commit, kiln_error_t *err);
/* Sets the author and message of that commit as the job read them (either may be NULL). */
int kiln_db_set_commit_info(kiln_db_t *db, const char *id, const char *author, const char *message,
                            kiln_error_t *err);

/* Finishes a build: final status, reason/error text (may be NULL), result JSON (may be NULL).
 * A build already canceled stays canceled. */
int kiln_db_finish(kiln_db_t *db, const char *id, const char *status, const char *reason,
                   const char *error, const char *result_json, int64_t bytes_pushed,
                   kiln_error_t *err);

/* Finishes a build so that it never stays running: retries kiln_db_finish, then records
 * status failed, reason "state_write_failed" naming the write error; when even that write
 * fails, keeps that failure in memory (get, status and list show it) and returns -1 with err
 * naming the build and the write error. Returns 0 when the outcome was recorded, 1 when the
 * failure was recorded instead. */
int kiln_db_finish_or_fail(kiln_db_t *db, const char *id, const char *status, const char *reason,
                           const char *error, const char *result_json, int64_t bytes_pushed,
                           kiln_error_t *err);

/* Writes the failures kept in memory by kiln_db_finish_or_fail to kiln.db once it takes
 * writes again (each one written is dropped from memory); called from the worker loop. */
void kiln_db_flush_unrecorded(kiln_db_t *db);

/* Puts a running build back in the queue (drain, or a retry after a crash). */
int kiln_db_requeue(kiln_db_t *db, const char *id, kiln_error_t *err);

/* Cancels a build: a queued one becomes canceled at once (*was_running = 0); a running one
 * becomes canceled and *was_running = 1 (the caller stops its process). Final builds: EALREADY. */
int kiln_db_cancel(kiln_db_t *db, const char *id, int *was_running, kiln_error_t *err);

/* After a crash: calls kill_cb for each build left in a running state, then marks it failed
 * (reason "interrupted"), or queued again when requeue_once and it has not been retried yet.
 * Returns the number of builds recovered. */
int kiln_db_recover(kiln_db_t *db, int requeue_once,
                    void (*kill_cb)(pid_t pgid, uint64_t start_ticks, void *opaque), void *opaque,
                    kiln_error_t *err);

/* Number of queued builds. */
int64_t kiln_db_queue_depth(kiln_db_t *db);

/* Fills the aggregates for /metrics. */
int kiln_db_stats(kiln_db_t *db, kiln_db_stats_t *st, kiln_error_t *err);
/* The same over tenant's builds only (NULL: all of them). */
int kiln_db_stats_tenant(kiln_db_t *db, const char *tenant, kiln_db_stats_t *st, kiln_error_t *err);

/* Ids of final builds that finished before `cutoff` (epoch seconds), at most `max`, as a
 * JSON array of strings (for the garbage collector). */
int kiln_db_finished_before(kiln_db_t *db, double cutoff, int max, json_t **out, kiln_error_t *err);

/* 1 when a queued or running build uses the uploaded context ctx_id, else 0. */
int kiln_db_context_in_use(kiln_db_t *db, const char *ctx_id);

/* Formats epoch seconds as RFC 3339 UTC with milliseconds. */
void kiln_db_format_time(double t, char *buf, size_t len);

#endif
