/* kiln server — the build API: submit, list, show, logs (follow), cancel, artifacts,
 * and uploaded contexts. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "job/context.h"
#include "job/context_notes.h"
#include "src/server/audit.h"
#include "src/server/cursor.h"
#include "src/server/http.h"
#include "src/server/remote.h"
#include "src/server/request.h"
#include "src/server/runner.h"
#include "src/server/tenant.h"
#include "src/server/worker.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

char *kiln_server_log_path(const kiln_server_t *s, const char *id)
{
    return kiln_xasprintf("%s/logs/%s.log", s->root, id);
}

/* A fresh id: prefix + 16 random hex digits. */
static char *new_id(const char *prefix)
{
    uint8_t r[8];
    char hex[17];
    if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts.tv_nsec, sizeof(r) < sizeof(ts.tv_nsec) ? sizeof(r) : sizeof(ts.tv_nsec));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    return kiln_xasprintf("%s%s", prefix, hex);
}

static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

json_t *kiln_routes_queued_json(const char *id)
{
    json_t *links = json_object();
    static const char *const names[] = {"self", "logs", "artifacts", "cancel"};
    static const char *const suffix[] = {"", "/logs", "/artifacts", "/cancel"};

    for (size_t i = 0; i < 4; i++) {
        _cleanup_free_ char *l = kiln_xasprintf("/v1/builds/%s%s", id, suffix[i]);
        json_object_set_new(links, names[i], json_string(l));
    }
    return json_pack("{s:s,s:s,s:o}", "id", id, "status", "queued", "links", links);
}

/* Checks that the request's uploaded context (if any) exists and is tenant's: another
 * tenant's context is as unknown as a missing one (*status 404). */
static int check_context(kiln_server_t *s, const char *tenant, json_t *stored, unsigned int *status,
                         kiln_error_t *err)
{
    const char *ctx =
        json_string_value(json_object_get(json_object_get(stored, "source"), "context"));
    _cleanup_free_ char *dir = NULL;
    struct stat sb;
    int owned;

    if (ctx == NULL)
        return 0;
    dir = kiln_xasprintf("%s/contexts/%s", s->root, ctx);
    owned = kiln_db_context_owned(s->db, ctx, tenant, err);
    if (owned < 0) {
        *status = 500;
        return -1;
    }
    if (!owned || stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        *status = 404;
        return kiln_error_set(err, 0, "field 'source.context': no uploaded context '%s'", ctx);
    }
    return 0;
}

