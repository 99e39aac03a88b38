/* kiln — registry client: options, mirrors, endpoints, TLS, auth and the
 * retrying HTTP transport over libcurl. Pull and push live in
 * registry_pull.c and registry_push.c. */
#include "oci/registry.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "oci/registry_http.h"
#include "oci/www_auth.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define DEFAULT_CERTS_DIR "/etc/docker/certs.d"
#define DEFAULT_CONFIG "/etc/kiln/registries.json"
#define ERROR_BODY_CAP (64u * 1024)
#define TOKEN_BODY_CAP (1024u * 1024)
#define RETRY_AFTER_MAX_S 60

const char kiln_reg_manifest_accept[] = KILN_MT_OCI_MANIFEST
    ", " KILN_MT_OCI_INDEX ", " KILN_MT_DOCKER_MANIFEST ", " KILN_MT_DOCKER_LIST;

typedef struct kiln_reg_token {
    struct kiln_reg_token *next;
    char *key; /* host|scope */
    char *header;
    time_t expires;
} kiln_reg_token_t;

typedef struct kiln_reg_scheme {
    struct kiln_reg_scheme *next;
    char *host;
    int http; /* 1 = plain http */
} kiln_reg_scheme_t;

typedef struct kiln_reg_cred {
    struct kiln_reg_cred *next;
    char *registry;
    int found;
    kiln_cred_t c;
} kiln_reg_cred_t;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- options ---------------------------------------------------------- */

static long env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    char *end;
    long n;
    if (v == NULL || *v == '\0')
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        return def;
    return n;
}

void kiln_registry_opts_init(kiln_registry_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->retries = (int)env_long("KILN_REGISTRY_RETRIES", 4, 0, 100);
    o->backoff_ms = (unsigned)env_long("KILN_REGISTRY_BACKOFF_MS", 500, 0, 600000);
    o->max_backoff_ms = (unsigned)env_long("KILN_REGISTRY_MAX_BACKOFF_MS", 20000, 0, 3600000);
    o->stall_timeout_s = (unsigned)env_long("KILN_REGISTRY_STALL_TIMEOUT", 60, 1, 86400);
    o->connect_timeout_s = (unsigned)env_long("KILN_REGISTRY_CONNECT_TIMEOUT", 15, 1, 3600);
    o->parallel = (unsigned)env_long("KILN_REGISTRY_PARALLEL", 4, 1, 64);
    o->chunk_size = (uint64_t)env_long("KILN_REGISTRY_CHUNK_SIZE", 32L << 20, 5L << 20, 1L << 30);
    o->monolithic_max = (uint64_t)env_long("KILN_REGISTRY_MONOLITHIC_MAX", 5L << 20, 0, 1L << 30);
    o->certs_dir = getenv("KILN_CERTS_DIR");
}

static char **strv_dup(const char *const *v)
{
    size_t n = 0;
    char **out;
    while (v != NULL && v[n] != NULL)
        n++;
    out = kiln_xzalloc((n + 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = kiln_xstrdup(v[i]);
    return out;
}

static void strv_push(char ***v, const char *s)
{
    size_t n = 0;
    while ((*v)[n] != NULL)
        n++;
    *v = kiln_xrealloc(*v, (n + 2) * sizeof(char *));
    (*v)[n] = kiln_xstrdup(s);
    (*v)[n + 1] = NULL;
}

/* Adds "SRC=HOST[/PREFIX]" to the mirror table. */
static int add_mirror(kiln_registry_t *r, const char *src, const char *dst, kiln_error_t *err)
{
    if (*src == '\0' || *dst == '\0' || strchr(src, '/') != NULL || strstr(dst, "://") != NULL)
        return kiln_error_set(err, EINVAL,
                              "invalid registry mirror '%s=%s' (want SOURCE=HOST[:PORT][/PREFIX])",
                              src, dst);
    r->mirror_src = kiln_xrealloc(r->mirror_src, (r->n_mirrors + 1) * sizeof(char *));
    r->mirror_dst = kiln_xrealloc(r->mirror_dst, (r->n_mirrors + 1) * sizeof(char *));
    /* "index.docker.io" and friends are docker.io */
    if (strcmp(src, "index.docker.io") == 0 || strcmp(src, "registry-1.docker.io") == 0)
        src = "docker.io";
    r->mirror_src[r->n_mirrors] = kiln_xstrdup(src);
    r->mirror_dst[r->n_mirrors] = kiln_xstrdup(dst);
    r->n_mirrors++;
    return 0;
}

/* Reads the registries config file (see registry.h). A missing default file is fine. */
static int load_config_file(kiln_registry_t *r, const char *path, int explicit_path,
                            kiln_error_t *err)
{
    _cleanup_free_ char *buf = NULL;
    _cleanup_json_ json_t *j = NULL;
    size_t len;
    json_t *m, *v;
    const char *k;

    if (kiln_fs_read_file(path, 1024 * 1024, &buf, &len, err) < 0) {
        if (!explicit_path && err != NULL && err->code == ENOENT) {
            kiln_error_clear(err);
            return 0;
        }
        return kiln_error_prefix(err, "registries config");
    }
    if (kiln_json_loadb(buf, len, 1024 * 1024, path, &j, err) < 0)
        return -1;
    if (!json_is_object(j))
        return kiln_error_set(err, EINVAL, "%s: not a JSON object", path);
    m = json_object_get(j, "mirrors");
    if (m != NULL && !json_is_object(m))
        return kiln_error_set(err, EINVAL, "%s: \"mirrors\" must be an object", path);
    json_object_foreach(m, k, v)
    {
        size_t i;
        json_t *e;
        if (!json_is_array(v))
            return kiln_error_set(err, EINVAL, "%s: mirrors[\"%s\"] must be an array of hosts",
                                  path, k);
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return kiln_error_set(err, EINVAL, "%s: mirrors[\"%s\"][%zu] must be a string",
                                      path, k, i);
            if (add_mirror(r, k, json_string_value(e), err) < 0)
                return kiln_error_prefix(err, "%s", path);
        }
    }
    m = json_object_get(j, "insecure");
    if (m != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(m))
            return kiln_error_set(err, EINVAL, "%s: \"insecure\" must be an array", path);
        json_array_foreach(m, i, e)
        {
            if (!json_is_string(e))
                return kiln_error_set(err, EINVAL, "%s: insecure[%zu] must be a string", path, i);
            strv_push(&r->insecure, json_string_value(e));
        }
    }
    k = kiln_json_get_string(j, "ca");
    if (k != NULL && r->ca_file == NULL)
        r->ca_file = kiln_xstrdup(k);
    return 0;
}

