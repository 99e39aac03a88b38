/* kiln — signed AWS calls with retries (see client.h). */
#include "utils/aws/client.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "utils/aws/sigv4.h"
#include "utils/aws/xml.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define MAX_EXTRA_HEADERS 32
#define DEFAULT_ATTEMPTS 4

kiln_aws_t *kiln_aws_new(const char *region)
{
    kiln_aws_t *aws = kiln_xzalloc(sizeof(*aws));
    const char *att = getenv("AWS_MAX_ATTEMPTS");
    aws->region = region && region[0] ? kiln_xstrdup(region) : kiln_aws_region_resolve();
    aws->creds = kiln_aws_cred_provider_new();
    aws->max_attempts = DEFAULT_ATTEMPTS;
    if (att && att[0]) {
        char *end = NULL;
        unsigned long v = strtoul(att, &end, 10);
        if (end && *end == '\0' && v >= 1 && v <= 20)
            aws->max_attempts = (unsigned)v;
    }
    return aws;
}

void kiln_aws_free(kiln_aws_t *aws)
{
    if (aws == NULL)
        return;
    free(aws->region);
    kiln_aws_cred_provider_free(aws->creds);
    free(aws);
}

struct json_t *kiln_aws_json_parse(const char *body, size_t len, size_t cap, const char *what,
                                   kiln_error_t *err)
{
    json_error_t je;
    json_t *j;
    if (len > cap) {
        kiln_error_set(err, EFBIG, "%s: answer over %zu bytes", what, cap);
        return NULL;
    }
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        kiln_error_set(err, EINVAL, "%s: bad JSON at line %d column %d: %s", what, je.line,
                       je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        kiln_error_set(err, EINVAL, "%s: answer is not a JSON object", what);
        return NULL;
    }
    return j;
}

const char *kiln_aws_json_str(const struct json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* Where the error code and message sit in the XML answers: S3's REST error, the query
 * protocol's (SNS, SQS, STS, IAM) ErrorResponse envelope, and the Errors list EC2 answers with
 * (which moto also uses for every query-protocol error). */
static const char *const xml_error_paths[][2] = {
    {"Error/Code", "Error/Message"},
    {"ErrorResponse/Error/Code", "ErrorResponse/Error/Message"},
    {"ErrorResponse/Errors/Error/Code", "ErrorResponse/Errors/Error/Message"},
    {"Response/Errors/Error/Code", "Response/Errors/Error/Message"},
};
#define N_XML_ERROR (sizeof(xml_error_paths) / sizeof(xml_error_paths[0]))

/* Code and message of an XML error body (the first envelope that has either); NULL when none
 * has or the body is not well-formed. */
static char *xml_error_code(const kiln_http_response_t *resp, char **message)
{
    kiln_aws_xml_field_t f[2 * N_XML_ERROR];
    char *code = NULL;

    for (size_t i = 0; i < 2 * N_XML_ERROR; i++)
        f[i] = (kiln_aws_xml_field_t){xml_error_paths[i / 2][i % 2], NULL};
    if (kiln_aws_xml_parse(resp->body, resp->body_len, f, 2 * N_XML_ERROR, NULL, "error", NULL) < 0)
        return NULL;
    for (size_t i = 0; i < N_XML_ERROR; i++)
        if (f[2 * i].value || f[2 * i + 1].value) {
            code = steal_pointer(&f[2 * i].value);
            *message = steal_pointer(&f[2 * i + 1].value);
            break;
        }
    kiln_aws_xml_fields_clear(f, 2 * N_XML_ERROR);
    return code;
}

/* Error code of a response body (XML <Code> or JSON __type / code), or NULL when the body names
 * none or does not parse. */
static char *error_code(const kiln_http_response_t *resp, char **message)
{
    char *code = NULL;
    const char *p, *end;
    *message = NULL;
    if (resp->body == NULL || resp->body_len == 0)
        return NULL;
    p = resp->body;
    end = p + resp->body_len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p < end && *p == '<')
        return xml_error_code(resp, message);
    if (resp->body[0] == '{') {
        json_t *j = kiln_aws_json_parse(resp->body, resp->body_len, resp->body_len, "error", NULL);
        const char *t, *m;
        if (j == NULL)
            return NULL;
        t = kiln_aws_json_str(j, "__type");
        if (t == NULL)
            t = kiln_aws_json_str(j, "code");
        m = kiln_aws_json_str(j, "message");
        if (m == NULL)
            m = kiln_aws_json_str(j, "Message");
        if (t) {
            const char *hash = strrchr(t, '#'); /* "com.amazonaws.sqs#QueueDoesNotExist" */
            code = kiln_xstrdup(hash ? hash + 1 : t);
        }
        if (m)
            *message = kiln_xstrdup(m);
        json_decref(j);
    }
    return code;
}

