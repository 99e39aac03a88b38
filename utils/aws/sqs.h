/* kiln — SQS SendMessage over the JSON protocol
 * (application/x-amz-json-1.0, X-Amz-Target: AmazonSQS.SendMessage). */
#ifndef KILN_UTILS_AWS_SQS_H
#define KILN_UTILS_AWS_SQS_H

#include <stddef.h>

#include "utils/aws/client.h"
#include "utils/error.h"

/* A String message attribute. */
typedef struct kiln_msg_attr {
    const char *name;
    const char *value;
} kiln_msg_attr_t;

typedef struct kiln_sqs_message {
    const char *body;
    const kiln_msg_attr_t *attrs;
    size_t n_attrs;
    const char *group_id; /* FIFO queues (name ends in .fifo): required */
    const char *dedup_id; /* FIFO queues: NULL uses content-based deduplication */
} kiln_sqs_message_t;

/* Sends msg to the queue at queue_url ("https://sqs.REGION.amazonaws.com/ACCOUNT/NAME").
 * The request goes to AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL when set, else
 * to the queue URL's host; the region comes from that host when it names
 * one. Checks the MD5 of the body SQS echoes. *message_id (malloc'ed) may be
 * NULL. Returns -1 with err naming the queue and the SQS error code. */
int kiln_sqs_send(kiln_aws_t *aws, const char *queue_url, const kiln_sqs_message_t *msg,
                  char **message_id, kiln_error_t *err);

#endif
