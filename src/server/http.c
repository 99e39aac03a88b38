/* kiln server — the HTTP layer over libmicrohttpd (see http.h): bodies read with caps,
 * bearer tokens resolved to tenants, connection bounds and the reaper, dispatch to the routes,
 * the access log line of each request. */
#include "src/server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "src/server/accesslog.h"
#include "src/server/tenant.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Webhook bodies held in memory at once, in units of max_webhook_bytes: past it a webhook
 * with a Content-Length is answered 503 before its body is read, a chunked one is cut off,
 * so memory stays flat however many arrive. */
#define HOOK_BODIES_IN_MEMORY 8

/* A connection waiting for a complete request (its headers), and since when. MHD's own
 * timeout is one of silence only: a client trickling a byte at a time would keep its slot. */
typedef struct waiter {
    struct waiter *prev, *next;
    int fd;
    struct sockaddr_storage peer; /* to tell the connection's fd from a reused one */
    socklen_t peer_len;
    struct timespec since;
    int waiting;
} waiter_t;

struct kiln_http {
    struct MHD_Daemon *d;
    kiln_server_t *srv;
    size_t hook_bytes;    /* webhook body bytes reserved (atomic) */
    pthread_mutex_t lock; /* guards waiters, stop */
    pthread_cond_t wake;
    waiter_t *waiters;
    int stop;
    pthread_t reaper;
    int reaper_started;
};

/* Per-request state while the body arrives. */
typedef struct conn_state {
    kiln_buf_t body;
    int upload_fd;
    char *upload_path;
    size_t received;
    size_t cap;
    int too_big;
    int no_space; /* the upload could not be stored: the disk is full (507) */
    int rejected; /* a response was already queued */
    int is_hook;
    size_t reserved;        /* of kiln_http.hook_bytes, given back when the request ends */
    kiln_http_t *http;      /* for the reservation */
    kiln_hook_body_t *hook; /* the webhook's streamed signature check */
    /* the request as the access log records it */
    char request_id[17];
    char remote[INET6_ADDRSTRLEN];
    char method[16];
    char *path;
    const char *tenant; /* config-owned: the authenticated tenant or a webhook project's */
    double time;        /* epoch seconds, headers in */
    struct timespec started;
    unsigned status; /* of the answer queued, 0 when none was */
    uint64_t bytes;  /* body size of the answer queued */
    uint64_t sent;   /* body bytes a streamed answer (of unknown size) sent */
} conn_state_t;