int kiln_registry_new(const kiln_registry_opts_t *opts, kiln_registry_t **out, kiln_error_t *err)
{
    kiln_registry_t *r;
    const char *cfg;
    int explicit_cfg = 1;

    pthread_once(&curl_once, curl_init_once);
    r = kiln_xzalloc(sizeof(*r));
    r->o = *opts;
    r->o.insecure = NULL;
    r->o.mirrors = NULL;
    r->o.ca_file = NULL;
    r->o.certs_dir = NULL;
    r->o.config_file = NULL;
    r->o.policy = NULL;
    r->policy = opts->policy ? kiln_netpolicy_dup(opts->policy)
                             : kiln_netpolicy_new(KILN_NETPOLICY_NO_LINK_LOCAL);
    if (r->o.parallel == 0)
        r->o.parallel = 1;
    if (r->o.chunk_size < (5u << 20))
        r->o.chunk_size = 5u << 20;
    pthread_mutex_init(&r->lock, NULL);
    r->insecure = strv_dup(opts->insecure);
    r->ca_file = opts->ca_file ? kiln_xstrdup(opts->ca_file) : NULL;
    r->certs_dir = kiln_xstrdup(opts->certs_dir ? opts->certs_dir : DEFAULT_CERTS_DIR);
    for (size_t i = 0; opts->mirrors != NULL && opts->mirrors[i] != NULL; i++) {
        _cleanup_free_ char *spec = kiln_xstrdup(opts->mirrors[i]);
        char *eq = strchr(spec, '=');
        if (eq == NULL) {
            kiln_registry_free(r);
            return kiln_error_set(err, EINVAL,
                                  "invalid registry mirror '%s' (want SOURCE=HOST[:PORT][/PREFIX])",
                                  opts->mirrors[i]);
        }
        *eq = '\0';
        if (add_mirror(r, spec, eq + 1, err) < 0) {
            kiln_registry_free(r);
            return -1;
        }
    }
    cfg = opts->config_file;
    if (cfg == NULL)
        cfg = getenv("KILN_REGISTRIES_CONFIG");
    if (cfg == NULL || *cfg == '\0') {
        cfg = DEFAULT_CONFIG;
        explicit_cfg = 0;
    }
    if (load_config_file(r, cfg, explicit_cfg, err) < 0) {
        kiln_registry_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void kiln_registry_free(kiln_registry_t *r)
{
    if (r == NULL)
        return;
    kiln_netpolicy_free(r->policy);
    kiln_strv_free(r->insecure);
    for (size_t i = 0; i < r->n_mirrors; i++) {
        free(r->mirror_src[i]);
        free(r->mirror_dst[i]);
    }
    free(r->mirror_src);
    free(r->mirror_dst);
    free(r->ca_file);
    free(r->certs_dir);
    while (r->tokens) {
        kiln_reg_token_t *t = r->tokens;
        r->tokens = t->next;
        explicit_bzero(t->header, strlen(t->header));
        free(t->header);
        free(t->key);
        free(t);
    }
    while (r->schemes) {
        kiln_reg_scheme_t *s = r->schemes;
        r->schemes = s->next;
        free(s->host);
        free(s);
    }
    while (r->creds) {
        kiln_reg_cred_t *c = r->creds;
        r->creds = c->next;
        kiln_cred_clear(&c->c);
        free(c->registry);
        free(c);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int kiln_registry_set_cred_provider(const char *name, kiln_cred_provider_fn fn, void *ud)
{
    return kiln_docker_config_set_provider(name, fn, ud);
}

void kiln_reg_event(kiln_registry_t *r, kiln_registry_ev_kind_t kind, const char *ref,
                    const char *digest, const char *host, const char *msg, uint64_t size,
                    uint64_t done)
{
    kiln_registry_event_t ev = {kind, ref, digest, host, msg, size, done};
    if (r->o.progress == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->o.progress(r->o.progress_ud, &ev);
    pthread_mutex_unlock(&r->lock);
}

/* --- endpoints -------------------------------------------------------- */

static int host_is_insecure(kiln_registry_t *r, const char *host)
{
    for (size_t i = 0; r->insecure[i] != NULL; i++) {
        const char *h = r->insecure[i];
        size_t hl = strlen(h);
        if (strcmp(h, host) == 0)
            return 1;
        /* "HOST" (no port) covers every port of that host */
        if (strchr(h, ':') == NULL && strncmp(host, h, hl) == 0 && host[hl] == ':')
            return 1;
    }
    return 0;
}

static void endpoint_set(kiln_reg_endpoint_t *ep, kiln_registry_t *r, const char *registry,
                         const char *hostpath, int is_mirror)
{
    const char *slash = strchr(hostpath, '/');
    ep->host = slash ? kiln_xstrndup(hostpath, (size_t)(slash - hostpath)) : kiln_xstrdup(hostpath);
    if (slash != NULL && slash[1] != '\0') {
        size_t pl = strlen(slash + 1);
        while (pl > 0 && slash[1 + pl - 1] == '/')
            pl--;
        ep->prefix = kiln_xasprintf("%.*s/", (int)pl, slash + 1);
    } else {
        ep->prefix = kiln_xstrdup("");
    }
    ep->registry = kiln_xstrdup(is_mirror ? ep->host : registry);
    ep->insecure = host_is_insecure(r, ep->host);
    ep->is_mirror = is_mirror;
}

int kiln_reg_endpoints(kiln_registry_t *r, const char *registry, kiln_reg_endpoint_t **out,
                       size_t *n, kiln_error_t *err)
{
    kiln_reg_endpoint_t *eps = kiln_xzalloc((r->n_mirrors + 1) * sizeof(*eps));
    size_t k = 0;
    for (size_t i = 0; i < r->n_mirrors; i++)
        if (strcmp(r->mirror_src[i], registry) == 0)
            endpoint_set(&eps[k++], r, registry, r->mirror_dst[i], 1);
    endpoint_set(&eps[k++], r, registry, kiln_reference_endpoint(registry), 0);
    /* credentials for the source are looked up under its name (docker.io) */
    free(eps[k - 1].registry);
    eps[k - 1].registry = kiln_xstrdup(registry);
    *out = eps;
    *n = k;
    return 0;
}

void kiln_reg_endpoints_free(kiln_reg_endpoint_t *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(eps[i].registry);
        free(eps[i].host);
        free(eps[i].prefix);
    }
    free(eps);
}

void kiln_reg_repo_init(kiln_reg_repo_t *repo, kiln_registry_t *r, const kiln_reg_endpoint_t *ep,
                        const char *repository, const char *actions, const char *mount_from_repo)
{
    memset(repo, 0, sizeof(*repo));
    repo->r = r;
    repo->ep = ep;
    repo->repository = kiln_xasprintf("%s%s", ep->prefix, repository);
    if (mount_from_repo != NULL)
        repo->scope = kiln_xasprintf("repository:%s:%s repository:%s:pull", repo->repository,
                                     actions, mount_from_repo);
    else
        repo->scope = kiln_xasprintf("repository:%s:%s", repo->repository, actions);
}

void kiln_reg_repo_clear(kiln_reg_repo_t *repo)
{
    free(repo->repository);
    free(repo->scope);
    if (repo->auth) {
        explicit_bzero(repo->auth, strlen(repo->auth));
        free(repo->auth);
    }
    memset(repo, 0, sizeof(*repo));
}

CURL *kiln_reg_handle(void)
{
    CURL *h;
    pthread_once(&curl_once, curl_init_once);
    h = curl_easy_init();
    if (h == NULL)
        abort(); /* allocation failure, as kiln_xmalloc */
    return h;
}

/* --- TLS ------------------------------------------------------------- */

static void add_ca_file(X509_STORE *st, const char *path)
{
    FILE *f = fopen(path, "re");
    X509 *x;
    if (f == NULL)
        return;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(st, x);
        X509_free(x);
    }
    fclose(f);
}

/* Adds the extra CAs (--registry-ca, certs.d/HOST/ca.crt) to the verifier. */
static CURLcode ssl_ctx_cb(CURL *h, void *sslctx, void *ud)
{
    kiln_reg_req_t *q = ud;
    X509_STORE *st = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
    _cleanup_free_ char *p = NULL;
    if (q->tls_r->ca_file != NULL)
        add_ca_file(st, q->tls_r->ca_file);
    p = kiln_xasprintf("%s/%s/ca.crt", q->tls_r->certs_dir, q->tls_host);
    add_ca_file(st, p);
    /* a client certificate for mutual TLS, as docker reads it from certs.d */
    {
        _cleanup_free_ char *cert =
            kiln_xasprintf("%s/%s/client.cert", q->tls_r->certs_dir, q->tls_host);
        _cleanup_free_ char *key =
            kiln_xasprintf("%s/%s/client.key", q->tls_r->certs_dir, q->tls_host);
        if (access(cert, R_OK) == 0 && access(key, R_OK) == 0 &&
            (SSL_CTX_use_certificate_chain_file((SSL_CTX *)sslctx, cert) != 1 ||
             SSL_CTX_use_PrivateKey_file((SSL_CTX *)sslctx, key, SSL_FILETYPE_PEM) != 1))
            return CURLE_SSL_CERTPROBLEM;
    }
    return CURLE_OK;
}

/* --- one HTTP exchange ------------------------------------------------ */

void kiln_reg_req_init(kiln_reg_req_t *q, const char *method, char *url)
{
    memset(q, 0, sizeof(*q));
    q->method = method;
    q->url = url;
    q->body_fd = -1;
    kiln_buf_init(&q->resp, ERROR_BODY_CAP);
}

static void resp_reset(kiln_reg_req_t *q)
{
    free(q->location);
    free(q->content_type_resp);
    free(q->docker_digest);
    free(q->www_auth);
    free(q->resp_range);
    q->location = q->content_type_resp = q->docker_digest = q->www_auth = q->resp_range = NULL;
    q->retry_after = -1;
    q->chunk_min = 0;
    q->status = 0;
    q->sent = 0;
    kiln_buf_free(&q->resp);
    kiln_buf_init(&q->resp, q->resp_cap ? q->resp_cap : ERROR_BODY_CAP);
}

void kiln_reg_req_free(kiln_reg_req_t *q)
{
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
    resp_reset(q);
    kiln_buf_free(&q->resp);
    free(q->url);
    q->url = NULL;
}

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t nl = strlen(name);
    const char *v;
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    v = line + nl + 1;
    n -= nl + 1;
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    return kiln_xstrndup(v, n);
}

static void set_hdr(char **slot, char *v)
{
    if (v == NULL)
        return;
    free(*slot);
    *slot = v;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    kiln_reg_req_t *q = ud;
    size_t n = size * nitems;
    char *v;

    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* a new response (after a redirect or 100-continue): forget the old headers */
        free(q->location);
        free(q->www_auth);
        free(q->docker_digest);
        free(q->content_type_resp);
        free(q->resp_range);
        q->location = q->www_auth = q->docker_digest = q->content_type_resp = q->resp_range = NULL;
        q->retry_after = -1;
        {
            const char *sp = memchr(buf, ' ', n);
            if (sp != NULL)
                q->status = strtol(sp + 1, NULL, 10);
        }
        return n;
    }
    set_hdr(&q->location, header_value(buf, n, "Location"));
    set_hdr(&q->content_type_resp, header_value(buf, n, "Content-Type"));
    set_hdr(&q->docker_digest, header_value(buf, n, "Docker-Content-Digest"));
    set_hdr(&q->resp_range, header_value(buf, n, "Range"));
    if ((v = header_value(buf, n, "WWW-Authenticate")) != NULL) {
        if (q->www_auth == NULL)
            q->www_auth = v;
        else
            free(v);
    }
    if ((v = header_value(buf, n, "Retry-After")) != NULL) {
        char *end;
        long s = strtol(v, &end, 10);
        if (end != v && *end == '\0' && s >= 0)
            q->retry_after = s;
        free(v);
    }
    if ((v = header_value(buf, n, "OCI-Chunk-Min-Length")) != NULL) {
        char *end;
        unsigned long long m = strtoull(v, &end, 10);
        if (end != v && *end == '\0')
            q->chunk_min = m;
        free(v);
    }
    return n;
}

static size_t write_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
    kiln_reg_req_t *q = ud;
    size_t n = size * nmemb;
    long status = q->status;
    if (q->sink != NULL && status >= 200 && status < 300) {
        if (q->sink(q->sink_ud, buf, n, status, &q->sink_err) < 0) {
            q->sink_failed = 1;
            return 0;
        }
        return n;
    }
    if (kiln_buf_append(&q->resp, buf, n, NULL) < 0) {
        if (status >= 200 && status < 300) {
            kiln_error_set(&q->sink_err, EFBIG, "response from %s larger than %zu bytes", q->url,
                           q->resp.cap);
            q->sink_failed = 1;
            return 0;
        }
        /* an error page: keep the start only */
    }
    return n;
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    kiln_reg_req_t *q = ud;
    size_t want = size * nitems;
    uint64_t left = q->body_size - q->sent;
    ssize_t got;

    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (q->body != NULL) {
        memcpy(buf, q->body + q->sent, want);
        q->sent += want;
        return want;
    }
    do {
        got = pread(q->body_fd, buf, want, (off_t)(q->body_off + q->sent));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
        kiln_error_set(&q->sink_err, got < 0 ? errno : EIO, "reading blob for upload");
        q->sink_failed = 1;
        return CURL_READFUNC_ABORT;
    }
    q->sent += (uint64_t)got;
    return (size_t)got;
}

