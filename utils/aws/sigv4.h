/* kiln — AWS Signature Version 4.
 *
 * The signer works on the request as it goes on the wire: `path` is the path
 * exactly as sent (already percent-encoded by the caller, see
 * kiln_sigv4_uri_encode), `query` the raw query string without '?'.
 *
 *   - generic services: the path is normalised (dot segments, duplicate
 *     slashes) and encoded once more for the canonical request, as the
 *     AWS SDKs do;
 *   - S3 (`s3_rules`): the path is used as is (no normalisation, no double
 *     encoding) and x-amz-content-sha256 carries the payload hash or
 *     UNSIGNED-PAYLOAD.
 *
 * Signing keys are derived once per (key id, secret, date, region, service)
 * and cached in a small process-wide table. */
#ifndef KILN_UTILS_AWS_SIGV4_H
#define KILN_UTILS_AWS_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "utils/error.h"

#define KILN_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define KILN_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* The secret material a request is signed with. */
typedef struct kiln_aws_creds {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when the credentials are long-term */
    time_t expiration;   /* 0 when they never expire */
    const char *source;  /* static string naming where they came from */
} kiln_aws_creds_t;

/* Frees the strings of creds (wiping the secret) and zeroes it. */
void kiln_aws_creds_clear(kiln_aws_creds_t *creds);
/* Deep copy of src into dst. */
void kiln_aws_creds_copy(kiln_aws_creds_t *dst, const kiln_aws_creds_t *src);

typedef struct kiln_sigv4_header {
    const char *name;
    const char *value;
} kiln_sigv4_header_t;

typedef struct kiln_sigv4_request {
    const char *method;
    const char *path;  /* wire path, percent-encoded, starting with '/' */
    const char *query; /* raw query without '?', or NULL */
    /* Every header that is signed, including host and x-amz-date. Names are
     * case-insensitive; repeated names are joined with ',' in order. */
    const kiln_sigv4_header_t *headers;
    size_t n_headers;
    const char *payload_hash; /* lower-case hex SHA-256 or UNSIGNED-PAYLOAD */
} kiln_sigv4_request_t;

typedef struct kiln_sigv4_scope {
    const char *region;
    const char *service;
    time_t when;
    int s3_rules; /* no path normalisation, no double encoding */
} kiln_sigv4_scope_t;

/* Everything the signature was built from; all strings malloc'ed. */
typedef struct kiln_sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char *signature;      /* lower-case hex */
    char *signed_headers; /* "host;x-amz-date" */
    char *authorization;  /* full Authorization header value */
} kiln_sigv4_result_t;

void kiln_sigv4_result_free(kiln_sigv4_result_t *r);

/* Signs `req` with exactly the headers it lists. Fills *out on success;
 * returns -1 (err set) when the request is malformed (no method, a path not
 * starting with '/', a header without a name). */
int kiln_sigv4_sign(const kiln_sigv4_request_t *req, const kiln_sigv4_scope_t *scope,
                    const kiln_aws_creds_t *creds, kiln_sigv4_result_t *out, kiln_error_t *err);

/* Builds a presigned URL query: returns in *query_out the full query string
 * (the request's own query plus X-Amz-Algorithm, -Credential, -Date, -Expires,
 * -SignedHeaders, -Security-Token and finally -Signature). Only the headers in
 * `req` (normally just host) are signed; the payload is UNSIGNED-PAYLOAD unless
 * req->payload_hash is set. Returns -1 on malformed input. */
int kiln_sigv4_presign(const kiln_sigv4_request_t *req, const kiln_sigv4_scope_t *scope,
                       const kiln_aws_creds_t *creds, unsigned expires_seconds, char **query_out,
                       kiln_error_t *err);

/* Percent-encodes s as SigV4 wants it (RFC 3986 unreserved characters kept;
 * '/' kept too when keep_slash). Returns a malloc'ed string. */
char *kiln_sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* Formats `when` as 20150830T123600Z into buf (at least 17 bytes). */
void kiln_sigv4_amz_date(time_t when, char buf[17]);

/* Lower-case hex SHA-256 of data into hex (65 bytes). */
void kiln_sigv4_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
