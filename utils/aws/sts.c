/* kiln — STS AssumeRole (see sts.h). */
#include "utils/aws/sts.h"

#include <stdlib.h>
#include <string.h>

#include "utils/aws/credentials.h"
#include "utils/aws/xml.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Appends "&key=value" (value percent-encoded) to b; the first pair has no '&'. */
static void form_add(kiln_buf_t *b, const char *key, const char *value)
{
    _cleanup_free_ char *ev = kiln_sigv4_uri_encode(value, strlen(value), 0);
    kiln_buf_appendf(b, NULL, "%s%s=%s", b->len ? "&" : "", key, ev);
}

char *kiln_aws_sts_assume_body(const kiln_aws_sts_assume_t *a)
{
    kiln_buf_t b = {0};
    char dur[16];

    snprintf(dur, sizeof(dur), "%u", a->duration_s ? a->duration_s : 3600);
    form_add(&b, "Action", "AssumeRole");
    form_add(&b, "Version", "2011-06-15");
    form_add(&b, "RoleArn", a->role_arn);
    form_add(&b, "RoleSessionName", a->session_name ? a->session_name : "kiln");
    form_add(&b, "DurationSeconds", dur);
    if (a->external_id)
        form_add(&b, "ExternalId", a->external_id);
    return kiln_buf_steal(&b, NULL);
}

int kiln_aws_sts_parse(const char *xml, size_t len, kiln_aws_creds_t *out, kiln_error_t *err)
{
#define CREDS "AssumeRoleResponse/AssumeRoleResult/Credentials/"
    kiln_aws_xml_field_t f[] = {
        {CREDS "AccessKeyId"},
        {CREDS "SecretAccessKey"},
        {CREDS "SessionToken"},
        {CREDS "Expiration"},
        {"AssumeRoleResponse/AssumeRoleResult/Credentials"},
    };
#undef CREDS
    const size_t n = sizeof(f) / sizeof(f[0]);
    time_t exp = 0;
    int rc = -1;

    /* errors name elements, never values (the parser's own name a line and column) */
    if (kiln_aws_xml_parse(xml, len, f, n, NULL, "sts AssumeRole", err) < 0)
        return -1;
    if (f[4].value == NULL) {
        kiln_error_set(err, 0, "sts AssumeRole: the answer has no <Credentials>");
        goto out;
    }
    for (size_t i = 0; i < 4; i++)
        if (f[i].value == NULL || f[i].value[0] == '\0') {
            kiln_error_set(err, 0, "sts AssumeRole: the answer's <Credentials> has no <%s>",
                           strrchr(f[i].path, '/') + 1);
            goto out;
        }
    if ((exp = kiln_aws_time_parse(f[3].value)) == 0) {
        kiln_error_set(err, 0, "sts AssumeRole: <Expiration> is not a time");
        goto out;
    }
    memset(out, 0, sizeof(*out));
    out->access_key_id = steal_pointer(&f[0].value);
    out->secret_access_key = steal_pointer(&f[1].value);
    out->session_token = steal_pointer(&f[2].value);
    out->expiration = exp;
    out->source = "sts AssumeRole";
    rc = 0;
out:
    kiln_aws_xml_fields_clear(f, n); /* wiped: they may hold the secret */
    return rc;
}

int kiln_aws_sts_assume_role(kiln_aws_t *aws, const kiln_aws_sts_assume_t *a, kiln_aws_creds_t *out,
                             kiln_error_t *err)
{
    static const char *const hdrs[1] = {
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8"};
    const char *region = a->region ? a->region : aws->region;
    _cleanup_free_ char *body = kiln_aws_sts_assume_body(a);
    _cleanup_free_ char *what = kiln_xasprintf("sts AssumeRole %s", a->role_arn);
    kiln_aws_endpoint_t ep = {0};
    kiln_http_response_t resp = {0};
    int rc;

    if (a->endpoint ? kiln_aws_endpoint_parse(a->endpoint, &ep, err)
                    : kiln_aws_endpoint_resolve("sts", region, &ep, err))
        return kiln_error_prefix(err, "%s", what);
    rc = kiln_aws_post(aws, "sts", region, &ep, hdrs, 1, body, KILN_STS_RESPONSE_CAP, what, &resp,
                       err);
    if (rc == 0)
        rc = kiln_aws_sts_parse(resp.body, resp.body_len, out, err);
    if (resp.body)
        explicit_bzero(resp.body, resp.body_len);
    kiln_http_response_free(&resp);
    kiln_aws_endpoint_clear(&ep);
    return rc;
}
