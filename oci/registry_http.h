/* kiln — the registry client's internals shared by registry.c, registry_conn.c,
 * registry_auth.c, registry_pull.c and registry_push.c (not a public API: use
 * oci/registry.h). */
#ifndef KILN_OCI_REGISTRY_HTTP_H
#define KILN_OCI_REGISTRY_HTTP_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>

#include "oci/registry.h"
#include "utils/buf.h"
#include "utils/curlguard.h"

/* A cached Authorization header (host|scope). */
typedef struct kiln_reg_token {
    struct kiln_reg_token *next;
    char *key; /* host|scope */
    char *header;
    time_t expires;
} kiln_reg_token_t;

/* Whether a host answered over plain http (insecure registries). */
typedef struct kiln_reg_scheme {
    struct kiln_reg_scheme *next;
    char *host;
    int http; /* 1 = plain http */
} kiln_reg_scheme_t;

/* Credentials looked up for a registry (found or not), kept for the client's life. */
typedef struct kiln_reg_cred {
    struct kiln_reg_cred *next;
    char *registry;
    int found;
    kiln_cred_t c;
} kiln_reg_cred_t;

/* Where one repository is reached: a mirror or the source registry. */
typedef struct kiln_reg_endpoint {
    char *registry; /* the name credentials are looked up under ("docker.io", "h:5000") */
    char *host;     /* host[:port] contacted */
    char *prefix;   /* path prefix of a mirror ("" or "dockerhub/") */
    int insecure;   /* plain http allowed / TLS unverified */
    int is_mirror;
} kiln_reg_endpoint_t;

/* A repository on an endpoint, with its auth state. One per thread of work
 * (the token cache behind it is shared and locked). */
typedef struct kiln_reg_repo {
    kiln_registry_t *r;
    const kiln_reg_endpoint_t *ep;
    char *repository; /* prefix + repository */
    char *scope;      /* "repository:NAME:pull[,push]" (+ extra mount scopes) */
    char *auth;       /* current "Authorization: …" header, or NULL */
    int used_cached;  /* auth came from the cache (a 401 may mean it expired) */
} kiln_reg_repo_t;

/* One HTTP exchange. */
typedef struct kiln_reg_req {
    const char *method;
    char *url; /* absolute */
    const char *accept;
    const char *content_type;
    /* request body: memory, or fd range */
    const char *body;
    size_t body_len;
    int body_fd;
    uint64_t body_off, body_size;
    int has_body;
    /* response body: into resp (capped) unless sink is set */
    size_t resp_cap;
    /* 0 taken, -1 failed (err), 1: pause the transfer (multi handle only: it gets the same
     * bytes again once resumed) */
    int (*sink)(void *ud, const void *buf, size_t len, long status, kiln_error_t *err);
    void *sink_ud;
    const char *range;        /* "Range: bytes=N-" header value or NULL */
    const char *extra_header; /* one more "Name: value" header, or NULL */
    int no_retry;             /* a non-idempotent step: the caller restarts it */
    /* response */
    long status;
    kiln_buf_t resp;
    char *location;
    char *content_type_resp;
    char *docker_digest;
    char *www_auth;
    char *resp_range;
    long retry_after;
    uint64_t chunk_min;
    int curl_code; /* CURLcode of the last attempt */
    /* private */
    struct curl_slist *hdrs;
    kiln_registry_t *tls_r;
    const char *tls_host;
    uint64_t sent;
    kiln_error_t sink_err;
    int sink_failed;
    kiln_curlguard_t guard; /* the registry's address policy on this exchange */
    char tls_problem[512];  /* why the TLS set-up refused (a client certificate), or "" */
    char *errbuf;           /* curl's error buffer for this exchange */
} kiln_reg_req_t;

struct kiln_registry {
    kiln_registry_opts_t o;
    char **insecure;
    char **mirror_src; /* parallel arrays: source registry → mirror spec */
    char **mirror_dst;
    size_t n_mirrors;
    char *ca_file;
    char *certs_dir;
    pthread_mutex_t lock; /* token cache, scheme cache, credential cache */
    struct kiln_reg_token *tokens;
    struct kiln_reg_scheme *schemes;
    struct kiln_reg_cred *creds;
    kiln_netpolicy_t *policy; /* every connection's addresses (never NULL) */
};

void kiln_reg_req_init(kiln_reg_req_t *q, const char *method, char *url);
void kiln_reg_req_free(kiln_reg_req_t *q);

/* Performs q on handle h for repo (auth, retries). Returns 0 when an HTTP
 * answer came back (any status: the caller judges q->status), <0 when none
 * did after the retry budget. A 401 after authenticating, and 5xx/429 after
 * the budget, come back as status for the caller's message. */
int kiln_reg_do(kiln_reg_repo_t *repo, CURL *h, kiln_reg_req_t *q, kiln_error_t *err);