static int seek_cb(void *ud, curl_off_t offset, int origin)
{
    kiln_reg_req_t *q = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > q->body_size)
        return CURL_SEEKFUNC_CANTSEEK;
    q->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Scheme for a host: https, or http for an insecure host that does not speak TLS. */
static int host_uses_http(kiln_registry_t *r, const kiln_reg_endpoint_t *ep, CURL *h)
{
    kiln_reg_scheme_t *s;
    int http = 0;
    CURLcode cc;
    _cleanup_free_ char *url = NULL;
    kiln_curlguard_t guard = {.policy = r->policy};

    if (!ep->insecure)
        return 0;
    pthread_mutex_lock(&r->lock);
    for (s = r->schemes; s != NULL; s = s->next)
        if (strcmp(s->host, ep->host) == 0)
            break;
    pthread_mutex_unlock(&r->lock);
    if (s != NULL)
        return s->http;
    /* probe: try TLS (unverified); a TLS failure means plain http */
    url = kiln_xasprintf("https://%s/v2/", ep->host);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)r->o.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)r->o.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    kiln_curlguard_apply(h, &guard);
    cc = kiln_curlguard_result(&guard, curl_easy_perform(h));
    if (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING ||
        cc == CURLE_SEND_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION)
        http = 1;
    else if (cc != CURLE_OK)
        return 0; /* down: do not cache, the caller reports the connection error */
    pthread_mutex_lock(&r->lock);
    s = kiln_xzalloc(sizeof(*s));
    s->host = kiln_xstrdup(ep->host);
    s->http = http;
    s->next = r->schemes;
    r->schemes = s;
    pthread_mutex_unlock(&r->lock);
    return http;
}