const char *kiln_http_header(const kiln_http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *kiln_http_query(const kiln_http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void kiln_http_json(kiln_http_resp_t *resp, unsigned int status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    size_t n;

    if (s == NULL)
        s = kiln_xstrdup("{\"error\":\"internal error\"}");
    n = strlen(s);
    json_decref(o);
    free(resp->body);
    resp->body = kiln_xrealloc(s, n + 2);
    resp->body[n] = '\n';
    resp->body[n + 1] = '\0';
    resp->len = n + 1;
    resp->status = status;
    resp->content_type = "application/json";
}

void kiln_http_json_text(kiln_http_resp_t *resp, unsigned int status, char *text, size_t len)
{
    free(resp->body);
    resp->body = text;
    resp->len = len;
    resp->status = status;
    resp->content_type = "application/json";
}

void kiln_http_error(kiln_http_resp_t *resp, unsigned int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    kiln_http_json(resp, status, json_pack("{s:s}", "error", msg));
}

/* Queues resp on c (consuming it), with the request's id; st records what went out. */
static enum MHD_Result send_resp(conn_state_t *st, struct MHD_Connection *c, kiln_http_resp_t *resp)
{
    struct MHD_Response *r = resp->custom;
    enum MHD_Result ret;
    size_t len = resp->len;

    if (r == NULL) {
        r = MHD_create_response_from_buffer(resp->len, resp->body ? resp->body : (char *)"",
                                            resp->body ? MHD_RESPMEM_MUST_FREE
                                                       : MHD_RESPMEM_PERSISTENT);
        resp->body = NULL;
        if (r == NULL)
            return MHD_NO;
        if (resp->content_type)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    }
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (resp->csp)
        MHD_add_response_header(r, "Content-Security-Policy", resp->csp);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Request-Id", st->request_id);
    ret = MHD_queue_response(c, resp->status ? resp->status : 500, r);
    if (ret == MHD_YES) {
        st->status = resp->status ? resp->status : 500;
        st->bytes = len;
    }
    MHD_destroy_response(r);
    free(resp->body);
    free(resp->csp);
    resp->csp = NULL;
    return ret;
}

static enum MHD_Result reject(conn_state_t *st, struct MHD_Connection *c, unsigned int status,
                              const char *msg)
{
    kiln_http_resp_t resp = {0};
    kiln_http_error(&resp, status, "%s", msg);
    return send_resp(st, c, &resp);
}

/* Open routes: health, metrics, the dashboard page, and the webhooks (they carry their own
 * signatures). Everything else needs a bearer token. */
static int needs_token(const char *method, const char *path)
{
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0 || strcmp(path, "/") == 0 ||
        strncmp(path, "/v1/hooks/", 10) == 0)
        return 0;
    return 1;
}

static int is_upload(const char *method, const char *path)
{
    return strcmp(method, "POST") == 0 && strcmp(path, "/v1/contexts") == 0;
}

/* Removes the stored upload; done before the answer goes out, so a client that sees the
 * answer never finds the upload's file (or its space) still taken. */
static void drop_upload(conn_state_t *st)
{
    if (st->upload_fd >= 0)
        close(st->upload_fd);
    st->upload_fd = -1;
    if (st->upload_path) {
        unlink(st->upload_path);
        free(st->upload_path);
        st->upload_path = NULL;
    }
}

static void free_state(conn_state_t *st)
{
    if (st == NULL)
        return;
    kiln_buf_free(&st->body);
    if (st->reserved)
        __atomic_sub_fetch(&st->http->hook_bytes, st->reserved, __ATOMIC_SEQ_CST);
    kiln_routes_hook_free(st->hook);
    drop_upload(st);
    free(st->path);
    free(st);
}

/* Reserves n more bytes of the webhook memory budget. Returns 0, or -1 when it is spent. */
static int hook_reserve(conn_state_t *st, size_t n)
{
    size_t budget = HOOK_BODIES_IN_MEMORY * (size_t)st->http->srv->config->bounds.max_webhook_bytes;
    if (__atomic_add_fetch(&st->http->hook_bytes, n, __ATOMIC_SEQ_CST) > budget) {
        __atomic_sub_fetch(&st->http->hook_bytes, n, __ATOMIC_SEQ_CST);
        return -1;
    }
    st->reserved += n;
    return 0;
}

/* A webhook's headers are in: refuses it (queuing the answer, st->rejected) when its
 * Content-Length is over the cap, the memory budget is spent or no project could accept it;
 * otherwise starts its signature check. Returns the MHD result. */
static enum MHD_Result hook_begin(conn_state_t *st, struct MHD_Connection *c, kiln_http_req_t *req,
                                  const char *cl)
{
    kiln_http_resp_t resp = {0};
    unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;

    st->rejected = 1;
    if (len > st->cap)
        return reject(st, c, MHD_HTTP_CONTENT_TOO_LARGE, "webhook body over max_webhook_bytes");
    if (len > 0 && hook_reserve(st, (size_t)len) < 0)
        return reject(st, c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "too many webhook bodies in flight; retry later");
    if ((st->hook = kiln_routes_hook_start(req, &resp)) == NULL)
        return send_resp(st, c, &resp);
    st->rejected = 0;
    return MHD_YES;
}

/* Marks c's connection as waiting for a request (since now) or not. */
static void set_waiting(kiln_http_t *h, struct MHD_Connection *c, int waiting)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    waiter_t *w = ci ? ci->socket_context : NULL;
    if (w == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    w->waiting = waiting;
    clock_gettime(CLOCK_MONOTONIC, &w->since);
    pthread_mutex_unlock(&h->lock);
}

/* Tracks each connection from accept to close for the reaper. */
static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    kiln_http_t *h = cls;
    waiter_t *w = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        w = kiln_xzalloc(sizeof(*w));
        w->fd = ci ? ci->connect_fd : -1;
        w->peer_len = sizeof(w->peer);
        if (w->fd < 0 || getpeername(w->fd, (struct sockaddr *)&w->peer, &w->peer_len) < 0)
            w->peer_len = 0;
        w->waiting = 1;
        clock_gettime(CLOCK_MONOTONIC, &w->since);
        pthread_mutex_lock(&h->lock);
        w->next = h->waiters;
        if (h->waiters)
            h->waiters->prev = w;
        h->waiters = w;
        pthread_mutex_unlock(&h->lock);
        *socket_context = w;
    } else if (w != NULL) {
        pthread_mutex_lock(&h->lock);
        if (w->prev)
            w->prev->next = w->next;
        else
            h->waiters = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&h->lock);
        free(w);
        *socket_context = NULL;
    }
}

/* Once a second: a connection that has not completed a request's headers within
 * connection_timeout of its accept (or of its previous answer) is shut down; MHD then
 * closes it. The fd is checked to still be that connection (same peer) first. */
