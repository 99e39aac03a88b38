/* kiln server — uploaded contexts and cancel markers in the S3 context store of queue mode
 * (see s3_context.h). */
#include "src/server/s3_context.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/server/sqs_jobs.h"
#include "utils/aws/s3.h"
#include "utils/aws/sigv4.h"
#include "utils/aws/xml.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_s3_context_put(kiln_aws_t *aws, const char *tarball, const char *url, kiln_error_t *err)
{
    kiln_s3_stats_t st;
    kiln_s3_opts_t o = {.cache_control = "no-store"};
    return kiln_s3_upload_file(aws, tarball, url, &o, &st, err);
}

/* Sends one object request (method on url, an optional memory body) and leaves the answer,
 * whatever its status, in *resp. Errors (no answer at all) name `what`. */
static int bucket_call(kiln_aws_t *aws, const char *method, const char *url, const char *query,
                       const void *body, size_t body_len, size_t cap, const char *what,
                       kiln_http_response_t *resp, kiln_error_t *err);

static int object_call(kiln_aws_t *aws, const char *method, const char *url, const void *body,
                       size_t body_len, size_t cap, const char *what, kiln_http_response_t *resp,
                       kiln_error_t *err)
{
    return bucket_call(aws, method, url, NULL, body, body_len, cap, what, resp, err);
}

/* Like object_call with a query (then url may name only the bucket: a bucket request). */
static int bucket_call(kiln_aws_t *aws, const char *method, const char *url, const char *query,
                       const void *body, size_t body_len, size_t cap, const char *what,
                       kiln_http_response_t *resp, kiln_error_t *err)
{
    _cleanup_free_ char *bucket = NULL, *key = NULL, *enc = NULL, *wire = NULL;
    const char *force = getenv("KILN_S3_PATH_STYLE");
    kiln_aws_endpoint_t ep = {0};
    kiln_aws_call_t call = {0};
    int path_style, ret;

    if (kiln_s3_parse_url(url, &bucket, &key, err) < 0)
        return -1;
    if (key[0] == '\0' && query == NULL)
        return kiln_error_set(err, 0, "%s: no object key", what);
    if (kiln_aws_endpoint_resolve("s3", aws->region, &ep, err) < 0)
        return -1;
    path_style = ep.custom || strchr(bucket, '.') != NULL;
    if (force && force[0])
        path_style = strcmp(force, "1") == 0;
    enc = kiln_sigv4_uri_encode(key, strlen(key), 1);
    if (path_style) {
        wire = kiln_xasprintf("/%s/%s", bucket, enc);
    } else {
        char *h = kiln_xasprintf("%s.%s", bucket, ep.host);
        free(ep.host);
        ep.host = h;
        wire = kiln_xasprintf("/%s", enc);
    }
    call.service = "s3";
    call.s3 = 1;
    call.endpoint = &ep;
    call.method = method;
    call.path = wire;
    call.query = query;
    call.body = body;
    call.body_len = body_len;
    call.body_fd = -1;
    call.response_cap = cap;
    ret = kiln_aws_send(aws, NULL, &call, resp, err);
    if (ret < 0)
        kiln_error_prefix(err, "%s", what);
    kiln_aws_endpoint_clear(&ep);
    return ret;
}

/* GETs the object at url (at most cap bytes): 1 with *resp (the caller frees it), 0 when it
 * does not exist (404, or 403 without list permission), -1 on any other answer or none. */
static int get_object(kiln_aws_t *aws, const char *url, size_t cap, kiln_http_response_t *resp,
                      kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("S3 GetObject %s", url);

    if (object_call(aws, "GET", url, NULL, 0, cap, what, resp, err) < 0)
        return -1;
    long status = (long)resp->status;

    if (status == 200)
        return 1;
    if (status != 404 && status != 403)
        kiln_aws_error_from_response(resp, err, what);
    else
        kiln_error_set(err, 0, "%s: no such object", what);
    kiln_http_response_free(resp);
    return status == 404 || status == 403 ? 0 : -1;
}

int kiln_s3_context_get(kiln_aws_t *aws, const char *url, const char *path, size_t cap,
                        kiln_error_t *err)
{
    kiln_http_response_t resp = {0};
    int ret;

    if (get_object(aws, url, cap, &resp, err) <= 0)
        return -1;
    ret = kiln_fs_write_file_atomic(path, resp.body, resp.body_len, 0600, err);
    kiln_http_response_free(&resp);
    return ret;
}

