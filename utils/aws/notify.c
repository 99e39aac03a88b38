/* kiln — completion events to SQS / SNS (see notify.h). */
#include "utils/aws/notify.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "utils/aws/sigv4.h"
#include "utils/aws/sns.h"
#include "utils/aws/sqs.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define EVENT_CAP (256u * 1024) /* SQS and SNS both stop at 256 KiB */

int kiln_notify_check_target(const char *target, kiln_error_t *err)
{
    if (strncmp(target, "sqs://", 6) == 0 && target[6] != '\0')
        return 0;
    if (strncmp(target, "sns://arn:", 10) == 0)
        return 0;
    return kiln_error_set(
        err, EINVAL, "notify target '%s' is neither sqs://QUEUE_URL nor sns://TOPIC_ARN", target);
}

/* String member at a dotted path ("source.repo"), or NULL. */
static const char *event_str(json_t *ev, const char *a, const char *b)
{
    json_t *v = json_object_get(ev, a);
    if (b)
        v = json_object_get(v, b);
    return json_string_value(v);
}

int kiln_notify_send(kiln_aws_t *aws, const char *target, const char *event_json, char **message_id,
                     kiln_error_t *err)
{
    json_t *ev;
    kiln_msg_attr_t attrs[2];
    size_t nattrs = 0;
    const char *group;
    char dedup[65];
    int ret;

    if (kiln_notify_check_target(target, err) < 0)
        return -1;
    if (strlen(event_json) > EVENT_CAP)
        return kiln_error_set(err, EFBIG, "notify %s: event is over %u bytes", target, EVENT_CAP);
    ev = kiln_aws_json_parse(event_json, strlen(event_json), EVENT_CAP, "event", err);
    if (ev == NULL)
        return kiln_error_prefix(err, "notify %s", target);
    if (event_str(ev, "build_id", NULL))
        attrs[nattrs++] = (kiln_msg_attr_t){"kiln-build-id", event_str(ev, "build_id", NULL)};
    if (event_str(ev, "status", NULL))
        attrs[nattrs++] = (kiln_msg_attr_t){"kiln-status", event_str(ev, "status", NULL)};
    group = event_str(ev, "source", "repo");
    if (group == NULL || group[0] == '\0' || strlen(group) > 128)
        group = "kiln";
    kiln_sigv4_sha256_hex(event_json, strlen(event_json), dedup);

    if (strncmp(target, "sqs://", 6) == 0) {
        const char *q = target + 6;
        _cleanup_free_ char *url = strncmp(q, "http://", 7) == 0 || strncmp(q, "https://", 8) == 0
                                       ? kiln_xstrdup(q)
                                       : kiln_xasprintf("https://%s", q);
        int fifo = strlen(url) > 5 && strcmp(url + strlen(url) - 5, ".fifo") == 0;
        kiln_sqs_message_t m = {.body = event_json,
                                .attrs = attrs,
                                .n_attrs = nattrs,
                                .group_id = fifo ? group : NULL,
                                .dedup_id = fifo ? dedup : NULL};
        ret = kiln_sqs_send(aws, url, &m, message_id, err);
    } else {
        const char *arn = target + 6;
        int fifo = strlen(arn) > 5 && strcmp(arn + strlen(arn) - 5, ".fifo") == 0;
        kiln_sns_message_t m = {.message = event_json,
                                .attrs = attrs,
                                .n_attrs = nattrs,
                                .group_id = fifo ? group : NULL,
                                .dedup_id = fifo ? dedup : NULL};
        ret = kiln_sns_publish(aws, arn, &m, message_id, err);
    }
    json_decref(ev);
    return ret;
}
