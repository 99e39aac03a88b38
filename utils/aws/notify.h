/* kiln — build completion events to SQS and SNS.
 *
 * A target is "sqs://QUEUE_URL" (QUEUE_URL with or without its https://) or
 * "sns://TOPIC_ARN". The event is a JSON object (build id, status, source,
 * outputs, timings, error); its "build_id" and "status" members also go out
 * as the message attributes kiln-build-id and kiln-status. FIFO queues and
 * topics get MessageGroupId = the event's source repository (or "kiln") and
 * MessageDeduplicationId = SHA-256 of the event. */
#ifndef KILN_UTILS_AWS_NOTIFY_H
#define KILN_UTILS_AWS_NOTIFY_H

#include "utils/aws/client.h"
#include "utils/error.h"

/* Checks that target is a well-formed sqs:// or sns:// target. */
int kiln_notify_check_target(const char *target, kiln_error_t *err);

/* Sends event_json to target, with retries. Returns -1 with err naming the
 * target on failure (the caller reports it; a build stays good).
 * *message_id (malloc'ed) may be NULL. */
int kiln_notify_send(kiln_aws_t *aws, const char *target, const char *event_json, char **message_id,
                     kiln_error_t *err);

#endif