char *kiln_reg_url(kiln_reg_repo_t *repo, CURL *h, const char *fmt, ...)
{
    va_list ap;
    _cleanup_free_ char *rest = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&rest, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return kiln_xasprintf("%s://%s/v2/%s%s%s",
                          host_uses_http(repo->r, repo->ep, h) ? "http" : "https", repo->ep->host,
                          repo->repository, rest[0] ? "/" : "", rest);
}

/* Performs the exchange once. Returns the curl result. */
/* Prepares handle h for exchange q (the headers list is owned by q until
 * finish_easy). */
static void setup_easy(kiln_registry_t *r, const kiln_reg_endpoint_t *ep, CURL *h,
                       kiln_reg_req_t *q, const char *auth, const char *basic_user,
                       const char *basic_pass, char *errbuf)
{
    struct curl_slist *hdrs = NULL;
    _cleanup_free_ char *accept = NULL;
    _cleanup_free_ char *ctype = NULL;
    _cleanup_free_ char *range = NULL;

    q->tls_r = r;
    q->tls_host = ep->host;
    resp_reset(q);
    q->sink_failed = 0;
    kiln_error_clear(&q->sink_err);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, q->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kiln/" KILN_VERSION);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)r->o.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)r->o.stall_timeout_s);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, strcmp(q->method, "GET") == 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
    q->guard.policy = r->policy;
    q->errbuf = errbuf;
    kiln_curlguard_apply(h, &q->guard);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    if (ep->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, q);
    }
    if (q->accept != NULL) {
        accept = kiln_xasprintf("Accept: %s", q->accept);
        hdrs = curl_slist_append(hdrs, accept);
    }
    if (q->content_type != NULL) {
        ctype = kiln_xasprintf("Content-Type: %s", q->content_type);
        hdrs = curl_slist_append(hdrs, ctype);
    }
    if (q->range != NULL) {
        range = kiln_xasprintf("Range: %s", q->range);
        hdrs = curl_slist_append(hdrs, range);
    }
    if (q->extra_header != NULL)
        hdrs = curl_slist_append(hdrs, q->extra_header);
    if (auth != NULL)
        hdrs = curl_slist_append(hdrs, auth);
    if (basic_user != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, basic_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, basic_pass ? basic_pass : "");
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (strcmp(q->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (q->has_body) {
        q->body_size = q->body != NULL ? q->body_len : q->body_size;
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, q);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, q);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_size);
        if (strcmp(q->method, "PUT") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    } else if (strcmp(q->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    q->hdrs = hdrs;
    errbuf[0] = '\0';
}

/* After a transfer on h: the status, and the headers list released. */
static void finish_easy(CURL *h, kiln_reg_req_t *q, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 0)
        q->status = status;
    cc = kiln_curlguard_result(&q->guard, cc);
    if (cc == CURLE_REMOTE_ACCESS_DENIED && q->errbuf != NULL) /* the policy's words, not curl's */
        snprintf(q->errbuf, CURL_ERROR_SIZE, "%s", q->guard.msg);
    q->curl_code = cc;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
}

/* Performs the exchange once. Returns the curl result. */
static CURLcode perform(kiln_registry_t *r, const kiln_reg_endpoint_t *ep, CURL *h,
                        kiln_reg_req_t *q, const char *auth, const char *basic_user,
                        const char *basic_pass, char *errbuf)
{
    CURLcode cc;
    setup_easy(r, ep, h, q, auth, basic_user, basic_pass, errbuf);
    cc = curl_easy_perform(h);
    finish_easy(h, q, cc);
    return (CURLcode)q->curl_code;
}

void kiln_reg_setup(kiln_reg_repo_t *repo, CURL *h, kiln_reg_req_t *q, char *errbuf)
{
    setup_easy(repo->r, repo->ep, h, q, repo->auth, NULL, NULL, errbuf);
}

void kiln_reg_finish(CURL *h, kiln_reg_req_t *q, int cc)
{
    finish_easy(h, q, (CURLcode)cc);
}

/* --- credentials and tokens ------------------------------------------ */

