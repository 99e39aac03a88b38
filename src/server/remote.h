/* kiln server — scale-out over SQS. `kiln serve --queue JOBS --events-queue EVENTS` sends
 * each build as a job message instead of running it, and applies the events `kiln worker`s
 * send back (started, phase, commit, finished with the log tail, requeued).
 *
 * Job message:   {"id": ID, "request": {…the stored request…}, "context_url": "s3://…",
 *                 "cancel_url": "s3://…", "done_url": "s3://…", "secrets": {sealed, see jobkey.h}}
 *                (context_url: an uploaded context staged with --context-store; cancel_url:
 *                where the server puts a marker when the build is canceled, looked for by
 *                the worker on every heartbeat; done_url: where the worker that built the job
 *                keeps its finished event — the job id is the idempotency key: a redelivered
 *                message whose done marker exists is answered from it, never built again;
 *                secrets: the values sealed with the job key)
 * Event message: {"type": "started"|"phase"|"commit"|"finished"|"requeued", "id": ID,
 *                 "status": …, "commit": …, "reason": …, "error": …, "result": {…},
 *                 "log": "last bytes of the log", "worker": "host:pid", "attempt": N} */
#ifndef KILN_SERVER_REMOTE_H
#define KILN_SERVER_REMOTE_H

#include <jansson.h>

#include "src/server/server.h"
#include "utils/error.h"

/* Starts the events reader for a server that queues builds to jobs_url; uploaded contexts
 * are staged under context_store ("s3://bucket/prefix", may be NULL: no uploads). */
int kiln_remote_start(kiln_server_t *s, const char *jobs_url, const char *events_url,
                      const char *context_store, kiln_remote_t **out, kiln_error_t *err);

/* Stages an uploaded context tarball for the workers. */
int kiln_remote_stage_context(kiln_remote_t *r, const char *tarball, const char *ctx_id,
                              kiln_error_t *err);

/* 1 when uploaded contexts can go to workers (a context store is configured). */
int kiln_remote_has_context_store(const kiln_remote_t *r);
void kiln_remote_stop(kiln_remote_t *r);

/* Sends a queued build as a job message; secrets ({name: value}, may be NULL) are sealed
 * with the server's job key (an error when there is none); trigger (api, github, gitlab; may
 * be NULL) is what the job's events name as its trigger. */
int kiln_remote_enqueue(kiln_remote_t *r, const char *id, json_t *stored, json_t *secrets,
                        const char *trigger, kiln_error_t *err);

/* Tells the workers a build is canceled: a marker at its cancel_url. Fails when there is
 * no context store (workers then cannot hear it). */
int kiln_remote_cancel(kiln_remote_t *r, const char *id, kiln_error_t *err);

/* Applies one event message (a JSON text) to the store and the build's log. */
int kiln_remote_apply_event(kiln_server_t *s, const char *body, kiln_error_t *err);

/* A job message, parsed. */
typedef struct kiln_remote_job {
    char *id;
    json_t *request;   /* the stored request */
    char *context_url; /* or NULL */
    char *cancel_url;  /* or NULL */
    char *done_url;    /* or NULL */
    char *trigger;     /* or NULL: checked with the job spec it goes into */
    json_t *sealed;    /* the sealed secrets, or NULL */
} kiln_remote_job_t;

/* Parses a job message into *job (cleared with kiln_remote_job_clear). */
int kiln_remote_parse_job(const char *body, kiln_remote_job_t *job, kiln_error_t *err);
void kiln_remote_job_clear(kiln_remote_job_t *job);

#endif
