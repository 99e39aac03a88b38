/* kiln — ADD <url>: a download under the build's fetch policy, capped in size, checked
 * against --checksum, named as the URL's last path component. */
#include "engine/fetch.h"

/* The URL without userinfo and query, for messages (tokens stay out of logs). */
static char *url_for_display(const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    size_t n;
    if (at && (!slash || at < slash))
        host = at + 1;
    n = strcspn(host, "?#");
    return kiln_xasprintf("%.*s%.*s", p ? (int)(p + 3 - url) : 0, url, (int)n, host);
}

/* The file name ADD gives a download: the last path element of the URL. */
char *kiln_fetch_url_basename(const char *url)
{
    _cleanup_free_ char *clean = url_for_display(url);
    const char *p = strstr(clean, "://");
    const char *path = strchr(p ? p + 3 : clean, '/');
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (slash == NULL || slash[1] == '\0')
        return kiln_xstrdup("index.html");
    return kiln_xstrdup(slash + 1);
}

/* Downloads url into a file in the work dir; *digest is its sha256. When
 * checksum ("sha256:hex") is given the content must match it. */
int kiln_fetch_url(engine_t *e, const char *url, const char *checksum, char **file,
                   kiln_digest_t *digest, kiln_error_t *err)
{
    kiln_http_t *h = kiln_http_new();
    kiln_http_request_t rq = {.method = "GET",
                              .url = url,
                              .body_fd = -1,
                              .response_cap = ADD_URL_MAX,
                              .timeout_seconds = 600,
                              .follow_redirects = 1};
    kiln_http_response_t resp = {0};
    _cleanup_free_ char *shown = url_for_display(url);
    _cleanup_free_ char *path = NULL;
    int r;

    kiln_http_set_policy(h, e->fetch_policy);
    r = kiln_http_do(h, &rq, &resp, err);
    if (r < 0) {
        if (kiln_http_refusal(h) != NULL) /* the policy's message names the address */
            kiln_error_set(err, 0, "ADD %s: %s", shown, kiln_http_refusal(h));
        else
            kiln_error_prefix(err, "ADD %s", shown);
        kiln_http_free(h);
        return -1;
    }
    kiln_http_free(h);
    if (resp.status != 200) {
        kiln_http_response_free(&resp);
        return kiln_error_set(err, 0, "ADD %s: HTTP status %ld", shown, resp.status);
    }
    kiln_digest_bytes(resp.body, resp.body_len, digest);
    if (checksum != NULL) {
        kiln_digest_t want;
        char got[KILN_DIGEST_STR_MAX];
        if (kiln_digest_parse(checksum, &want, NULL) < 0) {
            kiln_http_response_free(&resp);
            return kiln_error_set(err, 0, "invalid --checksum %s (want sha256:HEX)", checksum);
        }
        if (!kiln_digest_equal(&want, digest)) {
            kiln_http_response_free(&resp);
            return kiln_error_set(err, 0, "ADD %s: checksum mismatch: expected %s, got %s", shown,
                                  checksum, kiln_digest_str(digest, got));
        }
    }
    path = kiln_xasprintf("%s/url-XXXXXX", e->work);
    {
        _cleanup_close_ int fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0 || kiln_fs_write_all(fd, resp.body, resp.body_len, err) < 0) {
            if (fd < 0)
                kiln_error_set(err, errno, "creating %s", path);
            kiln_http_response_free(&resp);
            return -1;
        }
    }
    kiln_http_response_free(&resp);
    *file = steal_pointer(&path);
    return 0;
}
