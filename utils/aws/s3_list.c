/* kiln — ListObjectsV2 (every page) and DeleteObject (see s3_list.h).
 *
 * A page is read by utils/aws/xml: each Contents element is a record of Key, Size and
 * LastModified, the page's IsTruncated and NextContinuationToken are plain fields. */
#include "utils/aws/s3_list.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utils/aws/sigv4.h"
#include "utils/aws/xml.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define KEY_MAX 2047 /* an S3 key is at most 1024 bytes; a token well under this */

typedef struct list_ctx {
    int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err);
    void *ud;
} list_ctx_t;

/* "2026-12-03T16:20:00.000Z" as seconds since the epoch; 0 when it is not such a time. */
static time_t iso_time(const char *s)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (end == NULL)
        return 0;
    return timegm(&tm);
}

/* One Contents element (Key, Size, LastModified) to the caller's fn. */
static int on_contents(void *ud, const kiln_aws_xml_field_t *f, kiln_error_t *err)
{
    list_ctx_t *c = ud;
    kiln_s3_listed_t o = {.key = f[0].value};
    char *end = NULL;
    errno = 0;
    if (f[1].value)
        o.size = strtoull(f[1].value, &end, 10);
    if (o.key == NULL || *o.key == '\0' || f[1].value == NULL || errno || end == f[1].value || *end)
        return kiln_error_set(err, EPROTO, "a Contents element has no key or no size");
    o.last_modified = iso_time(f[2].value);
    return c->fn(c->ud, &o, err);
}

/* kiln_s3_list_parse with every error naming what. */
static int list_parse(const char *xml, size_t len,
                      int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err), void *ud,
                      int *truncated, char **token, const char *what, kiln_error_t *err)
{
    kiln_aws_xml_field_t contents[] = {
        {"ListBucketResult/Contents/Key", NULL, KEY_MAX},
        {"ListBucketResult/Contents/Size", NULL, KEY_MAX},
        {"ListBucketResult/Contents/LastModified", NULL, KEY_MAX},
    };
    kiln_aws_xml_field_t page[] = {
        {"ListBucketResult/IsTruncated", NULL, KEY_MAX},
        {"ListBucketResult/NextContinuationToken", NULL, KEY_MAX},
    };
    list_ctx_t c = {.fn = fn, .ud = ud};
    kiln_aws_xml_records_t rec = {"ListBucketResult/Contents", contents, 3, on_contents, &c};
    _cleanup_free_ char *root = NULL;
    int ret = -1;

    *token = NULL;
    *truncated = 0;
    if (kiln_aws_xml_parse_records(xml, len, page, 2, &rec, &root, what, err) < 0)
        return -1;
    if (strcmp(root, "ListBucketResult") != 0) {
        kiln_error_set(err, EPROTO, "%s: answer is a %s, not a ListBucketResult", what, root);
        goto out;
    }
    if (page[0].value && strcmp(page[0].value, "true") == 0) {
        if (page[1].value == NULL || *page[1].value == '\0') {
            kiln_error_set(err, EPROTO, "%s: a truncated listing has no NextContinuationToken",
                           what);
            goto out;
        }
        *token = steal_pointer(&page[1].value);
        *truncated = 1;
    }
    ret = 0;
out:
    kiln_aws_xml_fields_clear(page, 2);
    return ret;
}

int kiln_s3_list_parse(const char *xml, size_t len,
                       int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err), void *ud,
                       int *truncated, char **token, kiln_error_t *err)
{
    return list_parse(xml, len, fn, ud, truncated, token, "ListObjectsV2", err);
}

/* The wire path of the bucket itself. */
static char *bucket_path(const kiln_s3_target_t *t)
{
    return t->path_style ? kiln_xasprintf("/%s", t->bucket) : kiln_xstrdup("/");
}

int kiln_s3_list(const kiln_s3_target_t *t, kiln_http_t *http, const char *prefix,
                 int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err), void *ud,
                 kiln_error_t *err)
{
    _cleanup_free_ char *path = bucket_path(t);
    _cleanup_free_ char *enc_prefix = kiln_sigv4_uri_encode(prefix, strlen(prefix), 0);
    _cleanup_free_ char *token = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("ListObjectsV2 s3://%s/%s", t->bucket, prefix);
    for (unsigned page = 0; page < KILN_S3_LIST_MAX_PAGES; page++) {
        _cleanup_free_ char *query = NULL;
        _cleanup_free_ char *enc_token = NULL;
        kiln_aws_call_t call = {.service = "s3",
                                .endpoint = &t->ep,
                                .s3 = 1,
                                .method = "GET",
                                .path = path,
                                .body_fd = -1,
                                .response_cap = KILN_AWS_XML_MAX_INPUT};
        kiln_http_response_t resp = {0};
        int truncated = 0, r;
        /* the query's parameters in the order SigV4 sorts them */
        if (token) {
            enc_token = kiln_sigv4_uri_encode(token, strlen(token), 0);
            query = kiln_xasprintf("continuation-token=%s&list-type=2&prefix=%s", enc_token,
                                   enc_prefix);
        } else {
            query = kiln_xasprintf("list-type=2&prefix=%s", enc_prefix);
        }
        call.query = query;
        if (kiln_aws_send(t->aws, http, &call, &resp, err) < 0)
            return kiln_error_prefix(err, "%s", what);
        if (resp.status != 200) {
            kiln_aws_error_from_response(&resp, err, what);
            kiln_http_response_free(&resp);
            return -1;
        }
        free(token);
        token = NULL;
        r = list_parse(resp.body, resp.body_len, fn, ud, &truncated, &token, what, err);
        kiln_http_response_free(&resp);
        if (r < 0)
            return -1;
        if (!truncated)
            return 0;
    }
    return kiln_error_set(err, E2BIG, "%s: more than %d pages", what, KILN_S3_LIST_MAX_PAGES);
}

int kiln_s3_delete_object(const kiln_s3_target_t *t, kiln_http_t *http, const char *key,
                          kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_s3_key_path(t, key);
    _cleanup_free_ char *what = kiln_xasprintf("DELETE s3://%s/%s", t->bucket, key);
    kiln_aws_call_t call = {.service = "s3",
                            .endpoint = &t->ep,
                            .s3 = 1,
                            .method = "DELETE",
                            .path = path,
                            .body_fd = -1,
                            .response_cap = 1 << 16};
    kiln_http_response_t resp = {0};
    int ret = 0;
    if (kiln_aws_send(t->aws, http, &call, &resp, err) < 0)
        return kiln_error_prefix(err, "%s", what);
    if (resp.status != 200 && resp.status != 204 && resp.status != 404) {
        kiln_aws_error_from_response(&resp, err, what);
        ret = -1;
    }
    kiln_http_response_free(&resp);
    return ret;
}
