/* kiln — one signed AWS API call with retries.
 *
 * kiln_aws_send() adds Host, X-Amz-Date, X-Amz-Security-Token (temporary
 * credentials), X-Amz-Content-Sha256 (S3) and Authorization, signs every
 * header the caller gives, and retries transport failures, 5xx, 429 and
 * throttling answers with exponential backoff (AWS_MAX_ATTEMPTS, default 4),
 * signing each attempt afresh. */
#ifndef KILN_UTILS_AWS_CLIENT_H
#define KILN_UTILS_AWS_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "utils/aws/credentials.h"
#include "utils/aws/endpoint.h"
#include "utils/error.h"
#include "utils/http.h"

typedef struct kiln_aws {
    char *region;
    kiln_aws_cred_provider_t *creds;
    unsigned max_attempts;
} kiln_aws_t;

/* A context for region (NULL: resolved from env/config). */
kiln_aws_t *kiln_aws_new(const char *region);
void kiln_aws_free(kiln_aws_t *aws);

typedef struct kiln_aws_call {
    const char *service; /* signing name: "s3", "sqs", "sns", "ecr" */
    const char *region;  /* NULL: aws->region */
    const kiln_aws_endpoint_t *endpoint;
    const char *method;
    const char *path;           /* wire path (percent-encoded) after the endpoint's base path */
    const char *query;          /* raw query or NULL */
    const char *const *headers; /* extra "Name: value" lines, all signed */
    size_t n_headers;
    const void *body; /* memory body, or NULL */
    size_t body_len;
    int body_fd; /* file body when body is NULL and body_fd >= 0 */
    off_t body_offset;
    const char *payload_hash; /* hex SHA-256; NULL: computed for memory bodies,
                                 UNSIGNED-PAYLOAD for file bodies */
    int s3;                   /* S3 signing rules */
    size_t response_cap;
    unsigned max_attempts; /* 0: aws->max_attempts */
} kiln_aws_call_t;

/* Sends the call. Returns 0 once any HTTP answer is final (2xx, 3xx, a 4xx
 * that is not throttling, or a 5xx after the last attempt): the caller reads
 * resp->status. http may be NULL for a one-off call. Returns -1 when no credentials were found or
 * the transport failed on every attempt. */
int kiln_aws_send(kiln_aws_t *aws, kiln_http_t *http, const kiln_aws_call_t *call,
                  kiln_http_response_t *resp, kiln_error_t *err);

/* POSTs body to "/" of ep (the JSON and query protocols of SQS, SNS, ECR),
 * signed for service in region (NULL: aws->region). Returns 0 on a 200
 * answer, -1 with err "<what>: ..." on a transport failure or any other
 * status; *resp is filled whenever an answer arrived (also on -1: callers
 * may look at the error code) and must be freed. */
int kiln_aws_post(kiln_aws_t *aws, const char *service, const char *region,
                  const kiln_aws_endpoint_t *ep, const char *const *headers, size_t n_headers,
                  const char *body, size_t response_cap, const char *what,
                  kiln_http_response_t *resp, kiln_error_t *err);

/* Fills err with "<what>: HTTP <status> <Code>: <Message>" taken from an XML
 * (S3 Error, query-protocol ErrorResponse) or a JSON-protocol error body. Returns -1. */
int kiln_aws_error_from_response(const kiln_http_response_t *resp, kiln_error_t *err,
                                 const char *what);

/* Parses a JSON answer (object) of at most cap bytes; NULL with err set
 * (naming `what`) on bad JSON. Caller json_decref()s. */
struct json_t;
struct json_t *kiln_aws_json_parse(const char *body, size_t len, size_t cap, const char *what,
                                   kiln_error_t *err);
/* String member `key` of object j, or NULL. */
const char *kiln_aws_json_str(const struct json_t *j, const char *key);

#endif
