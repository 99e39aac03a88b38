/* kiln — SNS Publish (query protocol, form-encoded POST). */
#ifndef KILN_UTILS_AWS_SNS_H
#define KILN_UTILS_AWS_SNS_H

#include <stddef.h>

#include "utils/aws/client.h"
#include "utils/aws/sqs.h"
#include "utils/error.h"

typedef struct kiln_sns_message {
    const char *message;
    const char *subject; /* or NULL */
    const kiln_msg_attr_t *attrs;
    size_t n_attrs;
    const char *group_id; /* FIFO topics */
    const char *dedup_id;
} kiln_sns_message_t;

/* Publishes msg to topic_arn ("arn:aws:sns:REGION:ACCOUNT:NAME"); the region
 * is taken from the ARN. Returns -1 with err naming the topic and the SNS
 * error code. *message_id (malloc'ed) may be NULL. */
int kiln_sns_publish(kiln_aws_t *aws, const char *topic_arn, const kiln_sns_message_t *msg,
                     char **message_id, kiln_error_t *err);

#endif
