/* kiln server — the state shared by the HTTP routes and the worker pool. */
#ifndef KILN_SERVER_SERVER_H
#define KILN_SERVER_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "src/server/config.h"
#include "src/server/db.h"
#include "src/server/limits.h"

typedef struct kiln_worker_pool kiln_worker_pool_t;
typedef struct kiln_remote kiln_remote_t;
typedef struct kiln_jobkey kiln_jobkey_t;

typedef struct kiln_server {
    char *root; /* the server's directory: kiln.db, logs/, builds/, contexts/ */
    kiln_db_t *db;
    kiln_config_t *config;
    kiln_worker_pool_t *pool;
    kiln_remote_t *remote;       /* --queue: builds go to SQS for `kiln worker`s */
    kiln_jobkey_t *job_key;      /* seals secrets in job messages (--job-key-file), or NULL */
    size_t max_body;             /* JSON bodies */
    size_t max_upload;           /* uploaded contexts */
    size_t log_cap;              /* per build */
    char *dashboard_file;        /* serve this file at / instead of the built-in page */
    int no_auth;                 /* no token configured and --no-auth given */
    int workers;                 /* size of the local pool (0: jobs go to a queue) */
    kiln_limits_policy_t limits; /* per-build sandbox limits: defaults and maxima */
    volatile int stopping;       /* shutting down: streaming responses end */

    /* the access log (a line per request), or NULL when it is off */
    struct kiln_accesslog *access_log;
} kiln_server_t;

/* The log file of a build (malloc'ed). */
char *kiln_server_log_path(const kiln_server_t *s, const char *id);

/* The dashboard page (one self-contained HTML document). */
extern const char kiln_dashboard_html[];

#endif
