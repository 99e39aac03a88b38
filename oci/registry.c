/* kiln — registry client: options and the registries config (mirrors, insecure hosts,
 * certificates), the client's life, endpoints of a registry (mirrors first), repositories,
 * bounded parallel work, and manifests fetched and resolved. The HTTP exchange with its
 * retries is registry_conn.c, credentials and tokens registry_auth.c, pull and push
 * registry_pull.c and registry_push.c. */
#include "oci/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry_http.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define DEFAULT_CERTS_DIR KILN_REGISTRY_DEFAULT_CERTS_DIR
#define DEFAULT_CONFIG "/etc/kiln/registries.json"

const char kiln_reg_manifest_accept[] = KILN_MT_OCI_MANIFEST
    ", " KILN_MT_OCI_INDEX ", " KILN_MT_DOCKER_MANIFEST ", " KILN_MT_DOCKER_LIST;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

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

int kiln_reg_host_insecure(kiln_registry_t *r, const char *host)
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

int kiln_registry_is_insecure(kiln_registry_t *r, const char *ref)
{
    kiln_reference_t rr = {0};
    int v = 0;
    if (kiln_reference_parse(ref, &rr, NULL) == 0)
        v = kiln_reg_host_insecure(r, rr.registry);
    kiln_reference_free(&rr);
    return v;
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
    ep->insecure = kiln_reg_host_insecure(r, ep->host);
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

/* Frees what one exchange with an endpoint of its own (endpoint_set) took. */
static void one_exchange_end(kiln_reg_req_t *q, kiln_reg_repo_t *repo, kiln_reg_endpoint_t *ep,
                             CURL *h)
{
    kiln_reg_req_free(q);
    kiln_reg_repo_clear(repo);
    free(ep->registry);
    free(ep->host);
    free(ep->prefix);
    curl_easy_cleanup(h);
}

int kiln_registry_delete_manifest(kiln_registry_t *r, const char *refs, const kiln_digest_t *digest,
                                  kiln_error_t *err)
{
    kiln_reference_t ref = {0};
    kiln_reg_endpoint_t ep = {0};
    kiln_reg_repo_t repo;
    kiln_reg_req_t q;
    char ds[KILN_DIGEST_STR_MAX];
    CURL *h;
    int rc = -1;

    if (kiln_reference_parse(refs, &ref, err) < 0)
        return -1;
    kiln_digest_str(digest, ds);
    h = kiln_reg_handle();
    /* the source itself, never a mirror: a mirror holds no copy to delete */
    endpoint_set(&ep, r, ref.registry, kiln_reference_endpoint(ref.registry), 0);
    kiln_reg_repo_init(&repo, r, &ep, ref.repository, "pull,push,delete", NULL);
    kiln_reg_req_init(&q, "DELETE", kiln_reg_url(&repo, h, "manifests/%s", ds));
    if (kiln_reg_do(&repo, h, &q, err) == 0) {
        if (q.status == 202 || q.status == 200)
            rc = 1;
        else if (q.status == 405 || q.status == 404 || q.status == 400 || q.status == 403 ||
                 q.status == 401)
            rc = 0; /* deletes turned off or refused: the registry's own gc is left to it */
        else
            kiln_reg_fail(&q, err, "deleting manifest %s of %s/%s", ds, ep.host, ref.repository);
    }
    one_exchange_end(&q, &repo, &ep, h);
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
    kiln_reg_req_init(&q, "GET",
                      kiln_xasprintf("%s://%s/v2/",
                                     kiln_reg_host_uses_http(r, &ep, h) ? "http" : "https",
                                     ep.host));
    if (kiln_reg_do(&repo, h, &q, err) == 0) {
        if (q.status == 200)
            rc = 0;
        else
            kiln_reg_fail(&q, err, "login to %s as %s", registry, user);
    }
    one_exchange_end(&q, &repo, &ep, h);
    return rc;
}