/* Credentials for a registry (cached). 1 found, 0 none, <0 error. */
static int get_cred(kiln_registry_t *r, const char *registry, kiln_cred_t *out, kiln_error_t *err)
{
    kiln_reg_cred_t *c;
    kiln_cred_t got = {0};
    int rc;

    pthread_mutex_lock(&r->lock);
    for (c = r->creds; c != NULL; c = c->next)
        if (strcmp(c->registry, registry) == 0)
            break;
    if (c == NULL) {
        rc = kiln_docker_config_get(registry, &got, err);
        if (rc < 0) {
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        c = kiln_xzalloc(sizeof(*c));
        c->registry = kiln_xstrdup(registry);
        c->found = rc;
        c->c = got;
        c->next = r->creds;
        r->creds = c;
    }
    if (c->found) {
        out->username = c->c.username ? kiln_xstrdup(c->c.username) : NULL;
        out->password = c->c.password ? kiln_xstrdup(c->c.password) : NULL;
        out->identity_token = c->c.identity_token ? kiln_xstrdup(c->c.identity_token) : NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return c->found;
}

static void cred_cleanup(kiln_cred_t *c)
{
    kiln_cred_clear(c);
}

static char *token_key(const kiln_reg_repo_t *repo)
{
    return kiln_xasprintf("%s|%s", repo->ep->host, repo->scope);
}

static char *cache_lookup(kiln_registry_t *r, const char *key)
{
    char *hdr = NULL;
    time_t now = time(NULL);
    pthread_mutex_lock(&r->lock);
    for (kiln_reg_token_t *t = r->tokens; t != NULL; t = t->next)
        if (strcmp(t->key, key) == 0 && t->expires > now) {
            hdr = kiln_xstrdup(t->header);
            break;
        }
    pthread_mutex_unlock(&r->lock);
    return hdr;
}

static void cache_store(kiln_registry_t *r, const char *key, const char *hdr, time_t expires)
{
    kiln_reg_token_t *t;
    pthread_mutex_lock(&r->lock);
    for (t = r->tokens; t != NULL; t = t->next)
        if (strcmp(t->key, key) == 0)
            break;
    if (t == NULL) {
        t = kiln_xzalloc(sizeof(*t));
        t->key = kiln_xstrdup(key);
        t->next = r->tokens;
        r->tokens = t;
    } else {
        explicit_bzero(t->header, strlen(t->header));
        free(t->header);
    }
    t->header = kiln_xstrdup(hdr);
    t->expires = expires;
    pthread_mutex_unlock(&r->lock);
}

static void cache_drop(kiln_registry_t *r, const char *key)
{
    pthread_mutex_lock(&r->lock);
    for (kiln_reg_token_t *t = r->tokens; t != NULL; t = t->next)
        if (strcmp(t->key, key) == 0)
            t->expires = 0;
    pthread_mutex_unlock(&r->lock);
}

static char *basic_header(const kiln_cred_t *c)
{
    size_t ul = strlen(c->username ? c->username : ""), pl = strlen(c->password);
    _cleanup_free_ char *plain = kiln_xmalloc(ul + pl + 2);
    _cleanup_free_ char *b64 = kiln_xmalloc(4 * ((ul + pl + 1 + 2) / 3) + 1);
    char *hdr;
    memcpy(plain, c->username ? c->username : "", ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, c->password, pl);
    EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)plain, (int)(ul + pl + 1));
    hdr = kiln_xasprintf("Authorization: Basic %s", b64);
    explicit_bzero(plain, ul + pl + 1);
    explicit_bzero(b64, strlen(b64));
    return hdr;
}

/* Asks the token server of a Bearer challenge for a token covering repo's scope. */
static int fetch_token(kiln_reg_repo_t *repo, CURL *h, const kiln_www_auth_t *ch,
                       const kiln_cred_t *cred, char **header, time_t *expires, kiln_error_t *err)
{
    kiln_registry_t *r = repo->r;
    kiln_buf_t url;
    kiln_reg_req_t q;
    kiln_reg_endpoint_t tep = *repo->ep;
    _cleanup_json_ json_t *j = NULL;
    char errbuf[CURL_ERROR_SIZE];
    const char *tok;
    json_t *exp;
    long expires_in = 60;
    char *esc, *scopes, *save = NULL, *form = NULL;
    CURLcode cc;
    int attempt = 0;

    kiln_buf_init(&url, 0);
    kiln_buf_append(&url, ch->realm, strlen(ch->realm), NULL);
    kiln_buf_append(&url, strchr(ch->realm, '?') ? "&" : "?", 1, NULL);
    if (ch->service != NULL) {
        esc = curl_easy_escape(h, ch->service, 0);
        kiln_buf_appendf(&url, NULL, "service=%s&", esc);
        curl_free(esc);
    }
    scopes = kiln_xstrdup(repo->scope);
    for (char *s = strtok_r(scopes, " ", &save); s != NULL; s = strtok_r(NULL, " ", &save)) {
        esc = curl_easy_escape(h, s, 0);
        kiln_buf_appendf(&url, NULL, "scope=%s&", esc);
        curl_free(esc);
    }
    free(scopes);
    url.data[--url.len] = '\0';
    if (cred != NULL && cred->identity_token != NULL) {
        /* OAuth2 refresh-token grant (docker's "identitytoken"): the same
         * parameters as a form body, POSTed to the realm itself */
        char *q_mark = strchr(url.data, '?');
        esc = curl_easy_escape(h, cred->identity_token, 0);
        form = kiln_xasprintf("grant_type=refresh_token&client_id=kiln&refresh_token=%s&%s", esc,
                              q_mark + 1);
        explicit_bzero(esc, strlen(esc));
        curl_free(esc);
        *q_mark = '\0';
        kiln_reg_req_init(&q, "POST", kiln_buf_steal(&url, NULL));
        q.has_body = 1;
        q.body = form;
        q.body_len = strlen(form);
        q.content_type = "application/x-www-form-urlencoded";
        cred = NULL; /* no Basic credentials with a refresh token */
    } else {
        kiln_reg_req_init(&q, "GET", kiln_buf_steal(&url, NULL));
    }
    q.resp_cap = TOKEN_BODY_CAP;
    /* the token server is its own host: TLS per its own settings */
    {
        const char *hs = strstr(q.url, "://");
        size_t hl;
        hs = hs ? hs + 3 : q.url;
        hl = strcspn(hs, "/?");
        tep.host = kiln_xstrndup(hs, hl);
        tep.insecure = strncmp(q.url, "http://", 7) == 0 || host_is_insecure(r, tep.host);
    }
    for (;;) {
        cc = perform(r, &tep, h, &q, NULL, cred && cred->password ? cred->username : NULL,
                     cred ? cred->password : NULL, errbuf);
        if (((cc != CURLE_OK && cc != CURLE_REMOTE_ACCESS_DENIED) || q.status >= 500 ||
             q.status == 429) &&
            attempt < r->o.retries) {
            attempt++;
            usleep(r->o.backoff_ms * 1000u);
            continue;
        }
        break;
    }
    free(tep.host);
    if (form != NULL) {
        explicit_bzero(form, strlen(form));
        free(form);
    }
    if (cc != CURLE_OK) {
        kiln_error_set(err, 0, "token server for %s: %s", repo->ep->host,
                       errbuf[0] ? errbuf : curl_easy_strerror(cc));
        kiln_reg_req_free(&q);
        return -1;
    }
    if (q.status == 401 || q.status == 403) {
        kiln_error_set(err, 0, "authentication failed for %s%s%s: token server answered %ld",
                       repo->ep->host, cred && cred->username ? " as " : "",
                       cred && cred->username ? cred->username : "", q.status);
        kiln_reg_req_free(&q);
        return -1;
    }
    if (q.status != 200) {
        kiln_reg_fail(&q, err, "token server for %s", repo->ep->host);
        kiln_reg_req_free(&q);
        return -1;
    }
    if (kiln_json_loadb(q.resp.data ? q.resp.data : "", q.resp.len, TOKEN_BODY_CAP,
                        "token server answer", &j, err) < 0) {
        kiln_reg_req_free(&q);
        return kiln_error_prefix(err, "token server for %s", repo->ep->host);
    }
    kiln_reg_req_free(&q);
    tok = kiln_json_get_string(j, "token");
    if (tok == NULL || tok[0] == '\0')
        tok = kiln_json_get_string(j, "access_token");
    if (tok == NULL || tok[0] == '\0')
        return kiln_error_set(err, 0, "token server for %s returned no token", repo->ep->host);
    exp = json_object_get(j, "expires_in");
    if (json_is_integer(exp) && json_integer_value(exp) > 0)
        expires_in = (long)json_integer_value(exp);
    if (expires_in < 60)
        expires_in = 60;
    *header = kiln_xasprintf("Authorization: Bearer %s", tok);
    /* renew a little early so a token does not expire mid-request */
    *expires = time(NULL) + expires_in - 10;
    return 0;
}

