/* kiln — SNS Publish (see sns.h). */
#include "utils/aws/sns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utils/aws/sigv4.h"
#include "utils/aws/xml.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define SNS_RESPONSE_CAP (64u * 1024)

static void form_add(kiln_buf_t *b, const char *k, const char *v)
{
    _cleanup_free_ char *ek = kiln_sigv4_uri_encode(k, strlen(k), 0);
    _cleanup_free_ char *ev = kiln_sigv4_uri_encode(v, strlen(v), 0);
    kiln_buf_appendf(b, NULL, "%s%s=%s", b->len ? "&" : "", ek, ev);
}

/* Field `n` (0-based) of a colon-separated ARN, malloc'ed, or NULL. */
static char *arn_field(const char *arn, int n)
{
    const char *p = arn;
    for (int i = 0; i < n; i++) {
        p = strchr(p, ':');
        if (p == NULL)
            return NULL;
        p++;
    }
    return kiln_xstrndup(p, strcspn(p, ":"));
}

int kiln_sns_publish(kiln_aws_t *aws, const char *topic_arn, const kiln_sns_message_t *msg,
                     char **message_id, kiln_error_t *err)
{
    _cleanup_free_ char *svc = arn_field(topic_arn, 2);
    _cleanup_free_ char *region = arn_field(topic_arn, 3);
    _cleanup_free_ char *name = arn_field(topic_arn, 5);
    _cleanup_free_ char *body = NULL;
    _cleanup_free_ char *mid = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("SNS Publish to %s", topic_arn);
    const char *hdrs[1] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8"};
    kiln_aws_endpoint_t ep = {0};
    kiln_http_response_t resp = {0};
    kiln_buf_t b;
    int ret = -1;

    if (strncmp(topic_arn, "arn:", 4) != 0 || svc == NULL || strcmp(svc, "sns") != 0 ||
        region == NULL || region[0] == '\0' || name == NULL || name[0] == '\0')
        return kiln_error_set(err, EINVAL, "'%s' is not an SNS topic ARN", topic_arn);
    if (strlen(name) > 5 && strcmp(name + strlen(name) - 5, ".fifo") == 0 &&
        (msg->group_id == NULL || msg->group_id[0] == '\0'))
        return kiln_error_set(err, EINVAL, "%s: a FIFO topic needs a message group id", what);
    if (kiln_aws_endpoint_resolve("sns", region, &ep, err) < 0)
        return -1;

    kiln_buf_init(&b, 0);
    form_add(&b, "Action", "Publish");
    form_add(&b, "Version", "2010-03-31");
    form_add(&b, "TopicArn", topic_arn);
    form_add(&b, "Message", msg->message);
    if (msg->subject)
        form_add(&b, "Subject", msg->subject);
    for (size_t i = 0; i < msg->n_attrs; i++) {
        char k[96];
        snprintf(k, sizeof(k), "MessageAttributes.entry.%zu.Name", i + 1);
        form_add(&b, k, msg->attrs[i].name);
        snprintf(k, sizeof(k), "MessageAttributes.entry.%zu.Value.DataType", i + 1);
        form_add(&b, k, "String");
        snprintf(k, sizeof(k), "MessageAttributes.entry.%zu.Value.StringValue", i + 1);
        form_add(&b, k, msg->attrs[i].value);
    }
    if (msg->group_id)
        form_add(&b, "MessageGroupId", msg->group_id);
    if (msg->dedup_id)
        form_add(&b, "MessageDeduplicationId", msg->dedup_id);
    body = kiln_buf_steal(&b, NULL);

    if (kiln_aws_post(aws, "sns", region, &ep, hdrs, 1, body, SNS_RESPONSE_CAP, what, &resp, err) <
        0)
        goto out;
    mid = kiln_aws_xml_text(resp.body, resp.body_len, "PublishResponse/PublishResult/MessageId",
                            what, err);
    if (mid == NULL)
        goto out;
    if (message_id)
        *message_id = steal_pointer(&mid);
    ret = 0;
out:
    kiln_http_response_free(&resp);
    kiln_aws_endpoint_clear(&ep);
    return ret;
}
