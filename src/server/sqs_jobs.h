/* kiln server — the SQS calls the job queue needs beyond SendMessage (utils/aws/sqs.h):
 * ReceiveMessage (long poll), DeleteMessage and ChangeMessageVisibility, over SQS's JSON
 * protocol and kiln's SigV4 client. */
#ifndef KILN_SERVER_SQS_JOBS_H
#define KILN_SERVER_SQS_JOBS_H

#include "utils/aws/client.h"
#include "utils/error.h"

typedef struct kiln_sqs_received {
    char *body;
    char *receipt; /* ReceiptHandle */
    char *message_id;
    int receive_count; /* ApproximateReceiveCount */
} kiln_sqs_received_t;

/* Receives at most one message, waiting up to wait_s seconds (long poll) and hiding it for
 * visibility_s seconds. Returns 1 with *out filled, 0 when none came. */
int kiln_sqs_jobs_receive(kiln_aws_t *aws, const char *queue_url, int wait_s, int visibility_s,
                          kiln_sqs_received_t *out, kiln_error_t *err);

/* Receives up to max (1..10) messages into out[0..max), like kiln_sqs_jobs_receive. Returns
 * how many came (0 when none). */
int kiln_sqs_jobs_receive_batch(kiln_aws_t *aws, const char *queue_url, int max, int wait_s,
                                int visibility_s, kiln_sqs_received_t *out, kiln_error_t *err);

/* Deletes a received message. */
int kiln_sqs_jobs_delete(kiln_aws_t *aws, const char *queue_url, const char *receipt,
                         kiln_error_t *err);

/* Hides a received message for visibility_s more seconds (0 = visible again now). */
int kiln_sqs_jobs_extend(kiln_aws_t *aws, const char *queue_url, const char *receipt,
                         int visibility_s, kiln_error_t *err);

void kiln_sqs_received_free(kiln_sqs_received_t *m);

/* Sends a signed AWS call and requires a 200 answer; errors name `what`. On success the
 * caller frees *resp. */
int kiln_server_aws_call(kiln_aws_t *aws, kiln_aws_call_t *call, kiln_http_response_t *resp,
                         const char *what, kiln_error_t *err);

#endif
