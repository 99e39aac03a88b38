/* kiln — ListObjectsV2 (every page) and DeleteObject (see s3_list.h).
 *
 * A page is read with expat like utils/aws/xml: the element path is kept with kiln_xml_path
 * (depth and element count capped, a DOCTYPE refused), and the text of Contents/Key,
 * Contents/Size and Contents/LastModified is collected per Contents element under a cap. */
#include "utils/aws/s3_list.h"

#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/aws/sigv4.h"
#include "utils/aws/xml.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/xmlpath.h"

#define TEXT_MAX 2048 /* an S3 key is at most 1024 bytes; a token well under this */

enum { F_KEY, F_SIZE, F_MTIME, F_TRUNC, F_TOKEN, F_N };

static const char *const field_path[F_N] = {
    "ListBucketResult/Contents/Key",          "ListBucketResult/Contents/Size",
    "ListBucketResult/Contents/LastModified", "ListBucketResult/IsTruncated",
    "ListBucketResult/NextContinuationToken",
};

typedef struct list_ctx {
    kiln_xml_path_t at; /* first: kiln_xml_refuse_dtd's handlers need it */
    XML_Parser parser;
    int reading; /* the field whose element is open, or -1 */
    char text[F_N][TEXT_MAX];
    size_t len[F_N];
    int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err);
    void *ud;
    char *root;
    int failed;
    kiln_error_t err;
} list_ctx_t;

static void stop(list_ctx_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void stop(list_ctx_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    if (!c->failed) {
        c->failed = 1;
        va_start(ap, fmt);
        vsnprintf(c->err.msg, sizeof(c->err.msg), fmt, ap);
        va_end(ap);
        c->err.code = code;
    }
    XML_StopParser(c->parser, XML_FALSE);
}

static void refuse(void *data, bool doctype)
{
    stop(data, EPROTO, "answer has a %s (refused)", doctype ? "DOCTYPE" : "entity declaration");
}

/* "2026-12-03T16:20:00.000Z" as seconds since the epoch; 0 when it is not such a time. */
static time_t iso_time(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL)
        return 0;
    return timegm(&tm);
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
    list_ctx_t *c = data;
    int r;
    (void)attrs;
    if (c->failed)
        return;
    if (c->at.depth == 0 && c->root == NULL)
        c->root = kiln_xstrdup(kiln_xml_local_name(name));
    if ((r = kiln_xml_path_push(&c->at, name)) < 0) {
        stop(c, E2BIG, "answer has too many or too deeply nested elements");
        return;
    }
    if (!kiln_xml_path_valid(&c->at))
        return;
    if (strcmp(c->at.path, "ListBucketResult/Contents") == 0) {
        for (int i = F_KEY; i <= F_MTIME; i++)
            c->len[i] = 0, c->text[i][0] = '\0';
        return;
    }
    for (int i = 0; i < F_N; i++)
        if (strcmp(c->at.path, field_path[i]) == 0) {
            c->reading = i;
            c->len[i] = 0;
            c->text[i][0] = '\0';
        }
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
    list_ctx_t *c = data;
    (void)name;
    if (c->failed)
        return;
    if (kiln_xml_path_valid(&c->at) && strcmp(c->at.path, "ListBucketResult/Contents") == 0) {
        kiln_s3_listed_t o = {.key = c->text[F_KEY]};
        char *end = NULL;
        errno = 0;
        o.size = strtoull(c->text[F_SIZE], &end, 10);
        if (c->len[F_KEY] == 0 || errno || end == c->text[F_SIZE] || *end) {
            stop(c, EPROTO, "a Contents element has no key or no size");
            return;
        }
        o.last_modified = iso_time(c->text[F_MTIME]);
        if (c->fn(c->ud, &o, &c->err) < 0) {
            c->failed = 1;
            XML_StopParser(c->parser, XML_FALSE);
            return;
        }
    }
    c->reading = -1;
    kiln_xml_path_pop(&c->at);
}

static void XMLCALL on_text(void *data, const XML_Char *s, int n)
{
    list_ctx_t *c = data;
    int f = c->reading;
    if (c->failed || f < 0 || n <= 0)
        return;
    if ((size_t)n >= TEXT_MAX - c->len[f]) {
        stop(c, E2BIG, "answer has a %s over %d bytes", field_path[f], TEXT_MAX - 1);
        return;
    }
    memcpy(c->text[f] + c->len[f], s, (size_t)n);
    c->len[f] += (size_t)n;
    c->text[f][c->len[f]] = '\0';
}

int kiln_s3_list_parse(const char *xml, size_t len,
                       int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err), void *ud,
                       int *truncated, char **token, kiln_error_t *err)
{
    list_ctx_t *c;
    int ret = -1;
    *token = NULL;
    *truncated = 0;
    if (len > KILN_AWS_XML_MAX_INPUT)
        return kiln_error_set(err, E2BIG, "ListObjectsV2 answer over %u bytes",
                              KILN_AWS_XML_MAX_INPUT);
    c = kiln_xzalloc(sizeof(*c));
    c->reading = -1;
    c->fn = fn;
    c->ud = ud;
    c->parser = XML_ParserCreateNS(NULL, KILN_XML_NS_SEP);
    XML_SetUserData(c->parser, c);
    XML_SetElementHandler(c->parser, on_start, on_end);
    XML_SetCharacterDataHandler(c->parser, on_text);
    kiln_xml_refuse_dtd(c->parser, &c->at, refuse);
    if (XML_Parse(c->parser, xml, (int)len, XML_TRUE) == XML_STATUS_ERROR && !c->failed)
        stop(c, EPROTO, "answer is not valid XML (line %lu: %s)",
             (unsigned long)XML_GetCurrentLineNumber(c->parser),
             XML_ErrorString(XML_GetErrorCode(c->parser)));
    if (c->failed) {
        *err = c->err;
        goto out;
    }
    if (c->root == NULL || strcmp(c->root, "ListBucketResult") != 0) {
        kiln_error_set(err, EPROTO, "answer is a %s, not a ListBucketResult",
                       c->root ? c->root : "(nothing)");
        goto out;
    }
    *truncated = strcmp(c->text[F_TRUNC], "true") == 0;
    if (*truncated) {
        if (c->len[F_TOKEN] == 0) {
            kiln_error_set(err, EPROTO, "a truncated listing has no NextContinuationToken");
            goto out;
        }
        *token = kiln_xstrdup(c->text[F_TOKEN]);
    }
    ret = 0;
out:
    XML_ParserFree(c->parser);
    free(c->root);
    free(c);
    return ret;
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
        r = kiln_s3_list_parse(resp.body, resp.body_len, fn, ud, &truncated, &token, err);
        kiln_http_response_free(&resp);
        if (r < 0)
            return kiln_error_prefix(err, "%s", what);
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