int kiln_routes_enqueue(kiln_server_t *s, const char *tenant, json_t *body, json_t *audit,
                        const char *dedupe_key, char **id_out, unsigned int *status,
                        kiln_error_t *err)
{
    const kiln_tenant_t *t = kiln_config_tenant_named(s->config, tenant);
    _cleanup_free_ char *audit_text = audit ? json_dumps(audit, JSON_COMPACT) : NULL;
    kiln_db_origin_t origin = {.audit_json = audit_text,
                               .dedupe_key = dedupe_key,
                               .key_retention = (double)s->config->bounds.delivery_retention};
    char *existing = NULL;
    int inserted;
    kiln_request_t req = {0};
    kiln_limits_policy_t policy;
    _cleanup_free_ char *id = new_id("b-");
    _cleanup_free_ char *text = NULL;

    *status = 400;
    if (t == NULL) {
        *status = 401;
        return kiln_error_set(err, 0, "no tenant for this request");
    }
    if (json_object_get(body, "tenant"))
        return kiln_error_set(err, 0,
                              "field 'tenant': set by the server from the API token or the "
                              "webhook project, never by the request");
    if (kiln_request_from_json(body, &req, err) < 0)
        return -1;
    /* pushes, uploads and notifications only where the tenant may write: 403 before the
     * build exists */
    if (kiln_tenant_check_outputs(t, req.stored, status, err) < 0) {
        kiln_request_free(&req);
        return -1;
    }
    /* the build's tenant travels with its request: kiln.db, the queue message, the worker */
    json_object_set_new(req.stored, "tenant", json_string(t->name));
    /* the server's default limits, the tenant's in their place, within the maxima */
    if (kiln_limits_policy_tenant(&s->limits, t->limits, &policy, err) < 0 ||
        kiln_limits_apply(req.stored, &policy, err) < 0 ||
        kiln_stepcaps_check(&s->config->stepcaps, req.stored, err) < 0 ||
        kiln_request_check_allow(req.stored, t->entitlements, err) < 0 ||
        check_context(s, t->name, req.stored, status, err) < 0) {
        kiln_request_free(&req);
        return -1;
    }
    if (s->remote && !kiln_remote_has_context_store(s->remote) &&
        json_object_get(json_object_get(req.stored, "source"), "context")) {
        kiln_request_free(&req);
        return kiln_error_set(err, 0,
                              "field 'source.context': uploaded contexts need "
                              "--context-store when builds go to a queue");
    }
    if (s->remote && s->job_key == NULL && json_object_size(req.secrets) > 0) {
        kiln_request_free(&req);
        return kiln_error_set(err, 0,
                              "field 'secrets': builds go to a queue, and secrets travel only "
                              "sealed: start the server with --job-key-file");
    }
    *status = 500;
    if (s->remote == NULL && req.secrets && json_object_size(req.secrets) > 0) {
        _cleanup_free_ char *dir = kiln_xasprintf("%s/secrets/%s", s->root, id);
        json_t *files = NULL;
        if (kiln_worker_write_secrets(dir, req.secrets, &files, err) < 0) {
            kiln_request_free(&req);
            return -1;
        }
        json_decref(files);
    }
    text = json_dumps(req.stored, JSON_COMPACT);
    inserted = kiln_db_build_insert(s->db, id, req.repo, text, &origin, &existing, err);
    if (inserted != 0) {
        /* a replay (the key started a build already) or a failure: this id never runs */
        _cleanup_free_ char *dir = kiln_xasprintf("%s/secrets/%s", s->root, id);
        kiln_fs_rm_rf(dir, NULL);
        kiln_request_free(&req);
        if (inserted < 0)
            return -1;
        *status = 200;
        *id_out = existing;
        return 0;
    }
    if (s->remote &&
        kiln_remote_enqueue(s->remote, id, req.stored, req.secrets,
                            json_string_value(json_object_get(audit, "via")), err) < 0) {
        kiln_db_finish(s->db, id, "failed", "enqueue_failed", err->msg, NULL, 0, NULL);
        /* the build never ran: a redelivery (the sender saw a 502) may start another */
        if (dedupe_key)
            kiln_db_delivery_forget(s->db, dedupe_key);
        kiln_request_free(&req);
        *status = 502;
        return -1;
    }
    kiln_request_free(&req);
    if (s->pool)
        kiln_worker_pool_wake(s->pool);
    *status = 202;
    *id_out = steal_pointer(&id);
    return 0;
}

