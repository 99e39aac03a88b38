/* kiln server — scale-out over SQS. `kiln serve --queue JOBS --events-queue EVENTS` sends
 * each build as a job message instead of running it, and applies the events `kiln worker`s
 * send back (started, phase, commit, finished with the log tail, requeued).
 *
 * Job message:   {"id": ID, "request": {…the stored request…}}
 * Event message: {"type": "started"|"phase"|"commit"|"finished"|"requeued", "id": ID,
 *                 "status": …, "commit": …, "reason": …, "error": …, "result": {…},
 *                 "log": "last bytes of the log", "worker": "host:pid", "attempt": N} */
#ifndef KILN_SERVER_REMOTE_H
#define KILN_SERVER_REMOTE_H

#include <jansson.h>

#include "src/server/server.h"
#include "utils/error.h"

/* Starts the events reader for a server that queues builds to jobs_url. */
int kiln_remote_start(kiln_server_t *s, const char *jobs_url, const char *events_url,
                      kiln_remote_t **out, kiln_error_t *err);
void kiln_remote_stop(kiln_remote_t *r);

/* Sends a queued build as a job message. */
int kiln_remote_enqueue(kiln_remote_t *r, const char *id, json_t *stored, kiln_error_t *err);

/* Applies one event message (a JSON text) to the store and the build's log. */
int kiln_remote_apply_event(kiln_server_t *s, const char *body, kiln_error_t *err);

/* Parses a job message: *id and *request (the stored request) on success. */
int kiln_remote_parse_job(const char *body, char **id, json_t **request, kiln_error_t *err);

#endif