static void *reaper_main(void *arg)
{
    kiln_http_t *h = arg;
    time_t limit = (time_t)h->srv->config->bounds.connection_timeout;

    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        struct timespec now, until;
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (waiter_t *w = h->waiters; w; w = w->next) {
            struct sockaddr_storage peer;
            socklen_t len = sizeof(peer);
            if (!w->waiting || now.tv_sec - w->since.tv_sec < limit || w->peer_len == 0)
                continue;
            w->waiting = 0;
            if (getpeername(w->fd, (struct sockaddr *)&peer, &len) == 0 && len == w->peer_len &&
                memcmp(&peer, &w->peer, len) == 0)
                shutdown(w->fd, SHUT_RDWR);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&h->wake, &h->lock, &until);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* The request is over (answered, or its connection gone): its access log line. */
static void log_request(kiln_http_t *h, conn_state_t *st, enum MHD_RequestTerminationCode toe)
{
    struct timespec now;
    kiln_access_entry_t e = {.time = st->time,
                             .request_id = st->request_id,
                             .remote = st->remote,
                             .tenant = st->tenant,
                             .method = st->method,
                             .path = st->path,
                             .status = st->status,
                             .bytes = st->bytes ? st->bytes : st->sent,
                             .aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK};

    clock_gettime(CLOCK_MONOTONIC, &now);
    e.duration = (double)(now.tv_sec - st->started.tv_sec) +
                 (double)(now.tv_nsec - st->started.tv_nsec) / 1e9;
    kiln_accesslog_write(h->srv->access_log, &e);
}

/* Fills the access log's record of a request whose headers just arrived. */
static void begin_request(conn_state_t *st, struct MHD_Connection *c, const char *url,
                          const char *method)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    struct timespec wall;

    kiln_accesslog_request_id(st->request_id);
    clock_gettime(CLOCK_MONOTONIC, &st->started);
    clock_gettime(CLOCK_REALTIME, &wall);
    st->time = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    snprintf(st->method, sizeof(st->method), "%s", method);
    st->path = kiln_xstrndup(url, KILN_ACCESSLOG_ROUTE_MAX + 1);
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, st->remote,
                  sizeof(st->remote));
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, st->remote,
                  sizeof(st->remote));
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    if (*con_cls)
        log_request(cls, *con_cls, toe);
    free_state(*con_cls);
    *con_cls = NULL;
    /* a kept-alive connection has connection_timeout again for its next request */
    set_waiting(cls, c, 1);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    kiln_http_t *h = cls;
    kiln_server_t *s = h->srv;
    conn_state_t *st = *con_cls;
    kiln_http_req_t req = {.conn = c, .srv = s, .method = method, .path = url};
    kiln_http_resp_t resp = {0};

    if (st == NULL) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        set_waiting(h, c, 0);
        st = kiln_xzalloc(sizeof(*st));
        st->upload_fd = -1;
        st->http = h;
        begin_request(st, c, url, method);
        st->is_hook = strncmp(url, "/v1/hooks/", 10) == 0;
        st->cap = is_upload(method, url) ? s->max_upload
                  : st->is_hook          ? (size_t)s->config->bounds.max_webhook_bytes
                                         : s->max_body;
        kiln_buf_init(&st->body, st->cap);
        *con_cls = st;
        {
            const kiln_tenant_t *t = kiln_config_tenant_for_token(
                s->config, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"));
            if (t == NULL && s->no_auth && needs_token(method, url))
                t = kiln_config_tenant_named(s->config, KILN_TENANT_DEFAULT);
            st->tenant = t && !st->is_hook ? t->name : NULL; /* a hook's is its project's */
        }
        if (needs_token(method, url) && st->tenant == NULL) {
            st->rejected = 1;
            return reject(st, c, MHD_HTTP_UNAUTHORIZED, "missing or invalid bearer token");
        }
        req.tenant = st->tenant;
        if (st->is_hook && strcmp(method, "POST") == 0)
            return hook_begin(st, c, &req, cl);
        if (cl && strtoull(cl, NULL, 10) > st->cap) {
            st->rejected = 1;
            return reject(st, c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        }
        if (is_upload(method, url)) {
            kiln_error_t err = {0};
            _cleanup_free_ char *dir = kiln_xasprintf("%s/contexts", s->root);
            st->upload_path = kiln_xasprintf("%s/.upload-XXXXXX", dir);
            if (kiln_fs_mkdir_p(dir, 0700, &err) < 0 ||
                (st->upload_fd = mkostemp(st->upload_path, O_CLOEXEC)) < 0) {
                int full = kiln_fs_errno_no_space(err.code ? err.code : errno);
                free(st->upload_path);
                st->upload_path = NULL;
                st->rejected = 1;
                return reject(st, c,
                              full ? MHD_HTTP_INSUFFICIENT_STORAGE : MHD_HTTP_INTERNAL_SERVER_ERROR,
                              full ? "no space left on the server to store the upload"
                                   : "cannot store the upload");
            }
        }
        return MHD_YES;
    }
    if (st->rejected) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (st->too_big)
            return MHD_YES;
        if (n > st->cap - st->received) {
            st->too_big = 1;
            /* A webhook past its cap is not read further: the connection is closed. */
            return st->is_hook ? MHD_NO : MHD_YES;
        }
        /* A chunked webhook reserves its memory as it arrives (a sized one did up front). */
        if (st->is_hook && st->received + n > st->reserved && hook_reserve(st, n) < 0)
            return MHD_NO;
        st->received += n;
        kiln_routes_hook_feed(st->hook, upload, n);
        if (st->upload_fd >= 0) {
            kiln_error_t err = {0};
            if (kiln_fs_write_all(st->upload_fd, upload, n, &err) < 0) {
                /* A full disk is the server's fault, not the request's: 507, and the partial
                 * file is emptied now so it frees its space before the request ends. */
                st->no_space = kiln_fs_errno_no_space(err.code);
                st->too_big = !st->no_space;
                if (st->no_space && ftruncate(st->upload_fd, 0) == 0)
                    st->upload_fd = (close(st->upload_fd), -1);
            }
        } else if (kiln_buf_append(&st->body, upload, n, NULL) < 0) {
            st->too_big = 1;
        }
        return MHD_YES;
    }
    if (st->no_space || st->too_big)
        drop_upload(st);
    if (st->no_space)
        return reject(st, c, MHD_HTTP_INSUFFICIENT_STORAGE,
                      "no space left on the server to store the upload");
    if (st->too_big)
        return reject(st, c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
    req.tenant = st->tenant;
    req.sent = &st->sent;
    req.body = st->upload_fd >= 0 ? NULL : (st->body.data ? st->body.data : "");
    req.body_len = st->body.len;
    req.upload_path = st->upload_path;
    req.hook = st->hook;
    if (strncmp(url, "/v1/builds", 10) == 0 || strcmp(url, "/v1/contexts") == 0)
        kiln_routes_builds(&req, &resp);
    else if (strncmp(url, "/v1/hooks/", 10) == 0)
        kiln_routes_hooks(&req, &resp);
    else
        kiln_routes_misc(&req, &resp);
    drop_upload(st);
    if (resp.tenant && st->tenant == NULL)
        st->tenant = resp.tenant;
    if (resp.status == 0 && resp.custom == NULL)
        kiln_http_error(&resp, MHD_HTTP_NOT_FOUND, "no route for %s %s", method, url);
    return send_resp(st, c, &resp);
}

