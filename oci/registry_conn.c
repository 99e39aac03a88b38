/* kiln — one exchange with a registry over libcurl, and its retries: TLS (the host's
 * certs.d CAs), request and response buffers with caps, headers parsed (Location,
 * WWW-Authenticate, Retry-After, Docker-Content-Digest, …), plain http for insecure hosts,
 * the address policy on every connection (utils/curlguard), retries with backoff and jitter
 * (Retry-After honoured, capped), a 401 answered once through registry_auth.c, and error
 * bodies described. */
#include "oci/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci/registry_http.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define ERROR_BODY_CAP (64u * 1024)
#define RETRY_AFTER_MAX_S 60

/* The file at path opened for reading when it is a regular file, else NULL with errno set
 * (EINVAL: not a regular file). Opened without blocking: a FIFO (a lazy record's CA, an
 * operator's typo, a certs.d entry) would block the TLS handshake forever. */
static FILE *open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    FILE *f;
    int e;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) < 0)
        e = errno;
    else if (!S_ISREG(sb.st_mode))
        e = EINVAL;
    else if ((f = fdopen(fd, "re")) == NULL)
        e = errno;
    else
        return f;
    close(fd);
    errno = e;
    return NULL;
}

/* Adds the certificates of the PEM file path to st: 0, or -1 with why (naming the file,
 * never its content) in problem when it cannot be opened, is not a regular file or holds
 * no certificate. A file that is absent is 0 when optional (certs.d's ca.crt). */
static int add_ca_file(X509_STORE *st, const char *path, int optional, char *problem,
                       size_t problem_len)
{
    FILE *f = open_regular(path);
    X509 *x;
    size_t n = 0;
    if (f == NULL) {
        if (optional && errno == ENOENT)
            return 0;
        snprintf(problem, problem_len, "TLS CA certificate file %s: %s", path,
                 errno == EINVAL ? "not a regular file" : strerror(errno));
        return -1;
    }
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(st, x);
        X509_free(x);
        n++;
    }
    fclose(f);
    ERR_clear_error(); /* the end of the file is an error to PEM_read */
    if (n == 0) {
        snprintf(problem, problem_len, "TLS CA certificate file %s holds no PEM certificate", path);
        return -1;
    }
    return 0;
}

/* A key's passphrase: none (an encrypted client.key fails to load; kiln never prompts). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Loads certs.d's client certificate (cert: the certificate, then its chain) and key into
 * ctx, as docker does: 0 when either is absent or not a regular file (no client certificate
 * is sent), -1 when they do not load. */