int kiln_s3_context_mark(kiln_aws_t *aws, const char *url, const char *text, kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("S3 PutObject %s", url);
    kiln_http_response_t resp = {0};
    int ret = 0;

    if (object_call(aws, "PUT", url, text, strlen(text), 1 << 16, what, &resp, err) < 0)
        return -1;
    if (resp.status != 200) {
        kiln_aws_error_from_response(&resp, err, what);
        ret = -1;
    }
    kiln_http_response_free(&resp);
    return ret;
}

int kiln_s3_context_exists(kiln_aws_t *aws, const char *url, kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("S3 HeadObject %s", url);
    kiln_http_response_t resp = {0};
    int ret;

    if (object_call(aws, "HEAD", url, NULL, 0, 1 << 16, what, &resp, err) < 0)
        return -1;
    if (resp.status == 200)
        ret = 1;
    else if (resp.status == 404 || resp.status == 403)
        ret = 0; /* 403: S3 answers so for a missing key without s3:ListBucket */
    else
        ret = kiln_error_set(err, 0, "%s: HTTP %ld", what, (long)resp.status);
    kiln_http_response_free(&resp);
    return ret;
}

int kiln_s3_context_read(kiln_aws_t *aws, const char *url, size_t cap, char **text,
                         kiln_error_t *err)
{
    kiln_http_response_t resp = {0};
    int got = get_object(aws, url, cap, &resp, err);

    if (got <= 0)
        return got;
    *text = kiln_xmalloc(resp.body_len + 1);
    memcpy(*text, resp.body, resp.body_len);
    (*text)[resp.body_len] = '\0';
    kiln_http_response_free(&resp);
    return 1;
}

int kiln_s3_context_delete(kiln_aws_t *aws, const char *url, kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("S3 DeleteObject %s", url);
    kiln_http_response_t resp = {0};
    int ret = 0;

    if (object_call(aws, "DELETE", url, NULL, 0, 1 << 16, what, &resp, err) < 0)
        return -1;
    if (resp.status != 200 && resp.status != 204 && resp.status != 404) {
        kiln_aws_error_from_response(&resp, err, what);
        ret = -1;
    }
    kiln_http_response_free(&resp);
    return ret;
}

int kiln_s3_context_next_key(kiln_aws_t *aws, const char *prefix_url, const char *after, char **key,
                             kiln_error_t *err)
{
    _cleanup_free_ char *bucket = NULL, *prefix = NULL, *bucket_url = NULL, *query = NULL;
    _cleanup_free_ char *enc_prefix = NULL, *enc_after = NULL, *what = NULL;
    kiln_http_response_t resp = {0};
    kiln_error_t xerr = {0};
    char *k;
    int ret = -1;

    if (kiln_s3_parse_url(prefix_url, &bucket, &prefix, err) < 0)
        return -1;
    what = kiln_xasprintf("S3 ListObjectsV2 %s", prefix_url);
    bucket_url = kiln_xasprintf("s3://%s", bucket);
    enc_prefix = kiln_sigv4_uri_encode(prefix, strlen(prefix), 0);
    enc_after = after ? kiln_sigv4_uri_encode(after, strlen(after), 0) : kiln_xstrdup("");
    query = kiln_xasprintf("list-type=2&max-keys=1&prefix=%s%s%s", enc_prefix,
                           after ? "&start-after=" : "", enc_after);
    if (bucket_call(aws, "GET", bucket_url, query, NULL, 0, 1 << 20, what, &resp, err) < 0)
        return -1;
    if (resp.status != 200) {
        kiln_aws_error_from_response(&resp, err, what);
        goto out;
    }
    k = kiln_aws_xml_text(resp.body, resp.body_len, "ListBucketResult/Contents/Key", what, &xerr);
    if (k == NULL && strstr(xerr.msg, "has no") == NULL) {
        kiln_error_set(err, 0, "%s", xerr.msg);
        goto out;
    }
    *key = k;
    ret = k != NULL;
out:
    kiln_http_response_free(&resp);
    return ret;
}
