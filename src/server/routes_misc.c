/* kiln server — /healthz, /metrics (Prometheus text format) and the dashboard at /. */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "src/server/accesslog.h"
#include "src/server/http.h"
#include "src/server/worker.h"
#include "utils/buf.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define DASHBOARD_CAP (4 * 1024 * 1024)

static void metrics(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    kiln_server_t *s = r->srv;
    kiln_db_stats_t st;
    kiln_error_t err = {0};
    kiln_buf_t b;

    /* with a token, the figures of its tenant's builds only; without one, the server's totals
     * (no tenant is named either way) */
    if (kiln_db_stats_tenant(s->db, r->tenant, &st, &err) < 0) {
        kiln_http_error(resp, 500, "%s", err.msg);
        return;
    }
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL,
                     "# HELP kiln_builds Builds known to this server, by status.\n"
                     "# TYPE kiln_builds gauge\n");
    for (size_t i = 0; i < 8; i++)
        kiln_buf_appendf(&b, NULL, "kiln_builds{status=\"%s\"} %lld\n", kiln_db_statuses[i],
                         (long long)st.by_status[i]);
    kiln_buf_appendf(&b, NULL,
                     "# HELP kiln_queue_depth Builds waiting for a worker.\n"
                     "# TYPE kiln_queue_depth gauge\nkiln_queue_depth %lld\n"
                     "# HELP kiln_workers Size of the worker pool.\n"
                     "# TYPE kiln_workers gauge\nkiln_workers %d\n"
                     "# HELP kiln_workers_busy Workers running a build.\n"
                     "# TYPE kiln_workers_busy gauge\nkiln_workers_busy %d\n",
                     (long long)st.by_status[0], s->workers,
                     s->pool ? kiln_worker_pool_busy(s->pool) : 0);
    kiln_buf_appendf(&b, NULL,
                     "# HELP kiln_build_duration_seconds Time from start to end of "
                     "finished builds.\n# TYPE kiln_build_duration_seconds histogram\n");
    for (int i = 0; i < KILN_DB_HIST_BUCKETS; i++)
        kiln_buf_appendf(&b, NULL, "kiln_build_duration_seconds_bucket{le=\"%g\"} %lld\n",
                         kiln_db_hist_bounds[i], (long long)st.duration_buckets[i]);
    kiln_buf_appendf(&b, NULL,
                     "kiln_build_duration_seconds_bucket{le=\"+Inf\"} %lld\n"
                     "kiln_build_duration_seconds_sum %.3f\n"
                     "kiln_build_duration_seconds_count %lld\n"
                     "# HELP kiln_bytes_pushed_total Bytes of image data pushed by builds.\n"
                     "# TYPE kiln_bytes_pushed_total counter\nkiln_bytes_pushed_total %lld\n",
                     (long long)st.duration_count, st.duration_sum, (long long)st.duration_count,
                     (long long)st.bytes_pushed);
    kiln_buf_appendf(&b, NULL,
                     "# HELP kiln_access_log_dropped_total Access log lines that could not be "
                     "written (disk full, file gone).\n"
                     "# TYPE kiln_access_log_dropped_total counter\n"
                     "kiln_access_log_dropped_total %llu\n",
                     (unsigned long long)kiln_accesslog_dropped(s->access_log));
    resp->body = kiln_buf_steal(&b, &resp->len);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* The page's Content-Security-Policy: its one inline script allowed by hash (a script or
 * handler that markup from a build might ever become would not run), the API on this origin
 * only, no images from elsewhere, frames, forms or plugins. NULL when the page has no
 * <script>…</script>. */
static char *dashboard_csp(const char *page, size_t len)
{
    const char *a = memmem(page, len, "<script>", 8), *b;
    unsigned char md[SHA256_DIGEST_LENGTH];
    char b64[4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1];

    if (a == NULL)
        return NULL;
    a += 8;
    b = memmem(a, len - (size_t)(a - page), "</script>", 9);
    if (b == NULL)
        return NULL;
    SHA256((const unsigned char *)a, (size_t)(b - a), md);
    EVP_EncodeBlock((unsigned char *)b64, md, sizeof(md));
    return kiln_xasprintf("default-src 'none'; script-src 'sha256-%s'; style-src "
                          "'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri "
                          "'none'; form-action 'none'; frame-ancestors 'none'",
                          b64);
}

static void dashboard(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    if (r->srv->dashboard_file) {
        char *text = NULL;
        size_t len;
        if (kiln_fs_read_file(r->srv->dashboard_file, DASHBOARD_CAP, &text, &len, NULL) == 0) {
            resp->body = text;
            resp->len = len;
            resp->status = 200;
            resp->content_type = "text/html; charset=utf-8";
            resp->csp = dashboard_csp(text, len);
            return;
        }
    }
    resp->body = kiln_xstrdup(kiln_dashboard_html);
    resp->len = strlen(resp->body);
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
    resp->csp = dashboard_csp(resp->body, resp->len);
}

void kiln_routes_misc(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return;
    if (strcmp(r->path, "/healthz") == 0) {
        kiln_http_json(resp, r->srv->stopping ? 503 : 200,
                       json_pack("{s:s}", "status", r->srv->stopping ? "draining" : "ok"));
    } else if (strcmp(r->path, "/metrics") == 0) {
        metrics(r, resp);
    } else if (strcmp(r->path, "/") == 0) {
        dashboard(r, resp);
    }
}