/* Reacts to a 401: works out the Authorization header for the challenge. */
static int authenticate(kiln_reg_repo_t *repo, CURL *h, const char *www, int force,
                        kiln_error_t *err)
{
    kiln_www_auth_t ch = {0};
    _cleanup_(cred_cleanup) kiln_cred_t cred = {0};
    _cleanup_free_ char *key = token_key(repo);
    char *hdr = NULL;
    time_t expires = 0;
    int have;

    if (www == NULL)
        return kiln_error_set(err, 0, "%s answered 401 without a WWW-Authenticate header",
                              repo->ep->host);
    if (kiln_www_auth_parse(www, &ch, err) < 0)
        return kiln_error_prefix(err, "%s", repo->ep->host);
    have = get_cred(repo->r, repo->ep->registry, &cred, err);
    if (have < 0) {
        kiln_www_auth_free(&ch);
        return -1;
    }
    if (ch.scheme == KILN_WWW_AUTH_BASIC) {
        kiln_www_auth_free(&ch);
        if (!have || cred.password == NULL)
            return kiln_error_set(err, EACCES,
                                  "%s requires authentication and no credentials are configured "
                                  "(run 'kiln login %s')",
                                  repo->ep->host, repo->ep->registry);
        hdr = basic_header(&cred);
    } else {
        if (force)
            cache_drop(repo->r, key);
        else
            hdr = cache_lookup(repo->r, key);
        if (hdr == NULL) {
            if (fetch_token(repo, h, &ch, have ? &cred : NULL, &hdr, &expires, err) < 0) {
                kiln_www_auth_free(&ch);
                return -1;
            }
            cache_store(repo->r, key, hdr, expires);
        }
        kiln_www_auth_free(&ch);
    }
    if (repo->auth) {
        explicit_bzero(repo->auth, strlen(repo->auth));
        free(repo->auth);
    }
    repo->auth = hdr;
    repo->used_cached = 0;
    return 0;
}

/* --- retrying exchange ----------------------------------------------- */

int kiln_reg_retryable_curl(int cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_COULDNT_RESOLVE_HOST:
        return 1;
    default:
        return 0;
    }
}

void kiln_reg_backoff(kiln_registry_t *r, int attempt, long retry_after)
{
    uint64_t ms = kiln_reg_backoff_ms(r, attempt, retry_after);
    if (ms > 0)
        usleep((useconds_t)(ms * 1000));
}

uint64_t kiln_reg_backoff_ms(kiln_registry_t *r, int attempt, long retry_after)
{
    uint64_t ms = r->o.backoff_ms;
    uint32_t rnd = 0;
    for (int i = 0; i < attempt && ms < r->o.max_backoff_ms; i++)
        ms *= 2;
    if (ms > r->o.max_backoff_ms)
        ms = r->o.max_backoff_ms;
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = (uint32_t)time(NULL);
    ms = ms / 2 + (ms / 2 > 0 ? rnd % (ms / 2 + 1) : 0); /* jitter: 50..100% */
    if (retry_after >= 0) {
        uint64_t ra = (uint64_t)(retry_after > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : retry_after);
        if (ra * 1000 > ms)
            ms = ra * 1000;
        if (ms > r->o.max_backoff_ms && r->o.max_backoff_ms > 0)
            ms = r->o.max_backoff_ms;
    }
    return ms;
}

int kiln_reg_do(kiln_reg_repo_t *repo, CURL *h, kiln_reg_req_t *q, kiln_error_t *err)
{
    kiln_registry_t *r = repo->r;
    char errbuf[CURL_ERROR_SIZE];
    int attempt = 0, auth_tries = 0;
    CURLcode cc;

    if (repo->auth == NULL) {
        _cleanup_free_ char *key = token_key(repo);
        repo->auth = cache_lookup(r, key);
        repo->used_cached = repo->auth != NULL;
    }
    for (;;) {
        cc = perform(r, repo->ep, h, q, repo->auth, NULL, NULL, errbuf);
        q->curl_code = cc;
        if (q->sink_failed && (cc == CURLE_WRITE_ERROR || cc == CURLE_ABORTED_BY_CALLBACK ||
                               cc == CURLE_READ_ERROR)) {
            if (err != NULL)
                *err = q->sink_err;
            return -1;
        }
        if (cc != CURLE_OK) {
            if (kiln_reg_retryable_curl(cc) && !q->no_retry && attempt < r->o.retries) {
                _cleanup_free_ char *m =
                    kiln_xasprintf("%s %s: %s", q->method, repo->ep->host,
                                   errbuf[0] ? errbuf : curl_easy_strerror(cc));
                kiln_reg_event(r, KILN_REGISTRY_EV_RETRY, NULL, NULL, repo->ep->host, m, 0, 0);
                kiln_reg_backoff(r, attempt++, -1);
                continue;
            }
            return kiln_error_set(err, 0, "%s %s: %s%s", q->method, repo->ep->host,
                                  errbuf[0] ? errbuf : curl_easy_strerror(cc),
                                  attempt ? " (after retries)" : "");
        }
        if (q->status == 401 && auth_tries < 1 + repo->used_cached) {
            /* first 401: authenticate; a rejected cached token: refresh once */
            int force = auth_tries > 0 || repo->used_cached;
            auth_tries++;
            if (authenticate(repo, h, q->www_auth, force, err) < 0)
                return -1;
            continue;
        }
        if ((q->status == 408 || q->status == 429 || q->status >= 500) && !q->no_retry &&
            attempt < r->o.retries) {
            _cleanup_free_ char *m =
                kiln_xasprintf("%s %s: HTTP %ld", q->method, repo->ep->host, q->status);
            kiln_reg_event(r, KILN_REGISTRY_EV_RETRY, NULL, NULL, repo->ep->host, m, 0, 0);
            kiln_reg_backoff(r, attempt++, q->retry_after);
            continue;
        }
        return 0;
    }
}

