/* kiln — a small HTTP client over libcurl.
 *
 * One kiln_http_t is one reusable connection (keep-alive) for one thread.
 * Request bodies come from memory or from a range of a file descriptor;
 * response bodies are captured up to a cap. No retries here: callers know
 * which answers are worth retrying. Nothing is logged. */
#ifndef KILN_UTILS_HTTP_H
#define KILN_UTILS_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "utils/error.h"
#include "utils/netpolicy.h"

typedef struct kiln_http kiln_http_t;

typedef struct kiln_http_request {
    const char *method; /* "GET", "PUT", "POST", "HEAD", "DELETE" */
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t n_headers;
    const void *body; /* memory body, or NULL */
    size_t body_len;
    int body_fd; /* file body when body == NULL and body_fd >= 0 (read with pread) */
    off_t body_offset;
    size_t response_cap;  /* 0 = 1 MiB */
    long timeout_seconds; /* 0 = 300 */
    int follow_redirects; /* follow up to 10 redirects (http/https only) */
} kiln_http_request_t;

typedef struct kiln_http_response {
    long status;
    char *body; /* NUL-terminated, malloc'ed */
    size_t body_len;
    char *headers; /* raw header block of the final response */
} kiln_http_response_t;

/* A new connection handle; aborts on allocation failure only. */
kiln_http_t *kiln_http_new(void);
void kiln_http_free(kiln_http_t *h);

/* Checks every connection h opens from now on against policy (copied; NULL
 * removes it): the address actually connected to, after DNS and on every
 * redirect hop; the environment's proxies are then ignored. A refused
 * connection fails the request with err->code EACCES and a message naming
 * the URL (and the redirect that led there) and the address. */
void kiln_http_set_policy(kiln_http_t *h, const kiln_netpolicy_t *policy);

/* The policy's message for the last request's refused connection ("127.0.0.1
 * port 80: loopback address, refused by the address policy (…)"), or NULL
 * when none was refused. Valid until the next request. */
const char *kiln_http_refusal(const kiln_http_t *h);

/* Sends one request. Returns 0 when an HTTP answer arrived (any status), -1
 * with err set on a transport failure (connect, TLS, timeout, body too big);
 * err->code is then EIO, ETIMEDOUT, ENOBUFS or EACCES (refused by the
 * policy). *resp is written on success. */
int kiln_http_do(kiln_http_t *h, const kiln_http_request_t *req, kiln_http_response_t *resp,
                 kiln_error_t *err);

void kiln_http_response_free(kiln_http_response_t *resp);

/* Value of response header `name` (case-insensitive), malloc'ed, or NULL. */
char *kiln_http_response_header(const kiln_http_response_t *resp, const char *name);

#endif
