/* kiln server — the HTTP layer over libmicrohttpd (a thread per connection, so a
 * following log response may block waiting for new lines). It reads request bodies
 * (capped: 413), checks bearer tokens (401) and dispatches to the routes. */
#ifndef KILN_SERVER_HTTP_H
#define KILN_SERVER_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "src/server/server.h"
#include "utils/error.h"

typedef struct kiln_http kiln_http_t;

typedef struct kiln_hook_body kiln_hook_body_t;

typedef struct kiln_http_req {
    struct MHD_Connection *conn;
    kiln_server_t *srv;
    const char *method;
    const char *path;
    const char *body; /* NUL-terminated; NULL for an upload spooled to a file */
    size_t body_len;
    const char *upload_path; /* POST /v1/contexts: the body in a temp file */
    kiln_hook_body_t *hook;  /* webhooks: signatures computed as the body arrived */
    /* the authenticated tenant's name (config-owned: kiln_config_tenant_named gives its
     * settings): its bearer token's, "default" on a --no-auth server; on open routes the
     * token's when one is given, else NULL */
    const char *tenant;
    uint64_t *sent; /* a streamed answer adds the body bytes it sends (access log) */
} kiln_http_req_t;

typedef struct kiln_http_resp {
    unsigned int status;
    const char *content_type;
    char *body; /* malloc'ed */
    size_t len;
    struct MHD_Response *custom; /* a streaming response, sent as is (len: its size if known) */
    const char *tenant; /* the tenant a route found for an open route (a webhook's project) */
    char *csp;          /* a Content-Security-Policy header (malloc'ed) or NULL */
} kiln_http_resp_t;

/* Starts listening on "HOST:PORT". */
int kiln_http_start(kiln_server_t *srv, const char *listen, kiln_http_t **out, kiln_error_t *err);
/* Stops accepting and closes the listener (open connections are finished first). */
void kiln_http_stop(kiln_http_t *h);

const char *kiln_http_header(const kiln_http_req_t *r, const char *name);
const char *kiln_http_query(const kiln_http_req_t *r, const char *name);

/* Sets a JSON response (takes the reference to o). */
void kiln_http_json(kiln_http_resp_t *resp, unsigned int status, json_t *o);
/* Sets a JSON response from text already made (malloc'ed, len bytes; taken). */
void kiln_http_json_text(kiln_http_resp_t *resp, unsigned int status, char *text, size_t len);
/* Sets {"error": message} with the status. */
void kiln_http_error(kiln_http_resp_t *resp, unsigned int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The routes (routes_*.c). Each fills resp. */
void kiln_routes_builds(const kiln_http_req_t *r, kiln_http_resp_t *resp);
void kiln_routes_hooks(const kiln_http_req_t *r, kiln_http_resp_t *resp);
void kiln_routes_misc(const kiln_http_req_t *r, kiln_http_resp_t *resp);

/* Webhooks, while the headers are in and before any body is read: the state that checks the
 * body's signature as it arrives, or NULL with resp filled (401) when no configured project
 * could accept the request (a GitLab token no project has, a GitHub request without a
 * well-formed X-Hub-Signature-256 or with no project secret). */
kiln_hook_body_t *kiln_routes_hook_start(const kiln_http_req_t *r, kiln_http_resp_t *resp);
void kiln_routes_hook_feed(kiln_hook_body_t *h, const void *data, size_t len);
void kiln_routes_hook_free(kiln_hook_body_t *h);

/* Queues a validated request as a new build of tenant (a name; *status 202) recording who asked for
 * it (audit, borrowed, may be NULL); *id_out is malloc'ed. When dedupe_key (a webhook delivery id
 * or an idempotency key, see audit.h) already started a build, nothing is queued: *id_out is that
 * build and *status 200. Used by the API and the webhooks. A body naming a "tenant" itself is
 * refused (400): the tenant comes from the token or the webhook project only. */
int kiln_routes_enqueue(kiln_server_t *s, const char *tenant, json_t *body, json_t *audit,
                        const char *dedupe_key, char **id_out, unsigned int *status,
                        kiln_error_t *err);
/* The JSON answered for a queued build. */
json_t *kiln_routes_queued_json(const char *id);
/* Queues the request body (consumed, with audit) and answers 202 with the build, 200 with
 * the build a replayed dedupe_key started ("replayed": true), or the error. */
void kiln_routes_submit(kiln_server_t *s, const char *tenant, json_t *body, json_t *audit,
                        const char *dedupe_key, kiln_http_resp_t *resp);

#endif
