/* kiln worker — fair scheduling of the SQS job queue across tenants. A worker thread
 * receives a batch of messages, starts the one of the tenant after the one this worker served
 * last (round robin, kiln_sched_pick) and hands the others straight back to the queue, so one
 * tenant's flood at the head of the queue does not hold back another tenant's job behind it.
 * Pure: the worker (sqs_worker.c) does the SQS calls and keeps `last`. */
#ifndef KILN_SERVER_QFAIR_H
#define KILN_SERVER_QFAIR_H

#include <stddef.h>

/* The most messages one ReceiveMessage may return (an SQS limit). */
#define KILN_QFAIR_BATCH 10

/* The index in tenants[0..n) (the tenants of a received batch, in queue order; NULL counts
 * as tenant "default") of the message to start: the first message of the tenant after
 * `last` (NULL: from the start) in name order among those with a message not marked in skip
 * (may be NULL), wrapping around. -1 when every message is skipped or n is 0. */
int kiln_qfair_pick(const char *const *tenants, const unsigned char *skip, size_t n,
                    const char *last);

/* max_concurrent across all workers: one lease object per running job in the shared store,
 * <store>/running/<tenant>/<job id>, holding {"expires": epoch seconds, "worker": "host:pid"};
 * renewed by the job's heartbeat, deleted when it ends, lapsed when its worker dies. */

/* The lease prefix of tenant's jobs ("s3://bucket/store/running/TENANT/", malloc'ed), from a
 * job's done_url ("<store>/done/<id>"); NULL when done_url is NULL or not of that form. */
char *kiln_qfair_lease_prefix(const char *done_url, const char *id, const char *tenant);

/* A lease's body (malloc'ed JSON). */
char *kiln_qfair_lease_text(double expires, const char *worker);

/* 1 when the lease body text is live at now, 0 when it lapsed or is not a lease. */
int kiln_qfair_lease_live(const char *text, double now);

#endif