int kiln_aws_error_from_response(const kiln_http_response_t *resp, kiln_error_t *err,
                                 const char *what)
{
    _cleanup_free_ char *msg = NULL;
    _cleanup_free_ char *code = error_code(resp, &msg);
    kiln_error_set(err, 0, "%s: HTTP %ld%s%s%s%s", what, resp->status, code ? " " : "",
                   code ? code : "", msg ? ": " : "", msg ? msg : "");
    if (err) /* a code for callers, without strerror text in the message */
        err->code = resp->status == 403 ? EACCES : EIO;
    return -1;
}

static int retryable(const kiln_http_response_t *resp)
{
    _cleanup_free_ char *msg = NULL;
    _cleanup_free_ char *code = NULL;
    if (resp->status >= 500 || resp->status == 429)
        return 1;
    if (resp->status != 400)
        return 0;
    code = error_code(resp, &msg);
    return code && (strstr(code, "Throttl") || strcmp(code, "RequestTimeout") == 0 ||
                    strcmp(code, "SlowDown") == 0);
}

static void backoff(unsigned attempt)
{
    unsigned ms = 100u << (attempt < 5 ? attempt : 5);
    struct timespec ts;
    if (ms > 2000)
        ms = 2000;
    ms = ms / 2 + (unsigned)(rand() % (int)(ms / 2 + 1));
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* Signs and sends one attempt. */
static int send_once(kiln_aws_t *aws, kiln_http_t *http, const kiln_aws_call_t *call,
                     const char *payload_hash, kiln_http_response_t *resp, kiln_error_t *err)
{
    kiln_aws_creds_t creds = {0};
    kiln_sigv4_header_t sh[MAX_EXTRA_HEADERS + 4];
    const char *lines[MAX_EXTRA_HEADERS + 5];
    char *owned[MAX_EXTRA_HEADERS + 5] = {0};
    size_t ns = 0, nl = 0, no = 0;
    char amzdate[17];
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *url = NULL;
    kiln_sigv4_request_t sreq = {0};
    kiln_sigv4_scope_t scope = {0};
    kiln_sigv4_result_t sig = {0};
    kiln_http_request_t hreq = {0};
    int ret = -1;

    if (call->n_headers > MAX_EXTRA_HEADERS)
        return kiln_error_set(err, E2BIG, "too many headers");
    if (kiln_aws_cred_provider_get(aws->creds, &creds, err) < 0)
        return -1;
    scope.region = call->region ? call->region : aws->region;
    scope.service = call->service;
    scope.when = time(NULL);
    scope.s3_rules = call->s3;
    kiln_sigv4_amz_date(scope.when, amzdate);
    path = kiln_xasprintf("%s%s", call->endpoint->base_path, call->path);
    url = kiln_xasprintf("%s://%s%s%s%s", call->endpoint->scheme, call->endpoint->host, path,
                         call->query && call->query[0] ? "?" : "", call->query ? call->query : "");

    sh[ns++] = (kiln_sigv4_header_t){"host", call->endpoint->host};
    sh[ns++] = (kiln_sigv4_header_t){"x-amz-date", amzdate};
    if (creds.session_token)
        sh[ns++] = (kiln_sigv4_header_t){"x-amz-security-token", creds.session_token};
    if (call->s3)
        sh[ns++] = (kiln_sigv4_header_t){"x-amz-content-sha256", payload_hash};
    for (size_t i = 0; i < call->n_headers; i++) {
        const char *colon = strchr(call->headers[i], ':');
        if (colon == NULL)
            continue;
        owned[no] = kiln_xstrndup(call->headers[i], (size_t)(colon - call->headers[i]));
        sh[ns].name = owned[no++];
        sh[ns].value = colon + 1;
        ns++;
        lines[nl++] = call->headers[i];
    }
    sreq.method = call->method;
    sreq.path = path;
    sreq.query = call->query;
    sreq.headers = sh;
    sreq.n_headers = ns;
    sreq.payload_hash = payload_hash;
    if (kiln_sigv4_sign(&sreq, &scope, &creds, &sig, err) < 0)
        goto out;
    owned[no] = kiln_xasprintf("X-Amz-Date: %s", amzdate);
    lines[nl++] = owned[no++];
    if (creds.session_token) {
        owned[no] = kiln_xasprintf("X-Amz-Security-Token: %s", creds.session_token);
        lines[nl++] = owned[no++];
    }
    if (call->s3) {
        owned[no] = kiln_xasprintf("X-Amz-Content-Sha256: %s", payload_hash);
        lines[nl++] = owned[no++];
    }
    owned[no] = kiln_xasprintf("Authorization: %s", sig.authorization);
    lines[nl++] = owned[no++];
    hreq.method = call->method;
    hreq.url = url;
    hreq.headers = lines;
    hreq.n_headers = nl;
    hreq.body = call->body;
    hreq.body_len = call->body_len;
    hreq.body_fd = call->body ? -1 : call->body_fd;
    hreq.body_offset = call->body_offset;
    hreq.response_cap = call->response_cap;
    ret = kiln_http_do(http, &hreq, resp, err);
out:
    for (size_t i = 0; i < no; i++)
        free(owned[i]);
    kiln_sigv4_result_free(&sig);
    kiln_aws_creds_clear(&creds);
    return ret;
}

int kiln_aws_send(kiln_aws_t *aws, kiln_http_t *http, const kiln_aws_call_t *call,
                  kiln_http_response_t *resp, kiln_error_t *err)
{
    char hash[65];
    const char *payload_hash = call->payload_hash;
    unsigned attempts = call->max_attempts ? call->max_attempts : aws->max_attempts;

    if (payload_hash == NULL) {
        if (call->body != NULL || call->body_fd < 0) {
            kiln_sigv4_sha256_hex(call->body ? call->body : "", call->body ? call->body_len : 0,
                                  hash);
            payload_hash = hash;
        } else {
            payload_hash = KILN_SIGV4_UNSIGNED_PAYLOAD;
        }
    }
    if (http == NULL) {
        /* one-off call: a connection of its own */
        kiln_http_t *own = kiln_http_new();
        int ret = kiln_aws_send(aws, own, call, resp, err);
        kiln_http_free(own);
        return ret;
    }
    for (unsigned a = 0;; a++) {
        kiln_http_response_t r = {0};
        kiln_error_t local = {0};
        int ret = send_once(aws, http, call, payload_hash, &r, &local);
        if (ret < 0 && local.code == ENOENT) {
            /* no credentials: retrying will not help */
            if (err)
                *err = local;
            return -1;
        }
        if (ret == 0 && (!retryable(&r) || a + 1 >= attempts)) {
            *resp = r;
            return 0;
        }
        if (ret < 0 && a + 1 >= attempts) {
            if (err)
                *err = local;
            return kiln_error_prefix(err, "after %u attempts", attempts);
        }
        kiln_http_response_free(&r);
        backoff(a);
    }
}

int kiln_aws_post(kiln_aws_t *aws, const char *service, const char *region,
                  const kiln_aws_endpoint_t *ep, const char *const *headers, size_t n_headers,
                  const char *body, size_t response_cap, const char *what,
                  kiln_http_response_t *resp, kiln_error_t *err)
{
    kiln_aws_call_t call = {.service = service,
                            .region = region,
                            .endpoint = ep,
                            .method = "POST",
                            .path = "/",
                            .headers = headers,
                            .n_headers = n_headers,
                            .body = body,
                            .body_len = strlen(body),
                            .response_cap = response_cap};
    memset(resp, 0, sizeof(*resp));
    if (kiln_aws_send(aws, NULL, &call, resp, err) < 0)
        return kiln_error_prefix(err, "%s", what);
    if (resp->status != 200)
        return kiln_aws_error_from_response(resp, err, what);
    return 0;
}
