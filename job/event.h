/* kiln — the build completion event: what a finished build (good or failed)
 * announces on SQS/SNS and records in its metadata file.
 *
 *   {"build_id", "status": "succeeded"|"failed", "source": {"context", "repo",
 *    "commit"}, "outputs": {"images": [...], "s3": [...], "local": [...],
 *    "functions": [...]}, "timings": {"build_ms", "outputs_ms", "total_ms"},
 *    "isolation": "sandbox"|"chroot"|"none", "entitlements": ["network.host", …],
 *    "base_images": [{"ref", "digest"}] (what each FROM resolved to), "error"}
 */
#ifndef KILN_JOB_EVENT_H
#define KILN_JOB_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "utils/error.h"

/* A build id: given when set and not empty (the CLI passes --build-id or
 * $KILN_BUILD_ID), else "b-" + 16 random hex digits. */
char *kiln_event_build_id(const char *given);

/* A new event in status "running" with empty output lists. */
json_t *kiln_event_new(const char *build_id);

/* Appends item (reference stolen) to outputs.<kind>. */
void kiln_event_add_output(json_t *ev, const char *kind, json_t *item);

/* Sets status, error (NULL for none) and a timing in milliseconds. */
void kiln_event_finish(json_t *ev, const char *status, const char *error);
void kiln_event_set_timing(json_t *ev, const char *name, double seconds);

/* Sets "image_size": {"compressed", "uncompressed"} (bytes) on the event, and writes
 * the same in words ("41.2 MB compressed, 112.3 MB uncompressed") into text. */
/* An uncompressed size that is not known (a layer not downloaded: oci/store_lazy). */
#define KILN_EVENT_SIZE_UNKNOWN UINT64_MAX
/* uncompressed KILN_EVENT_SIZE_UNKNOWN: left out of the event, said so in text */
void kiln_event_set_image_size(json_t *ev, uint64_t compressed, uint64_t uncompressed, char *text,
                               size_t len);

/* Records how the build's steps are confined: the isolation (NULL or "auto"
 * is the sandbox) and the entitlements granted (KILN_ENTITLEMENT_* bits). */
void kiln_event_set_security(json_t *ev, const char *isolation, unsigned entitlements);

/* Sends the event to every target (sqs://QUEUE_URL, sns://TOPIC_ARN). Each
 * target is tried even when an earlier one failed; *results (new array of
 * {"target", "ok", "error"|"message_id"}) records what happened. Returns -1
 * with err naming the first failing target when any failed. */
int kiln_event_notify(json_t *ev, const char *const *targets, size_t n, json_t **results,
                      kiln_error_t *err);

#endif
