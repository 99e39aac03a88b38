/* kiln — SQS SendMessage (see sqs.h). */
#include "utils/aws/sqs.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define SQS_RESPONSE_CAP (64u * 1024)

/* Region named by an SQS host ("sqs.eu-west-1.amazonaws.com"), or NULL. */
static char *region_of_host(const char *host)
{
    const char *dot;
    if (strncmp(host, "sqs.", 4) != 0)
        return NULL;
    dot = strchr(host + 4, '.');
    if (dot == NULL || strncmp(dot, ".amazonaws.com", 14) != 0)
        return NULL;
    return kiln_xstrndup(host + 4, (size_t)(dot - host - 4));
}

static int is_fifo(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".fifo") == 0;
}

int kiln_sqs_send(kiln_aws_t *aws, const char *queue_url, const kiln_sqs_message_t *msg,
                  char **message_id, kiln_error_t *err)
{
    kiln_aws_endpoint_t qep = {0}, ep = {0};
    _cleanup_free_ char *region = NULL;
    _cleanup_free_ char *body = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("SQS SendMessage to %s", queue_url);
    const char *hdrs[2] = {"Content-Type: application/x-amz-json-1.0",
                           "X-Amz-Target: AmazonSQS.SendMessage"};
    kiln_http_response_t resp = {0};
    json_t *req, *ans;
    const char *mid, *md5;
    unsigned char digest[16];
    unsigned int dlen = 16;
    char want[33];
    int ret = -1;

    if (kiln_aws_endpoint_parse(queue_url, &qep, err) < 0)
        return kiln_error_prefix(err, "SQS queue URL");
    if (qep.base_path[0] == '\0') {
        kiln_aws_endpoint_clear(&qep);
        return kiln_error_set(err, EINVAL, "SQS queue URL '%s' has no queue path", queue_url);
    }
    if (is_fifo(queue_url) && (msg->group_id == NULL || msg->group_id[0] == '\0')) {
        kiln_aws_endpoint_clear(&qep);
        return kiln_error_set(err, EINVAL, "%s: a FIFO queue needs a message group id", what);
    }
    region = region_of_host(qep.host);
    if (kiln_aws_endpoint_resolve("sqs", region ? region : aws->region, &ep, err) < 0) {
        kiln_aws_endpoint_clear(&qep);
        return -1;
    }
    if (!ep.custom) {
        /* the queue URL names the endpoint */
        kiln_aws_endpoint_clear(&ep);
        ep.scheme = kiln_xstrdup(qep.scheme);
        ep.host = kiln_xstrdup(qep.host);
        ep.base_path = kiln_xstrdup("");
    }
    req = json_pack("{s:s, s:s}", "QueueUrl", queue_url, "MessageBody", msg->body);
    if (msg->n_attrs > 0) {
        json_t *attrs = json_object();
        for (size_t i = 0; i < msg->n_attrs; i++)
            json_object_set_new(
                attrs, msg->attrs[i].name,
                json_pack("{s:s, s:s}", "DataType", "String", "StringValue", msg->attrs[i].value));
        json_object_set_new(req, "MessageAttributes", attrs);
    }
    if (msg->group_id)
        json_object_set_new(req, "MessageGroupId", json_string(msg->group_id));
    if (msg->dedup_id)
        json_object_set_new(req, "MessageDeduplicationId", json_string(msg->dedup_id));
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (body == NULL) {
        kiln_error_set(err, EINVAL, "%s: message is not valid UTF-8", what);
        goto out;
    }

    if (kiln_aws_post(aws, "sqs", region, &ep, hdrs, 2, body, SQS_RESPONSE_CAP, what, &resp, err) <
        0)
        goto out;
    ans = kiln_aws_json_parse(resp.body, resp.body_len, SQS_RESPONSE_CAP, what, err);
    if (ans == NULL)
        goto out;
    mid = kiln_aws_json_str(ans, "MessageId");
    md5 = kiln_aws_json_str(ans, "MD5OfMessageBody");
    EVP_Digest(msg->body, strlen(msg->body), digest, &dlen, EVP_md5(), NULL);
    for (int i = 0; i < 16; i++)
        snprintf(want + 2 * i, 3, "%02x", digest[i]);
    if (mid == NULL || (md5 && strcmp(md5, want) != 0)) {
        kiln_error_set(err, EPROTO, "%s: %s", what,
                       mid == NULL ? "answer has no MessageId" : "MD5 of the body does not match");
        json_decref(ans);
        goto out;
    }
    if (message_id)
        *message_id = kiln_xstrdup(mid);
    json_decref(ans);
    ret = 0;
out:
    kiln_http_response_free(&resp);
    kiln_aws_endpoint_clear(&ep);
    kiln_aws_endpoint_clear(&qep);
    return ret;
}
