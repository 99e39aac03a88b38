/* kiln server — the SQS calls of the job queue beyond SendMessage (see sqs_jobs.h):
 * ReceiveMessage, DeleteMessage, ChangeMessageVisibility. */
#include "src/server/sqs_jobs.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define SQS_ANSWER_CAP (1024u * 1024)

/* The endpoint for queue_url: an AWS_ENDPOINT_URL(_SQS) override, else the queue URL's own
 * scheme and host. */
static int queue_endpoint(kiln_aws_t *aws, const char *queue_url, kiln_aws_endpoint_t *ep,
                          kiln_error_t *err)
{
    kiln_aws_endpoint_t qep = {0};

    if (kiln_aws_endpoint_parse(queue_url, &qep, err) < 0)
        return kiln_error_prefix(err, "SQS queue URL");
    if (qep.base_path[0] == '\0') {
        kiln_aws_endpoint_clear(&qep);
        return kiln_error_set(err, 0, "SQS queue URL '%s' has no queue path", queue_url);
    }
    if (kiln_aws_endpoint_resolve("sqs", aws->region, ep, err) < 0) {
        kiln_aws_endpoint_clear(&qep);
        return -1;
    }
    if (!ep->custom) {
        kiln_aws_endpoint_clear(ep);
        ep->scheme = kiln_xstrdup(qep.scheme);
        ep->host = kiln_xstrdup(qep.host);
        ep->base_path = kiln_xstrdup("");
    }
    kiln_aws_endpoint_clear(&qep);
    return 0;
}

int kiln_server_aws_call(kiln_aws_t *aws, kiln_aws_call_t *call, kiln_http_response_t *resp,
                         const char *what, kiln_error_t *err)
{
    if (kiln_aws_send(aws, NULL, call, resp, err) < 0)
        return kiln_error_prefix(err, "%s", what);
    if (resp->status != 200) {
        kiln_aws_error_from_response(resp, err, what);
        kiln_http_response_free(resp);
        return -1;
    }
    return 0;
}

/* One JSON-protocol call: `AmazonSQS.<action>` with req (consumed); *ans is the answer
 * object (may be NULL when the caller does not want it). */
static int sqs_call(kiln_aws_t *aws, const char *queue_url, const char *action, json_t *req,
                    json_t **ans, kiln_error_t *err)
{
    kiln_aws_endpoint_t ep = {0};
    _cleanup_free_ char *body = NULL;
    _cleanup_free_ char *target = kiln_xasprintf("X-Amz-Target: AmazonSQS.%s", action);
    _cleanup_free_ char *what = kiln_xasprintf("SQS %s on %s", action, queue_url);
    const char *hdrs[2] = {"Content-Type: application/x-amz-json-1.0", target};
    kiln_aws_call_t call = {0};
    kiln_http_response_t resp = {0};
    int ret = -1;

    json_object_set_new(req, "QueueUrl", json_string(queue_url));
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (queue_endpoint(aws, queue_url, &ep, err) < 0)
        return -1;
    call.service = "sqs";
    call.endpoint = &ep;
    call.method = "POST";
    call.path = "/";
    call.headers = hdrs;
    call.n_headers = 2;
    call.body = body;
    call.body_len = strlen(body);
    call.body_fd = -1;
    call.response_cap = SQS_ANSWER_CAP;
    if (kiln_server_aws_call(aws, &call, &resp, what, err) < 0)
        goto out;
    if (ans) {
        *ans = resp.body_len
                   ? kiln_aws_json_parse(resp.body, resp.body_len, SQS_ANSWER_CAP, what, err)
                   : json_object();
        if (*ans == NULL)
            goto out;
    }
    ret = 0;
out:
    kiln_http_response_free(&resp);
    kiln_aws_endpoint_clear(&ep);
    return ret;
}

/* Copies one message of a ReceiveMessage answer into *out. */
static int received_one(json_t *m, const char *queue_url, kiln_sqs_received_t *out,
                        kiln_error_t *err)
{
    const char *body = json_string_value(json_object_get(m, "Body"));
    const char *receipt = json_string_value(json_object_get(m, "ReceiptHandle"));
    const char *id = json_string_value(json_object_get(m, "MessageId"));
    const char *count = json_string_value(
        json_object_get(json_object_get(m, "Attributes"), "ApproximateReceiveCount"));

    if (body == NULL || receipt == NULL)
        return kiln_error_set(err, EPROTO, "SQS ReceiveMessage on %s: message without %s",
                              queue_url, body ? "ReceiptHandle" : "Body");
    out->body = kiln_xstrdup(body);
    out->receipt = kiln_xstrdup(receipt);
    out->message_id = kiln_xstrdup(id ? id : "");
    out->receive_count = count ? (int)strtol(count, NULL, 10) : 1;
    return 0;
}

int kiln_sqs_jobs_receive_batch(kiln_aws_t *aws, const char *queue_url, int max, int wait_s,
                                int visibility_s, kiln_sqs_received_t *out, kiln_error_t *err)
{
    json_t *req = json_pack("{s:i,s:i,s:i,s:[s]}", "MaxNumberOfMessages", max < 1 ? 1 : max,
                            "WaitTimeSeconds", wait_s, "VisibilityTimeout", visibility_s,
                            "AttributeNames", "ApproximateReceiveCount");
    json_t *ans = NULL, *msgs;
    int n = 0;

    if (sqs_call(aws, queue_url, "ReceiveMessage", req, &ans, err) < 0)
        return -1;
    msgs = json_object_get(ans, "Messages");
    for (size_t i = 0; i < json_array_size(msgs) && n < max; i++) {
        if (received_one(json_array_get(msgs, i), queue_url, &out[n], err) < 0) {
            while (n > 0)
                kiln_sqs_received_free(&out[--n]);
            json_decref(ans);
            return -1;
        }
        n++;
    }
    json_decref(ans);
    return n;
}

int kiln_sqs_jobs_receive(kiln_aws_t *aws, const char *queue_url, int wait_s, int visibility_s,
                          kiln_sqs_received_t *out, kiln_error_t *err)
{
    return kiln_sqs_jobs_receive_batch(aws, queue_url, 1, wait_s, visibility_s, out, err);
}

int kiln_sqs_jobs_delete(kiln_aws_t *aws, const char *queue_url, const char *receipt,
                         kiln_error_t *err)
{
    return sqs_call(aws, queue_url, "DeleteMessage", json_pack("{s:s}", "ReceiptHandle", receipt),
                    NULL, err);
}

int kiln_sqs_jobs_extend(kiln_aws_t *aws, const char *queue_url, const char *receipt,
                         int visibility_s, kiln_error_t *err)
{
    return sqs_call(
        aws, queue_url, "ChangeMessageVisibility",
        json_pack("{s:s,s:i}", "ReceiptHandle", receipt, "VisibilityTimeout", visibility_s), NULL,
        err);
}

void kiln_sqs_received_free(kiln_sqs_received_t *m)
{
    free(m->body);
    free(m->receipt);
    free(m->message_id);
    memset(m, 0, sizeof(*m));
}
