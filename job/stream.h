/* kiln — a job's event stream: what `kiln job run` reports, one JSON object per line, so that
 * whoever runs a job (the server, a worker, a person) reads typed events, never log text.
 *
 * Every event carries the job's ids: {"v": 1, "build_id", "tenant", "repo" (no credentials,
 * no query), "commit", "branch", "trigger", "event": TYPE, …} (ids the spec does not set are
 * absent). Types:
 *   phase       {"phase": P} in this order, each when it happens: validate, checkout (a git
 *               source checked out), planning (an auto build's
 *               detection), building, exporting | pushing | uploading (each output: files,
 *               a registry, S3), notifying, done
 *   source      {"author", "message"} once a git source is checked out (the commit's, read
 *               from it: capped, each absent when empty)
 *   step_start  {"step": N, "name": "[stage-0 2/3] RUN make"}
 *   step_end    {"step": N, "cache_hit": BOOL, "seconds": S} or {"step": N, "error": TEXT}
 *   log         {"text": LINE} and, for a step's output, {"step": N}
 *   output      {"type", "dest" | "ref" | "url", "digest", …} one per output written
 *   pushed      {"ref", "digest"} one per reference pushed to a registry
 *   error       {"code": CODE, "message": TEXT}: invalid_spec, source_failed (the checkout
 *               or the uploaded context), build_failed, no_space (a disk of the machine ran
 *               full), disk_limit (a step wrote more than limits.disk), timeout, internal
 *   result      {"status": "succeeded" | "failed", "digest", "code"}  always the last */
#ifndef KILN_JOB_STREAM_H
#define KILN_JOB_STREAM_H

#include <jansson.h>

#include "job/spec.h"
#include "utils/error.h"

#define KILN_JOB_EVENTS_VERSION 1

/* Error codes of error and result events. */
#define KILN_JOB_ERR_INVALID_SPEC "invalid_spec"
#define KILN_JOB_ERR_BUILD_FAILED "build_failed"
#define KILN_JOB_ERR_TIMEOUT "timeout"
#define KILN_JOB_ERR_INTERNAL "internal"
#define KILN_JOB_ERR_SOURCE "source_failed"  /* the checkout or the uploaded context */
#define KILN_JOB_ERR_NO_SPACE "no_space"     /* a disk of the machine ran full */
#define KILN_JOB_ERR_DISK_LIMIT "disk_limit" /* a step wrote more than limits.disk */

/* A new event of type with the spec's ids (s may be NULL: no ids). */
json_t *kiln_job_event_new(const kiln_job_spec_t *s, const char *type);

/* The event of one `kiln build --progress=json` line ({"step", "event", "text", "seconds"}):
 * a step_start, step_end or log event; NULL when line is not one. */
json_t *kiln_job_event_from_progress(const kiln_job_spec_t *s, const char *line);

/* Writes ev as one line (compact JSON + '\n') to fd in one piece; fails naming fd. */
int kiln_job_event_write(int fd, json_t *ev, kiln_error_t *err);

/* A URL without its userinfo and query ("https://tok@h/r?x" → "https://h/r"), malloc'ed. */
char *kiln_job_redact_url(const char *url);

#endif