static int use_client_pair(SSL_CTX *ctx, const char *cert, const char *key)
{
    FILE *cf = open_regular(cert), *kf = cf ? open_regular(key) : NULL;
    X509 *x = NULL;
    EVP_PKEY *pk = NULL;
    int r = -1;
    if (kf == NULL) {
        if (cf != NULL)
            fclose(cf);
        return 0;
    }
    if ((x = PEM_read_X509_AUX(cf, NULL, no_passphrase, NULL)) == NULL ||
        SSL_CTX_use_certificate(ctx, x) != 1)
        goto out;
    X509_free(x);
    SSL_CTX_clear_chain_certs(ctx);
    while ((x = PEM_read_X509(cf, NULL, no_passphrase, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) /* add0: ctx owns x on success only */
            goto out;
    }
    ERR_clear_error();
    if ((pk = PEM_read_PrivateKey(kf, NULL, no_passphrase, NULL)) == NULL ||
        SSL_CTX_use_PrivateKey(ctx, pk) != 1)
        goto out;
    r = 0;
out:
    X509_free(x);
    EVP_PKEY_free(pk);
    fclose(cf);
    fclose(kf);
    return r;
}

/* Adds the extra CAs (--registry-ca, certs.d/HOST/ca.crt) to the verifier. */
static CURLcode ssl_ctx_cb(CURL *h, void *sslctx, void *ud)
{
    kiln_reg_req_t *q = ud;
    X509_STORE *st = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
    _cleanup_free_ char *p = NULL;
    /* a CA that cannot be used fails here naming the file: the handshake would only say
     * that the server's certificate does not verify */
    if (q->tls_r->ca_file != NULL &&
        add_ca_file(st, q->tls_r->ca_file, 0, q->tls_problem, sizeof(q->tls_problem)) < 0)
        return CURLE_SSL_CERTPROBLEM;
    p = kiln_xasprintf("%s/%s/ca.crt", q->tls_r->certs_dir, q->tls_host);
    if (add_ca_file(st, p, 1, q->tls_problem, sizeof(q->tls_problem)) < 0)
        return CURLE_SSL_CERTPROBLEM;
    /* a client certificate for mutual TLS, as docker reads it from certs.d */
    {
        _cleanup_free_ char *cert =
            kiln_xasprintf("%s/%s/client.cert", q->tls_r->certs_dir, q->tls_host);
        _cleanup_free_ char *key =
            kiln_xasprintf("%s/%s/client.key", q->tls_r->certs_dir, q->tls_host);
        if (use_client_pair((SSL_CTX *)sslctx, cert, key) < 0) {
            snprintf(q->tls_problem, sizeof(q->tls_problem),
                     "client certificate %s with key %s does not load (PEM, key not encrypted)",
                     cert, key);
            return CURLE_SSL_CERTPROBLEM;
        }
    }
    return CURLE_OK;
}

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
        int r = q->sink(q->sink_ud, buf, n, status, &q->sink_err);
        if (r < 0) {
            q->sink_failed = 1;
            return 0;
        }
        return r > 0 ? CURL_WRITEFUNC_PAUSE : n;
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
int kiln_reg_host_uses_http(kiln_registry_t *r, const kiln_reg_endpoint_t *ep, CURL *h)
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
                          kiln_reg_host_uses_http(repo->r, repo->ep, h) ? "http" : "https",
                          repo->ep->host, repo->repository, rest[0] ? "/" : "", rest);
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
    else if (cc == CURLE_SSL_CERTPROBLEM && q->tls_problem[0] != '\0' && q->errbuf != NULL)
        snprintf(q->errbuf, CURL_ERROR_SIZE, "%s", q->tls_problem);
    q->curl_code = cc;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
}

/* Performs the exchange once. Returns the curl result. */
CURLcode kiln_reg_perform(kiln_registry_t *r, const kiln_reg_endpoint_t *ep, CURL *h,
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
        repo->auth = kiln_reg_cached_auth(repo);
        repo->used_cached = repo->auth != NULL;
    }
    for (;;) {
        cc = kiln_reg_perform(r, repo->ep, h, q, repo->auth, NULL, NULL, errbuf);
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
            if (cc == CURLE_SSL_CONNECT_ERROR && !repo->ep->insecure)
                /* most often a registry that speaks plain HTTP (a local one): say how */
                return kiln_error_set(
                    err, 0,
                    "%s %s: TLS handshake failed (%s)%s; if %s serves plain "
                    "HTTP, allow it with --insecure-registry %s",
                    q->method, repo->ep->host, errbuf[0] ? errbuf : curl_easy_strerror(cc),
                    attempt ? " (after retries)" : "", repo->ep->host, repo->ep->host);
            return kiln_error_set(err, 0, "%s %s: %s%s", q->method, repo->ep->host,
                                  errbuf[0] ? errbuf : curl_easy_strerror(cc),
                                  attempt ? " (after retries)" : "");
        }
        if (q->status == 401 && auth_tries < 1 + repo->used_cached) {
            /* first 401: authenticate; a rejected cached token: refresh once */
            int force = auth_tries > 0 || repo->used_cached;
            auth_tries++;
            if (kiln_reg_authenticate(repo, h, q->www_auth, force, err) < 0)
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