/* Extracts "CODE: message" from a registry error body, or describes the body. */
static void describe_body(const kiln_reg_req_t *q, char *out, size_t n)
{
    _cleanup_json_ json_t *j = NULL;
    json_t *e;
    const char *code, *msg;

    out[0] = '\0';
    if (q->resp.len == 0)
        return;
    if (q->content_type_resp != NULL && strncasecmp(q->content_type_resp, "text/html", 9) == 0) {
        snprintf(out, n, " (an HTML page, not a registry answer)");
        return;
    }
    j = json_loadb(q->resp.data, q->resp.len, 0, NULL);
    e = json_is_object(j) ? json_array_get(json_object_get(j, "errors"), 0) : NULL;
    code = kiln_json_get_string(e, "code");
    msg = kiln_json_get_string(e, "message");
    if (code != NULL)
        snprintf(out, n, " %s%s%.200s", code, msg ? ": " : "", msg ? msg : "");
    else
        snprintf(out, n, " (unexpected %s body)",
                 q->content_type_resp ? q->content_type_resp : "untyped");
}

int kiln_reg_fail(kiln_reg_req_t *q, kiln_error_t *err, const char *fmt, ...)
{
    char what[512], body[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    describe_body(q, body, sizeof(body));
    if (q->status == 401)
        return kiln_error_set(err, 0, "%s: 401 Unauthorized%s (credentials rejected)", what, body);
    kiln_error_set(err, 0, "%s: HTTP %ld%s", what, q->status, body);
    if (err != NULL) /* keep a code for callers, without strerror in the message */
        err->code = q->status == 404 ? ENOENT : EPROTO;
    return -1;
}

/* --- parallel work ---------------------------------------------------- */

typedef struct {
    size_t n;
    size_t next;
    int failed;
    kiln_error_t err;
    pthread_mutex_t lock;
    int (*fn)(size_t i, void *ud, CURL *h, kiln_error_t *err);
    void *ud;
} pool_t;

static void *pool_worker(void *arg)
{
    pool_t *p = arg;
    CURL *h = kiln_reg_handle();
    for (;;) {
        size_t i;
        kiln_error_t e = {0};
        pthread_mutex_lock(&p->lock);
        if (p->failed || p->next >= p->n) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        i = p->next++;
        pthread_mutex_unlock(&p->lock);
        if (p->fn(i, p->ud, h, &e) < 0) {
            pthread_mutex_lock(&p->lock);
            if (!p->failed) {
                p->failed = 1;
                p->err = e;
            }
            pthread_mutex_unlock(&p->lock);
        }
    }
    curl_easy_cleanup(h);
    return NULL;
}

int kiln_reg_parallel(size_t n, unsigned parallel,
                      int (*fn)(size_t i, void *ud, CURL *h, kiln_error_t *err), void *ud,
                      kiln_error_t *err)
{
    pool_t p = {.n = n, .fn = fn, .ud = ud};
    pthread_t th[64];
    size_t nt = parallel < n ? parallel : n, started = 0;

    if (n == 0)
        return 0;
    if (nt > 64)
        nt = 64;
    pthread_mutex_init(&p.lock, NULL);
    for (size_t i = 1; i < nt; i++)
        if (pthread_create(&th[started], NULL, pool_worker, &p) == 0)
            started++;
    pool_worker(&p); /* the calling thread works too */
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p.lock);
    if (p.failed) {
        if (err != NULL)
            *err = p.err;
        return -1;
    }
    return 0;
}

/* --- manifests and blobs --------------------------------------------- */

int kiln_reg_fetch_manifest(kiln_reg_repo_t *repo, CURL *h, const char *tag_or_digest,
                            const kiln_digest_t *want, char **body, size_t *len,
                            char media_type[256], kiln_digest_t *got, kiln_error_t *err)
{
    kiln_reg_req_t q;
    kiln_digest_t d;
    _cleanup_json_ json_t *j = NULL;
    const char *mt;
    char ds[KILN_DIGEST_STR_MAX];
    int rc = -1;

    kiln_reg_req_init(&q, "GET", kiln_reg_url(repo, h, "manifests/%s", tag_or_digest));
    q.accept = kiln_reg_manifest_accept;
    q.resp_cap = KILN_IMAGE_MANIFEST_MAX;
    if (kiln_reg_do(repo, h, &q, err) < 0) {
        if (err && err->code == EFBIG)
            kiln_error_set(err, 0, "manifest %s/%s:%s is larger than the %u byte limit",
                           repo->ep->host, repo->repository, tag_or_digest,
                           KILN_IMAGE_MANIFEST_MAX);
        goto out;
    }
    if (q.status != 200) {
        kiln_reg_fail(&q, err, "manifest %s/%s:%s", repo->ep->host, repo->repository,
                      tag_or_digest);
        goto out;
    }
    kiln_digest_bytes(q.resp.data ? q.resp.data : "", q.resp.len, &d);
    if (want != NULL && !kiln_digest_equal(want, &d)) {
        kiln_error_set(err, 0, "manifest %s/%s@%s: content hashes to %s, not the digest asked for",
                       repo->ep->host, repo->repository, tag_or_digest, kiln_digest_str(&d, ds));
        goto out;
    }
    if (q.docker_digest != NULL && strncmp(q.docker_digest, "sha256:", 7) == 0) {
        kiln_digest_t hd;
        if (kiln_digest_parse(q.docker_digest, &hd, NULL) == 0 && !kiln_digest_equal(&hd, &d)) {
            kiln_error_set(
                err, 0, "manifest %s/%s:%s: content hashes to %s but the registry announced %.80s",
                repo->ep->host, repo->repository, tag_or_digest, kiln_digest_str(&d, ds),
                q.docker_digest);
            goto out;
        }
    }
    if (kiln_image_load_json(q.resp.data ? q.resp.data : "", q.resp.len, KILN_IMAGE_MANIFEST_MAX,
                             "manifest", &j, err) < 0) {
        kiln_error_prefix(err, "%s/%s:%s%s", repo->ep->host, repo->repository, tag_or_digest,
                          q.content_type_resp && strstr(q.content_type_resp, "html")
                              ? " (the registry sent an HTML page)"
                              : "");
        goto out;
    }
    mt = kiln_json_get_string(j, "mediaType");
    if (mt == NULL) {
        kiln_doc_kind_t k = kiln_image_doc_kind(j);
        mt = k == KILN_DOC_INDEX ? KILN_MT_OCI_INDEX : KILN_MT_OCI_MANIFEST;
        if (q.content_type_resp != NULL &&
            (strcmp(q.content_type_resp, KILN_MT_DOCKER_MANIFEST) == 0 ||
             strcmp(q.content_type_resp, KILN_MT_DOCKER_LIST) == 0))
            mt = q.content_type_resp;
    }
    snprintf(media_type, 256, "%s", mt);
    *got = d;
    *len = q.resp.len;
    *body = q.resp.data ? kiln_buf_steal(&q.resp, NULL) : kiln_xstrdup("");
    rc = 0;
out:
    kiln_reg_req_free(&q);
    return rc;
}

