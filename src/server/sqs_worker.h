/* kiln worker — the ECS task mode: N threads long-poll an SQS job queue, run each job
 * (job.h) while extending the message's visibility, send started/phase/finished events,
 * and delete the message only after the finished event went out. A crash leaves the
 * message to come back (and to the queue's dead-letter queue after its redrive count). */
#ifndef KILN_SERVER_SQS_WORKER_H
#define KILN_SERVER_SQS_WORKER_H

#include <stddef.h>

#include "src/server/limits.h"
#include "utils/error.h"

typedef struct kiln_sqs_worker_opts {
    const char *queue_url;
    const char *events_url; /* may be NULL: no events */
    const char *root;       /* logs, work dirs, done markers */
    int concurrency;
    int visibility_s; /* hide a received job this long; extended every third of it */
    int wait_s;       /* long-poll wait */
    int timeout_s;
    int drain_s; /* on stop: wait this long, then stop builds and release their messages */
    size_t log_cap;
    const char *build_cmd;
    const char *kiln_root;
    char **build_options;
    unsigned entitlements; /* what jobs may "allow" (KILN_ENTITLEMENT_*; kiln worker --allow) */
    kiln_limits_policy_t limits;       /* defaults and maxima applied to each job's limits */
    const struct kiln_jobkey *job_key; /* opens jobs' sealed secrets, or NULL */
    /* the tenants whose credentials jobs get (kiln worker --config), or NULL: then only
     * tenant "default" jobs get the worker's own credentials, others none */
    const struct kiln_config *config;
} kiln_sqs_worker_opts_t;

typedef struct kiln_sqs_worker kiln_sqs_worker_t;

int kiln_sqs_worker_start(const kiln_sqs_worker_opts_t *opts, kiln_sqs_worker_t **out,
                          kiln_error_t *err);

/* Stops taking jobs, drains (see drain_s), joins the threads and frees the worker. */
void kiln_sqs_worker_stop(kiln_sqs_worker_t *w);

#endif
