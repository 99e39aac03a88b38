/* kiln server — scale-out over SQS. `kiln serve --queue JOBS --events-queue EVENTS` sends
 * each build as a job message instead of running it, and applies the events `kiln worker`s
 * send back (started, phase, commit, finished with the log tail, requeued).
 *
 * Job message:   {"id": ID, "request": {…the stored request…}, "context_url": "s3://…"}
 *                (context_url: an uploaded context staged with --context-store)
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

/* Sends a queued build as a job message. */
int kiln_remote_enqueue(kiln_remote_t *r, const char *id, json_t *stored, kiln_error_t *err);

/* Applies one event message (a JSON text) to the store and the build's log. */
int kiln_remote_apply_event(kiln_server_t *s, const char *body, kiln_error_t *err);

/* Parses a job message: *id, *request (the stored request) and *context_url (NULL when
 * absent) on success. */
int kiln_remote_parse_job(const char *body, char **id, json_t **request, char **context_url,
                          kiln_error_t *err);

#endif