/* Parses "HOST:PORT" (IPv4) into sa. */
static int parse_listen(const char *listen, struct sockaddr_in *sa, kiln_error_t *err)
{
    const char *colon = strrchr(listen, ':');
    char host[64];
    char *end = NULL;
    long port;

    memset(sa, 0, sizeof(*sa));
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
        return kiln_error_set(err, EINVAL, "--listen '%s': expected HOST:PORT", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return kiln_error_set(err, EINVAL, "--listen '%s': invalid port", listen);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
                       &sa->sin_addr) != 1)
        return kiln_error_set(err, EINVAL, "--listen '%s': invalid IPv4 address", listen);
    return 0;
}

/* Raises the soft open-file limit towards want (within the hard limit): every connection is
 * an fd, and running out of them would refuse clients before max_connections. */
static void raise_fd_limit(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int kiln_http_start(kiln_server_t *srv, const char *listen, kiln_http_t **out, kiln_error_t *err)
{
    const kiln_config_bounds_t *b = &srv->config->bounds;
    struct sockaddr_in sa;
    kiln_http_t *h;

    if (parse_listen(listen, &sa, err) < 0)
        return -1;
    raise_fd_limit((rlim_t)b->max_connections + 1024);
    h = kiln_xzalloc(sizeof(*h));
    h->srv = srv;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    /* A thread per connection (log following blocks in its response callback): idle or slow
     * connections are bounded by the silence timeout, the per-address cap (one client cannot
     * take every slot) and the total cap (each costs a thread with a small stack). */
    h->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, handle, h, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, notify_conn, h, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)b->connection_timeout, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)b->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)b->max_connections_per_address, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned int)1, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_END);
    if (h->d == NULL) {
        int e = errno;
        free(h);
        if (e == ENOSYS) /* libmicrohttpd could not be loaded (mhd_lazy): its error names it */
            return kiln_error_set(err, 0, "listen on %s: %s", listen, MHD_get_version());
        return kiln_error_set(err, e, "listen on %s", listen);
    }
    h->reaper_started = pthread_create(&h->reaper, NULL, reaper_main, h) == 0;
    *out = h;
    return 0;
}

void kiln_http_stop(kiln_http_t *h)
{
    if (h == NULL)
        return;
    if (h->reaper_started) {
        pthread_mutex_lock(&h->lock);
        h->stop = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->reaper, NULL);
    }
    MHD_stop_daemon(h->d);
    free(h);
}
