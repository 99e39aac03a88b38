/* kiln — HTTP client over libcurl (see http.h). */
#include "utils/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/curlguard.h"
#include "utils/mem.h"

#define DEFAULT_RESPONSE_CAP (1024u * 1024)
#define HEADER_CAP (64u * 1024)
#define UPLOAD_BUFFER (1024L * 1024) /* fewer, larger writes for big bodies */

#define MAX_REDIRECTS 10L

struct kiln_http {
    CURL *curl;
    kiln_netpolicy_t *policy;
    kiln_curlguard_t guard;
    char refusal[2 * KILN_CURLGUARD_MSG_MAX]; /* "[redirected to URL: ]policy message" */
    int fresh; /* the policy changed: do not reuse a connection made before */
};

typedef struct body_src {
    const char *mem;
    int fd;
    off_t offset;
    size_t len;
    size_t pos;
    int failed;
} body_src_t;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

kiln_http_t *kiln_http_new(void)
{
    kiln_http_t *h = kiln_xzalloc(sizeof(*h));
    pthread_once(&curl_once, curl_init_once);
    h->curl = curl_easy_init();
    if (h->curl == NULL)
        abort();
    return h;
}

void kiln_http_free(kiln_http_t *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->curl);
    kiln_netpolicy_free(h->policy);
    free(h);
}

void kiln_http_set_policy(kiln_http_t *h, const kiln_netpolicy_t *policy)
{
    kiln_netpolicy_free(h->policy);
    h->policy = policy ? kiln_netpolicy_dup(policy) : NULL;
    h->fresh = 1;
}

const char *kiln_http_refusal(const kiln_http_t *h)
{
    return h->refusal[0] ? h->refusal : NULL;
}

/* scheme://host[:port]/path of the URL curl last worked on (no userinfo,
 * no query: tokens stay out of messages), malloc'ed, or NULL. */
static char *effective_url(CURL *c)
{
    const char *eff = NULL;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *out = NULL;

    curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff);
    if (eff != NULL && curl_url_set(u, CURLUPART_URL, eff, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        out = kiln_xasprintf("%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
                             path ? path : "/");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return out;
}

void kiln_http_response_free(kiln_http_response_t *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    free(resp->headers);
    memset(resp, 0, sizeof(*resp));
}

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *ud)
{
    body_src_t *s = ud;
    size_t want = size * nmemb;
    if (want > s->len - s->pos)
        want = s->len - s->pos;
    if (want == 0)
        return 0;
    if (s->mem) {
        memcpy(dst, s->mem + s->pos, want);
    } else {
        ssize_t n;
        do {
            n = pread(s->fd, dst, want, s->offset + (off_t)s->pos);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            s->failed = 1;
            return CURL_READFUNC_ABORT;
        }
        want = (size_t)n;
    }
    s->pos += want;
    return want;
}

/* Rewinds the body when curl has to resend it (redirect, auth retry). */
static int seek_cb(void *ud, curl_off_t offset, int origin)
{
    body_src_t *s = ud;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > s->len)
        return CURL_SEEKFUNC_CANTSEEK;
    s->pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    kiln_buf_t *b = ud;
    if (kiln_buf_append(b, data, size * nmemb, NULL) < 0)
        return 0; /* over the cap: curl stops with CURLE_WRITE_ERROR */
    return size * nmemb;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    kiln_buf_t *b = ud;
    size_t n = size * nmemb;
    /* a new status line starts a new response (after 100-continue, redirects) */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
        b->len = 0;
    if (kiln_buf_append(b, data, n, NULL) < 0)
        return 0;
    return n;
}

int kiln_http_do(kiln_http_t *h, const kiln_http_request_t *req, kiln_http_response_t *resp,
                 kiln_error_t *err)
{
    CURL *c = h->curl;
    struct curl_slist *hl = NULL;
    body_src_t src = {0};
    kiln_buf_t body, hdrs;
    CURLcode rc;
    long status = 0;
    int has_body = req->body != NULL || req->body_fd >= 0;
    int is_head = strcmp(req->method, "HEAD") == 0;

    curl_easy_reset(c);
    kiln_buf_init(&body, req->response_cap ? req->response_cap : DEFAULT_RESPONSE_CAP);
    kiln_buf_init(&hdrs, HEADER_CAP);
    for (size_t i = 0; i < req->n_headers; i++)
        hl = curl_slist_append(hl, req->headers[i]);
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    if (has_body) {
        src.mem = req->body;
        src.fd = req->body_fd;
        src.offset = req->body_offset;
        src.len = req->body_len;
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, &src);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
        if (req->body_len >= UPLOAD_BUFFER)
            curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUFFER);
    }
    if (is_head)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout_seconds ? req->timeout_seconds : 300L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    if (req->follow_redirects) {
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    h->guard.policy = h->policy;
    h->refusal[0] = '\0';
    kiln_curlguard_apply(c, &h->guard);
    if (h->fresh)
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    rc = kiln_curlguard_result(&h->guard, curl_easy_perform(c));
    h->fresh = 0;
    curl_slist_free_all(hl);
    if (rc == CURLE_REMOTE_ACCESS_DENIED) {
        _cleanup_free_ char *to = effective_url(c);
        _cleanup_free_ char *from = kiln_xstrdup(req->url);
        long hops = 0;
        kiln_buf_free(&body);
        kiln_buf_free(&hdrs);
        from[strcspn(from, "?#")] = '\0';
        curl_easy_getinfo(c, CURLINFO_REDIRECT_COUNT, &hops);
        if (to != NULL && hops > 0)
            snprintf(h->refusal, sizeof(h->refusal), "redirected to %s: %s", to, h->guard.msg);
        else
            snprintf(h->refusal, sizeof(h->refusal), "%s", h->guard.msg);
        kiln_error_set(err, 0, "%s %s: %s", req->method, from, h->refusal);
        if (err)
            err->code = EACCES;
        return -1;
    }
    if (rc != CURLE_OK) {
        int code = rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT
                   : rc == CURLE_WRITE_ERROR      ? ENOBUFS
                                                  : EIO;
        kiln_buf_free(&body);
        kiln_buf_free(&hdrs);
        if (src.failed)
            return kiln_error_set(err, EIO, "%s %s: reading the request body failed", req->method,
                                  req->url);
        kiln_error_set(err, 0, "%s %s: %s%s", req->method, req->url, curl_easy_strerror(rc),
                       code == ENOBUFS ? " (response over the size limit)" : "");
        if (err)
            err->code = code;
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    resp->body = kiln_buf_steal(&body, &resp->body_len);
    resp->headers = kiln_buf_steal(&hdrs, NULL);
    return 0;
}

char *kiln_http_response_header(const kiln_http_response_t *resp, const char *name)
{
    size_t nl = strlen(name);
    const char *p = resp->headers;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            size_t vl = ll - nl - 1;
            while (vl > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            return kiln_xstrndup(v, vl);
        }
        if (!eol)
            break;
        p = eol + 2;
    }
    return NULL;
}
