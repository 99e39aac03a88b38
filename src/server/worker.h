/* kiln server — the worker pool: N threads take queued builds from the store (round robin
 * across tenants within their max_concurrent (sched.h), then fair across a tenant's
 * repositories) and run each as a `kiln build` child process (runner.h). */
#ifndef KILN_SERVER_WORKER_H
#define KILN_SERVER_WORKER_H

#include <jansson.h>

#include "src/server/server.h"
#include "utils/error.h"

typedef struct kiln_worker_opts {
    int workers;           /* concurrent builds */
    const char *build_cmd; /* the program run as `CMD build …` (default: this kiln) */
    int timeout_s;         /* per-build limit (0 = none); a request may ask for less */
    const char *kiln_root; /* --root of kiln job run (NULL: its default) */
    char **build_options;  /* NULL-terminated; added to every `kiln build` (may be NULL) */
    unsigned entitlements; /* what requests may "allow" (KILN_ENTITLEMENT_*) */
} kiln_worker_opts_t;

/* Starts the pool. */
int kiln_worker_pool_start(kiln_server_t *s, const kiln_worker_opts_t *opts,
                           kiln_worker_pool_t **out, kiln_error_t *err);

/* A build was queued: wake a free worker. */
void kiln_worker_pool_wake(kiln_worker_pool_t *p);

/* Stops the process of a running build (after the store marked it canceled). */
void kiln_worker_pool_cancel(kiln_worker_pool_t *p, const char *id);

/* Builds running right now. */
int kiln_worker_pool_busy(kiln_worker_pool_t *p);

/* Drains: no new build starts; waits up to timeout_s for running ones, then stops them
 * and puts them back in the queue. Joins the threads and frees the pool. */
void kiln_worker_pool_stop(kiln_worker_pool_t *p, int timeout_s);

/* Writes secrets (name → value) as 0600 files under dir; *files maps name → path. */
int kiln_worker_write_secrets(const char *dir, json_t *secrets, json_t **files, kiln_error_t *err);

#endif