/* Fills err from an unexpected answer: "<what>: HTTP <status> <registry error code: message>". */
int kiln_reg_fail(kiln_reg_req_t *q, kiln_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Endpoints for a registry name: its mirrors (in order), then itself. */
int kiln_reg_endpoints(kiln_registry_t *r, const char *registry, kiln_reg_endpoint_t **out,
                       size_t *n, kiln_error_t *err);
void kiln_reg_endpoints_free(kiln_reg_endpoint_t *eps, size_t n);

/* Initialises repo for ep/repository with the given actions ("pull" or "pull,push"). */
void kiln_reg_repo_init(kiln_reg_repo_t *repo, kiln_registry_t *r, const kiln_reg_endpoint_t *ep,
                        const char *repository, const char *actions, const char *mount_from_repo);
void kiln_reg_repo_clear(kiln_reg_repo_t *repo);

/* "<scheme>://<host>/v2/<repository>/<rest>", malloc'ed. */
char *kiln_reg_url(kiln_reg_repo_t *repo, CURL *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A new easy handle (caller cleans up). */
CURL *kiln_reg_handle(void);

/* Emits a progress event when a callback is set. */
void kiln_reg_event(kiln_registry_t *r, kiln_registry_ev_kind_t kind, const char *ref,
                    const char *digest, const char *host, const char *msg, uint64_t size,
                    uint64_t done);

/* The Accept header value for manifests. */
extern const char kiln_reg_manifest_accept[];

/* Runs fn(i, ud) for i in [0, n) on up to `parallel` threads; returns the
 * first failure (its message in err). */
int kiln_reg_parallel(size_t n, unsigned parallel,
                      int (*fn)(size_t i, void *ud, CURL *h, kiln_error_t *err), void *ud,
                      kiln_error_t *err);

/* GETs a manifest by tag or digest into memory, verifying its digest against
 * `want` (when not NULL) and the Docker-Content-Digest header. */
int kiln_reg_fetch_manifest(kiln_reg_repo_t *repo, CURL *h, const char *tag_or_digest,
                            const kiln_digest_t *want, char **body, size_t *len,
                            char media_type[256], kiln_digest_t *got, kiln_error_t *err);

/* kiln_reg_fetch_manifest over the endpoints of ref (mirrors first, falling
 * back on any failure); on success *repo is set up on the endpoint that
 * answered (the caller clears it and frees *eps with kiln_reg_endpoints_free). */
int kiln_reg_resolve(kiln_registry_t *r, CURL *h, const kiln_reference_t *ref,
                     kiln_reg_endpoint_t **eps, size_t *neps, kiln_reg_repo_t *repo, char **body,
                     size_t *len, char media_type[256], kiln_digest_t *got, kiln_error_t *err);

/* Sleeps the backoff for retry number `attempt` (exponential, jittered,
 * at least retry_after seconds when >= 0, capped by the options). */
void kiln_reg_backoff(kiln_registry_t *r, int attempt, long retry_after);

/* The same delay, in milliseconds, without sleeping. */
uint64_t kiln_reg_backoff_ms(kiln_registry_t *r, int attempt, long retry_after);

/* For transfers driven by a curl multi handle: kiln_reg_setup prepares h for
 * q with repo's current Authorization (no retries, no auth handshake);
 * kiln_reg_finish records the result once the transfer is done. */
void kiln_reg_setup(kiln_reg_repo_t *repo, CURL *h, kiln_reg_req_t *q, char *errbuf);
void kiln_reg_finish(CURL *h, kiln_reg_req_t *q, int cc);

/* True for curl errors worth retrying (connection reset, timeout, stall…). */
int kiln_reg_retryable_curl(int cc);

/* One exchange of q with the endpoint on h (no retries): with the Authorization header auth,
 * or Basic credentials basic_user/basic_pass (a token request); errbuf gets curl's text. */
CURLcode kiln_reg_perform(kiln_registry_t *r, const kiln_reg_endpoint_t *ep, CURL *h,
                          kiln_reg_req_t *q, const char *auth, const char *basic_user,
                          const char *basic_pass, char *errbuf);

/* Reacts to a 401 answered with the WWW-Authenticate header www: sets repo->auth to the
 * Authorization header for the challenge (Basic from the credentials, or a Bearer token
 * fetched from the realm and cached; force drops a cached token first). -1 with err naming
 * the host and what would allow it. */
int kiln_reg_authenticate(kiln_reg_repo_t *repo, CURL *h, const char *www, int force,
                          kiln_error_t *err);

/* True when host is one of the client's insecure registries (plain http or unverified TLS
 * allowed). */
int kiln_reg_host_insecure(kiln_registry_t *r, const char *host);

/* Whether to talk plain http to the endpoint: only an insecure host that does not speak TLS
 * (probed once on h, remembered for the client's life). */
int kiln_reg_host_uses_http(kiln_registry_t *r, const kiln_reg_endpoint_t *ep, CURL *h);

/* The cached Authorization header for repo's host and scope (malloc'ed), or NULL. */
char *kiln_reg_cached_auth(kiln_reg_repo_t *repo);

#endif