static void post_build(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    const char *idem = kiln_http_header(r, "Idempotency-Key");
    _cleanup_free_ char *key = NULL;
    kiln_error_t err = {0};
    json_error_t je;
    json_t *body;

    if (idem && kiln_audit_check_key("Idempotency-Key", idem, &err) < 0) {
        kiln_http_error(resp, 400, "%s", err.msg);
        return;
    }
    if ((body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
        kiln_http_error(resp, 400, "malformed JSON at line %d column %d: %s", je.line, je.column,
                        je.text);
        return;
    }
    /* a retried submission with the same key (per tenant) gets the build the first started */
    key = kiln_audit_dedupe_key("api", r->tenant, idem);
    kiln_routes_submit(r->srv, r->tenant, body,
                       kiln_audit_api(r->tenant, kiln_http_header(r, "Authorization"), idem), key,
                       resp);
}

void kiln_routes_submit(kiln_server_t *s, const char *tenant, json_t *body, json_t *audit,
                        const char *dedupe_key, kiln_http_resp_t *resp)
{
    _cleanup_free_ char *id = NULL;
    kiln_error_t err = {0};
    unsigned int status;
    json_t *o;
    char now[32];

    if (kiln_routes_enqueue(s, tenant, body, audit, dedupe_key, &id, &status, &err) < 0) {
        json_decref(body);
        json_decref(audit);
        kiln_http_error(resp, status, "%s", err.msg);
        return;
    }
    json_decref(body);
    json_decref(audit);
    o = kiln_routes_queued_json(id);
    if (status == 200) {
        /* a replay: the build the first delivery started, as it is now */
        if (kiln_db_build_status(s->db, id, now, sizeof(now), NULL) == 0)
            json_object_set_new(o, "status", json_string(now));
        json_object_set_new(o, "replayed", json_true());
    }
    kiln_http_json(resp, status, o);
}

/* The longest repo or branch filter of GET /v1/builds. */
#define KILN_LIST_FILTER_MAX 1024

static void list_builds(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    const char *status = kiln_http_query(r, "status");
    const char *repo = kiln_http_query(r, "repo");
    const char *branch = kiln_http_query(r, "branch");
    const char *limit_s = kiln_http_query(r, "limit");
    const char *cursor = kiln_http_query(r, "cursor");
    int64_t before = 0, next = 0;
    long limit = 50;
    kiln_error_t err = {0};
    json_t *items = NULL, *o;

    if (status && !kiln_db_status_valid(status)) {
        kiln_http_error(resp, 400, "query 'status': unknown status '%.64s'", status);
        return;
    }
    /* repo and branch: the exact name, or its beginning followed by '*' */
    if ((repo && strlen(repo) > KILN_LIST_FILTER_MAX) ||
        (branch && strlen(branch) > KILN_LIST_FILTER_MAX)) {
        kiln_http_error(resp, 400, "query '%s': longer than %d bytes",
                        repo && strlen(repo) > KILN_LIST_FILTER_MAX ? "repo" : "branch",
                        KILN_LIST_FILTER_MAX);
        return;
    }
    if (limit_s) {
        char *end = NULL;
        limit = strtol(limit_s, &end, 10);
        if (*end || limit < 1 || limit > 500) {
            kiln_http_error(resp, 400, "query 'limit': must be 1..500");
            return;
        }
    }
    if (cursor && kiln_cursor_decode(cursor, &before, &err) < 0) {
        kiln_http_error(resp, 400, "query 'cursor': %s", err.msg);
        return;
    }
    if (kiln_db_build_list_filtered(
            r->srv->db,
            &(kiln_db_build_filter_t){
                .tenant = r->tenant, .status = status, .repo = repo, .branch = branch},
            before, (int)limit, &items, &next, &err) < 0) {
        kiln_http_error(resp, 500, "%s", err.msg);
        return;
    }
    o = json_pack("{s:o}", "builds", items);
    if (next) {
        char c[32];
        kiln_cursor_encode(next, c, sizeof(c));
        json_object_set_new(o, "next_cursor", json_string(c));
    } else {
        json_object_set_new(o, "next_cursor", json_null());
    }
    kiln_http_json(resp, 200, o);
}

/* Artifacts: image names and digests from the build's metadata, the outputs it was asked for,
 * and static file / package locations when the build reported them. */
static json_t *artifacts_json(json_t *build)
{
    json_t *res = json_object_get(build, "result"), *images = json_array();
    const char *digest = json_string_value(json_object_get(res, "containerimage.digest"));
    const char *names = json_string_value(json_object_get(res, "image.name"));
    json_t *o;

    if (digest) {
        if (names && *names) {
            _cleanup_free_ char *copy = kiln_xstrdup(names);
            char *save = NULL;
            for (char *n = strtok_r(copy, ",", &save); n; n = strtok_r(NULL, ",", &save))
                json_array_append_new(images, json_pack("{s:s,s:s}", "name", n, "digest", digest));
        } else {
            json_array_append_new(images, json_pack("{s:n,s:s}", "name", "digest", digest));
        }
    }
    {
        /* Files the build wrote (static sites, function packages), each with its download. */
        json_t *files = json_array(), *f;
        const char *id = json_string_value(json_object_get(build, "id"));
        size_t i;
        json_array_foreach(json_object_get(res, "files"), i, f)
        {
            const char *path = json_string_value(json_object_get(f, "path"));
            _cleanup_free_ char *url = NULL;
            if (path == NULL)
                continue;
            url = kiln_xasprintf("/v1/builds/%s/artifacts/files/%s", id, path);
            json_array_append_new(files, json_pack("{s:s,s:O,s:s}", "path", path, "size",
                                                   json_object_get(f, "size"), "url", url));
        }
        o = json_pack("{s:O,s:O,s:o,s:o,s:O}", "id", json_object_get(build, "id"), "status",
                      json_object_get(build, "status"), "images", images, "files", files, "outputs",
                      json_object_get(build, "outputs"));
    }
    json_object_set(o, "metadata", res ? res : json_null());
    return o;
}

typedef struct log_stream {
    kiln_server_t *srv;
    int sock; /* the client's socket: a follower that hung up is noticed while waiting */
    char *id;
    char *path;
    int fd;
    uint64_t off;
    int sse;
    int ended;
    uint64_t *sent; /* the request's count of body bytes sent (the access log) */
} log_stream_t;

static void log_stream_free(void *cls)
{
    log_stream_t *ls = cls;
    if (ls->fd >= 0)
        close(ls->fd);
    free(ls->id);
    free(ls->path);
    free(ls);
}

/* Reads what is new in the log into buf; for SSE, whole lines as "data:" events. */
static ssize_t log_read(log_stream_t *ls, char *buf, size_t max, int final)
{
    char tmp[8192];
    size_t want, used = 0, out = 0;
    ssize_t n;

    if (ls->fd < 0) {
        ls->fd = open(ls->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (ls->fd < 0)
            return 0;
    }
    if (!ls->sse) {
        n = pread(ls->fd, buf, max, (off_t)ls->off);
        if (n > 0)
            ls->off += (uint64_t)n;
        return n > 0 ? n : 0;
    }
    /* Each line grows by at most "data: " + "\n" + "\n"; read what surely fits. */
    want = max / 2 > sizeof(tmp) ? sizeof(tmp) : max / 2;
    n = pread(ls->fd, tmp, want, (off_t)ls->off);
    if (n <= 0)
        return 0;
    while (used < (size_t)n) {
        char *nl = memchr(tmp + used, '\n', (size_t)n - used);
        size_t len;
        if (nl == NULL && !final && (size_t)n == want && used == 0)
            nl = tmp + n - 1; /* one overlong line: send what we have */
        if (nl == NULL && !final)
            break;
        len = nl ? (size_t)(nl - (tmp + used)) : (size_t)n - used;
        if (out + len + 8 > max)
            break;
        memcpy(buf + out, "data: ", 6);
        memcpy(buf + out + 6, tmp + used, len);
        buf[out + 6 + len] = '\n';
        buf[out + 7 + len] = '\n';
        out += len + 8;
        used += len + (nl ? 1 : 0);
    }
    ls->off += used;
    return (ssize_t)out;
}

/* True when the peer closed its side of the connection. */
static int client_gone(int sock)
{
    struct pollfd p = {.fd = sock, .events = POLLRDHUP};
    if (sock < 0)
        return 0;
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* The next piece of a followed log: what is new, waiting for it while the build runs. */
static ssize_t log_follow(log_stream_t *ls, char *buf, size_t max)
{
    char status[32];

    if (ls->ended)
        return MHD_CONTENT_READER_END_OF_STREAM;
    for (;;) {
        ssize_t n = log_read(ls, buf, max, 0);
        if (n > 0)
            return n;
        if (ls->srv->stopping || client_gone(ls->sock))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (kiln_db_build_status(ls->srv->db, ls->id, status, sizeof(status), NULL) < 0 ||
            kiln_db_status_final(status)) {
            /* Everything was written before the status changed: one last read. */
            n = log_read(ls, buf, max, 1);
            if (n > 0)
                return n;
            ls->ended = 1;
            if (ls->sse) {
                int k = snprintf(buf, max, "event: end\ndata: %s\n\n", status);
                return k > 0 && (size_t)k < max ? k : MHD_CONTENT_READER_END_OF_STREAM;
            }
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        usleep(100 * 1000);
    }
}

static ssize_t log_follow_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    log_stream_t *ls = cls;
    ssize_t n = log_follow(ls, buf, max);

    /* only called while the request is being answered, before its state is freed */
    if (n > 0 && ls->sent)
        *ls->sent = pos + (uint64_t)n;
    return n;
}

static void get_logs(const kiln_http_req_t *r, kiln_http_resp_t *resp, const char *id)
{
    const char *follow = kiln_http_query(r, "follow");
    const char *since = kiln_http_query(r, "since");
    const char *accept = kiln_http_header(r, "Accept");
    log_stream_t *ls;
    uint64_t off = 0;
    char status[32];

    if (kiln_db_build_status(r->srv->db, id, status, sizeof(status), NULL) < 0) {
        kiln_http_error(resp, 404, "no build with id '%s'", id);
        return;
    }
    if (since) {
        char *end = NULL;
        errno = 0;
        off = strtoull(since, &end, 10);
        if (errno || *end || since[0] == '-') {
            kiln_http_error(resp, 400, "query 'since': must be a byte offset");
            return;
        }
    }
    ls = kiln_xzalloc(sizeof(*ls));
    ls->srv = r->srv;
    ls->id = kiln_xstrdup(id);
    ls->path = kiln_server_log_path(r->srv, id);
    ls->fd = -1;
    ls->sock = -1;
    {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            ls->sock = ci->connect_fd;
    }
    ls->off = off;
    ls->sse = accept && strstr(accept, "text/event-stream") != NULL;
    ls->sent = r->sent;
    if (follow && strcmp(follow, "0") != 0 && strcmp(follow, "false") != 0) {
        resp->custom = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, log_follow_cb,
                                                         ls, log_stream_free);
        if (resp->custom == NULL) {
            log_stream_free(ls);
            kiln_http_error(resp, 500, "cannot create a response");
            return;
        }
        MHD_add_response_header(resp->custom, MHD_HTTP_HEADER_CONTENT_TYPE,
                                ls->sse ? "text/event-stream" : "text/plain; charset=utf-8");
        resp->status = 200;
        return;
    }
    {
        /* The log so far; X-Log-Offset tells where to resume with ?since=. */
        _cleanup_free_ char *text = NULL;
        struct stat sb;
        size_t len = 0;
        char hdr[32];
        ls->fd = open(ls->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (ls->fd >= 0 && fstat(ls->fd, &sb) == 0 && (uint64_t)sb.st_size > off) {
            len = (size_t)((uint64_t)sb.st_size - off);
            text = kiln_xmalloc(len + 1);
            ssize_t n = pread(ls->fd, text, len, (off_t)off);
            len = n > 0 ? (size_t)n : 0;
        }
        resp->body = text ? steal_pointer(&text) : kiln_xstrdup("");
        resp->len = len;
        resp->status = 200;
        resp->content_type = "text/plain; charset=utf-8";
        resp->custom = MHD_create_response_from_buffer(len, resp->body, MHD_RESPMEM_MUST_FREE);
        resp->body = NULL;
        MHD_add_response_header(resp->custom, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
        snprintf(hdr, sizeof(hdr), "%" PRIu64, off + len);
        MHD_add_response_header(resp->custom, "X-Log-Offset", hdr);
        log_stream_free(ls);
    }
}

/* Sends a file the build kept: resolved beneath the build's artifacts directory, no
 * symlinks, no "..". */
static void get_artifact_file(const kiln_http_req_t *r, kiln_http_resp_t *resp, const char *id,
                              const char *path)
{
    _cleanup_free_ char *dir = kiln_xasprintf("%s/artifacts/%s", r->srv->root, id);
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                           .resolve =
                               RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    struct stat sb;
    int fd;

    if (dfd < 0 || path[0] == '\0' || strstr(path, "..")) {
        kiln_http_error(resp, 404, "no such artifact");
        return;
    }
    fd = (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        kiln_http_error(resp, 404, "no such artifact");
        return;
    }
    resp->len = (size_t)sb.st_size;
    resp->custom = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
    if (resp->custom == NULL) {
        close(fd);
        kiln_http_error(resp, 500, "cannot send the file");
        return;
    }
    MHD_add_response_header(resp->custom, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    resp->status = 200;
}

static void cancel_build(const kiln_http_req_t *r, kiln_http_resp_t *resp, const char *id)
{
    kiln_error_t err = {0};
    int was_running = 0;
    json_t *o = NULL;

    if (kiln_db_cancel(r->srv->db, id, &was_running, &err) < 0) {
        if (err.code == ENOENT)
            kiln_http_error(resp, 404, "%s", err.msg);
        else if (err.code == EALREADY)
            kiln_http_error(resp, 409, "%s", err.msg);
        else
            kiln_http_error(resp, 500, "%s", err.msg);
        return;
    }
    if (was_running && r->srv->pool)
        kiln_worker_pool_cancel(r->srv->pool, id);
    if (r->srv->remote && kiln_remote_cancel(r->srv->remote, id, &err) < 0) {
        /* The record says canceled; the worker may still finish its build (ignored). */
        _cleanup_free_ char *log = kiln_server_log_path(r->srv, id);
        _cleanup_free_ char *note = kiln_xasprintf("[kiln] cancel: %s", err.msg);
        kiln_runner_log_note(log, note, NULL);
    }
    if (!was_running) {
        _cleanup_free_ char *dir = kiln_xasprintf("%s/secrets/%s", r->srv->root, id);
        kiln_fs_rm_rf(dir, NULL);
    }
    if (kiln_db_build_get(r->srv->db, id, &o, &err) < 0) {
        kiln_http_error(resp, 500, "%s", err.msg);
        return;
    }
    kiln_http_json(resp, 200, o);
}

static void post_context(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    _cleanup_free_ char *id = new_id("ctx-");
    _cleanup_free_ char *dir = kiln_xasprintf("%s/contexts/%s", r->srv->root, id);
    _cleanup_free_ char *tmp = kiln_xasprintf("%s/contexts/.%s.tmp", r->srv->root, id);
    /* what the unpack wrote (stat, content id), for the stat cache of its builds */
    _cleanup_free_ char *notes_path = kiln_xasprintf("%s/contexts/%s.notes", r->srv->root, id);
    const kiln_config_bounds_t *b = &r->srv->config->bounds;
    kiln_context_caps_t caps = {(uint64_t)b->max_context_unpacked_bytes,
                                (uint64_t)b->max_context_entries};
    kiln_context_notes_t notes = {0};
    kiln_error_t err = {0};
    int unpacked;

    unpacked =
        kiln_fs_mkdir_p(tmp, 0700, &err) == 0 &&
        kiln_context_unpack(r->upload_path, tmp, &caps, kiln_context_notes_add, &notes, &err) == 0;
    /* notes that cannot be written only cost its builds hashing every file */
    if (unpacked && kiln_context_notes_save(&notes, notes_path, NULL) < 0)
        unlink(notes_path);
    kiln_context_notes_clear(&notes);
    if (!unpacked) {
        kiln_fs_rm_rf(tmp, NULL);
        if (err.code == EFBIG)
            kiln_http_error(resp, 413, "%s", err.msg);
        else if (kiln_fs_errno_no_space(err.code))
            kiln_http_error(resp, 507, "no space left on the server to store the context (%s)",
                            err.msg);
        else
            kiln_http_error(resp, 400, "%s", err.msg);
        return;
    }
    if (r->srv->remote && kiln_remote_stage_context(r->srv->remote, r->upload_path, id, &err) < 0) {
        kiln_fs_rm_rf(tmp, NULL);
        unlink(notes_path);
        kiln_http_error(resp, kiln_remote_has_context_store(r->srv->remote) ? 502 : 400, "%s",
                        err.msg);
        return;
    }
    if (kiln_db_context_insert(r->srv->db, id, r->tenant, &err) < 0 || rename(tmp, dir) < 0) {
        kiln_fs_rm_rf(tmp, NULL);
        unlink(notes_path);
        kiln_db_context_forget(r->srv->db, id, NULL);
        kiln_http_error(resp, 500, "cannot store the context");
        return;
    }
    kiln_http_json(resp, 201, json_pack("{s:s}", "context", id));
}

void kiln_routes_builds(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    const char *p = r->path;
    const char *rest, *slash;
    char id[65];
    size_t n;

    if (strcmp(p, "/v1/contexts") == 0) {
        if (strcmp(r->method, "POST") == 0)
            post_context(r, resp);
        else
            kiln_http_error(resp, 405, "use POST");
        return;
    }
    if (strcmp(p, "/v1/builds") == 0 || strcmp(p, "/v1/builds/") == 0) {
        if (strcmp(r->method, "POST") == 0)
            post_build(r, resp);
        else if (strcmp(r->method, "GET") == 0)
            list_builds(r, resp);
        else
            kiln_http_error(resp, 405, "use GET or POST");
        return;
    }
    if (strncmp(p, "/v1/builds/", 11) != 0)
        return;
    rest = p + 11;
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!valid_id(rest, n)) {
        kiln_http_error(resp, 404, "no build with that id");
        return;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    if (slash == NULL && strcmp(r->method, "GET") == 0) {
        /* the hot path: the owner is checked on the row the body is made from (one read);
         * another tenant's build is answered exactly like one that does not exist */
        kiln_error_t err = {0};
        char *body = NULL;
        size_t len = 0;
        int found = kiln_db_build_body(r->srv->db, id, r->tenant, &body, &len, &err);
        if (found < 0)
            kiln_http_error(resp, 500, "%s", err.msg);
        else if (found == 0)
            kiln_http_error(resp, 404, "no build with id '%s'", id);
        else
            kiln_http_json_text(resp, 200, body, len);
        return;
    }
    {
        /* Another tenant's build is answered exactly like one that does not exist, on every
         * route below (and any added later). */
        kiln_error_t err = {0};
        int owned = kiln_db_build_owned(r->srv->db, id, r->tenant, &err);
        if (owned <= 0) {
            if (owned < 0)
                kiln_http_error(resp, 500, "%s", err.msg);
            else
                kiln_http_error(resp, 404, "no build with id '%s'", id);
            return;
        }
    }
    if (slash == NULL || strcmp(slash, "/artifacts") == 0) {
        json_t *o = NULL;
        kiln_error_t err = {0};
        if (strcmp(r->method, "GET") != 0) {
            kiln_http_error(resp, 405, "use GET");
            return;
        }
        if (kiln_db_build_get(r->srv->db, id, &o, &err) < 0) {
            kiln_http_error(resp, err.code == ENOENT ? 404 : 500, "%s", err.msg);
            return;
        }
        if (slash) {
            json_t *a = artifacts_json(o);
            json_decref(o);
            o = a;
        }
        kiln_http_json(resp, 200, o);
    } else if (strncmp(slash, "/artifacts/files/", 17) == 0 && strcmp(r->method, "GET") == 0) {
        get_artifact_file(r, resp, id, slash + 17);
    } else if (strcmp(slash, "/logs") == 0 && strcmp(r->method, "GET") == 0) {
        get_logs(r, resp, id);
    } else if (strcmp(slash, "/cancel") == 0 && strcmp(r->method, "POST") == 0) {
        cancel_build(r, resp, id);
    }
}