/* Resolves ref over its endpoints (mirrors first); on success *repo is set up
 * on the endpoint that answered (caller clears it and frees *eps). */
static int resolve_manifest(kiln_registry_t *r, CURL *h, const kiln_reference_t *ref,
                            kiln_reg_endpoint_t **eps_out, size_t *neps_out,
                            kiln_reg_repo_t *repo_out, char **body, size_t *len,
                            char media_type[256], kiln_digest_t *got, kiln_error_t *err)
{
    kiln_reg_endpoint_t *eps = NULL;
    size_t neps = 0;
    kiln_digest_t want;
    const char *what = ref->digest ? ref->digest : ref->tag;
    _cleanup_free_ char *name = kiln_reference_format(ref);

    if (ref->digest != NULL && kiln_digest_parse(ref->digest, &want, err) < 0)
        return -1;
    kiln_reg_endpoints(r, ref->registry, &eps, &neps, err);
    for (size_t i = 0; i < neps; i++) {
        kiln_reg_repo_t repo;
        kiln_error_t e = {0};
        kiln_reg_repo_init(&repo, r, &eps[i], ref->repository, "pull", NULL);
        if (kiln_reg_fetch_manifest(&repo, h, what, ref->digest ? &want : NULL, body, len,
                                    media_type, got, &e) == 0) {
            *repo_out = repo;
            *eps_out = eps;
            *neps_out = neps;
            return 0;
        }
        kiln_reg_repo_clear(&repo);
        if (i + 1 < neps) {
            kiln_reg_event(r, KILN_REGISTRY_EV_FALLBACK, name, NULL, eps[i].host, e.msg, 0, 0);
            continue;
        }
        if (err != NULL)
            *err = e;
        if (neps > 1)
            kiln_error_prefix(err, "%s (mirrors failed too)", name);
    }
    kiln_reg_endpoints_free(eps, neps);
    return -1;
}

int kiln_registry_get_manifest(kiln_registry_t *r, const char *refs, char **body, size_t *len,
                               char media_type[256], kiln_digest_t *digest, kiln_error_t *err)
{
    kiln_reference_t ref = {0};
    kiln_reg_endpoint_t *eps = NULL;
    size_t neps = 0;
    kiln_reg_repo_t repo;
    CURL *h;
    int rc;

    if (kiln_reference_parse(refs, &ref, err) < 0)
        return -1;
    h = kiln_reg_handle();
    rc = resolve_manifest(r, h, &ref, &eps, &neps, &repo, body, len, media_type, digest, err);
    if (rc == 0) {
        kiln_reg_repo_clear(&repo);
        kiln_reg_endpoints_free(eps, neps);
    }
    curl_easy_cleanup(h);
    kiln_reference_free(&ref);
    return rc;
}

int kiln_reg_resolve(kiln_registry_t *r, CURL *h, const kiln_reference_t *ref,
                     kiln_reg_endpoint_t **eps, size_t *neps, kiln_reg_repo_t *repo, char **body,
                     size_t *len, char media_type[256], kiln_digest_t *got, kiln_error_t *err)
{
    return resolve_manifest(r, h, ref, eps, neps, repo, body, len, media_type, got, err);
}

int kiln_registry_check_login(kiln_registry_t *r, const char *registry, const char *user,
                              const char *password, kiln_error_t *err)
{
    kiln_reg_endpoint_t ep = {0};
    kiln_reg_repo_t repo;
    kiln_reg_req_t q;
    kiln_cred_t c = {(char *)user, (char *)password, NULL};
    CURL *h = kiln_reg_handle();
    int rc = -1;

    endpoint_set(&ep, r, registry, kiln_reference_endpoint(registry), 0);
    /* the login check must use exactly these credentials, not config.json's */
    pthread_mutex_lock(&r->lock);
    {
        kiln_reg_cred_t *rc_ = kiln_xzalloc(sizeof(*rc_));
        rc_->registry = kiln_xstrdup(registry);
        rc_->found = 1;
        rc_->c.username = kiln_xstrdup(c.username);
        rc_->c.password = kiln_xstrdup(c.password);
        rc_->next = r->creds;
        r->creds = rc_;
    }
    pthread_mutex_unlock(&r->lock);
    memset(&repo, 0, sizeof(repo));
    repo.r = r;
    repo.ep = &ep;
    repo.repository = kiln_xstrdup("");
    repo.scope = kiln_xstrdup("registry:catalog:*");
    kiln_reg_req_init(
        &q, "GET",
        kiln_xasprintf("%s://%s/v2/", host_uses_http(r, &ep, h) ? "http" : "https", ep.host));
    if (kiln_reg_do(&repo, h, &q, err) == 0) {
        if (q.status == 200)
            rc = 0;
        else
            kiln_reg_fail(&q, err, "login to %s as %s", registry, user);
    }
    kiln_reg_req_free(&q);
    kiln_reg_repo_clear(&repo);
    free(ep.registry);
    free(ep.host);
    free(ep.prefix);
    curl_easy_cleanup(h);
    return rc;
}
