/* kiln — a remote build cache's spec and its objects in S3 (see remote_store.h). */
#include "engine/remote_store.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cachemanifest.h"
#include "utils/aws/s3.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Ranges of a large blob fetched one at a time into the store. */
#define RANGE_SIZE (16u << 20)

struct kiln_rstore {
    kiln_aws_t *aws;
    kiln_s3_target_t t;
    char *base; /* "" or "a/b" */
    char *name; /* s3://B/base */
    char *spec; /* the spec that opens it again (with ns) */
    char *ns;   /* the cache namespace it was opened for, or NULL */
};

void kiln_rcache_spec_clear(kiln_rcache_spec_t *s)
{
    free(s->type);
    free(s->bucket);
    free(s->prefix);
    free(s->region);
    free(s->endpoint);
    free(s->ref);
    memset(s, 0, sizeof(*s));
}

char *kiln_rcache_spec_name(const kiln_rcache_spec_t *s)
{
    if (strcmp(s->type, "s3") == 0)
        return kiln_xasprintf("s3://%s%s%s", s->bucket, s->prefix[0] ? "/" : "", s->prefix);
    return kiln_xstrdup(s->ref);
}

/* An S3 bucket name: 3..63 of [a-z0-9.-], starting and ending with a letter or digit. */
static int check_bucket(const char *b, kiln_error_t *err)
{
    size_t n = strlen(b);
    bool ok = n >= 3 && n <= 63 && isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
    for (size_t i = 0; ok && i < n; i++)
        ok = islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '.' ||
             b[i] == '-';
    return ok ? 0 : kiln_error_set(err, 0, "bucket=%.80s is not an S3 bucket name", b);
}

/* A key prefix: at most 256 of [A-Za-z0-9._/-] in components that are not empty, "." or
 * "..", no leading or trailing '/' (one is dropped). */
static int check_prefix(char *p, kiln_error_t *err)
{
    size_t n = strlen(p);
    kiln_error_t perr = {0};
    while (n > 0 && p[n - 1] == '/')
        p[--n] = '\0';
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && strchr("._/-", p[i]) == NULL)
            return kiln_error_set(err, EINVAL,
                                  "prefix=%.80s: only letters, digits and . _ / - are allowed", p);
    if (n > 256 || kiln_cm_check_path(p, &perr) < 0)
        return kiln_error_set(err, 0, "prefix=%.80s: %s", p, n > 256 ? "too long" : perr.msg);
    return 0;
}

int kiln_rcache_spec_parse(const char *spec, int server_mode, kiln_rcache_spec_t *out,
                           kiln_error_t *err)
{
    kiln_rcache_spec_t s = {0};
    _cleanup_free_ char *copy = kiln_xstrdup(spec);
    char *save = NULL;
    if (strchr(spec, '=') == NULL) { /* a bare reference */
        s.type = kiln_xstrdup("registry");
        s.ref = kiln_xstrdup(spec);
        *out = s;
        return 0;
    }
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        char **slot = NULL;
        if (v == NULL) {
            kiln_error_set(err, 0, "'%.80s' is not KEY=VALUE", kv);
            goto bad;
        }
        *v++ = '\0';
        if (strcmp(kv, "type") == 0)
            slot = &s.type;
        else if (strcmp(kv, "bucket") == 0)
            slot = &s.bucket;
        else if (strcmp(kv, "prefix") == 0)
            slot = &s.prefix;
        else if (strcmp(kv, "region") == 0)
            slot = &s.region;
        else if (strcmp(kv, "endpoint") == 0)
            slot = &s.endpoint;
        else if (strcmp(kv, "ref") == 0)
            slot = &s.ref;
        else if (strcmp(kv, "mode") == 0) {
            if (strcmp(v, "max") != 0 && strcmp(v, "min") != 0) {
                kiln_error_set(err, 0, "mode=%.40s: want min or max", v);
                goto bad;
            }
            s.mode_max = strcmp(v, "max") == 0;
            continue;
        } else if (strcmp(kv, "max-size") == 0) {
            size_t sz;
            if (kiln_s3_parse_size(v, &sz) < 0 || sz == 0) {
                kiln_error_set(err, 0, "max-size=%.40s: want a size (K/M/G suffixes)", v);
                goto bad;
            }
            s.max_size = sz;
            continue;
        } else if (strcmp(kv, "ignore-error") == 0 || strcmp(kv, "compression") == 0 ||
                   strcmp(kv, "oci-mediatypes") == 0 || strcmp(kv, "image-manifest") == 0) {
            continue; /* BuildKit options without a meaning here */
        } else {
            kiln_error_set(err, EINVAL,
                           "unknown key %.40s (type, bucket, prefix, region, endpoint, ref, mode, "
                           "max-size)",
                           kv);
            goto bad;
        }
        free(*slot);
        *slot = kiln_xstrdup(v);
    }
    if (s.type == NULL || (strcmp(s.type, "s3") != 0 && strcmp(s.type, "registry") != 0)) {
        kiln_error_set(err, 0, "type=%.40s: want type=s3 or type=registry",
                       s.type ? s.type : "(missing)");
        goto bad;
    }
    if (strcmp(s.type, "registry") == 0) {
        if (s.ref == NULL || s.ref[0] == '\0') {
            kiln_error_set(err, 0, "type=registry needs ref=REFERENCE");
            goto bad;
        }
    } else {
        if (s.bucket == NULL) {
            kiln_error_set(err, 0, "type=s3 needs bucket=NAME");
            goto bad;
        }
        if (s.prefix == NULL)
            s.prefix = kiln_xstrdup("");
        if (check_bucket(s.bucket, err) < 0 || check_prefix(s.prefix, err) < 0)
            goto bad;
        if (s.region &&
            strspn(s.region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s.region)) {
            kiln_error_set(err, 0, "region=%.40s is not an AWS region", s.region);
            goto bad;
        }
        if (s.endpoint && server_mode) {
            kiln_error_set(err, EPERM,
                           "endpoint= is not allowed in a server build (the worker's "
                           "AWS_ENDPOINT_URL_S3 is used)");
            goto bad;
        }
    }
    *out = s;
    return 0;
bad:
    kiln_rcache_spec_clear(&s);
    return kiln_error_prefix(err, "cache %.200s", spec);
}

int kiln_rstore_open(const kiln_rcache_spec_t *spec, const char *ns, kiln_rstore_t **out,
                     kiln_error_t *err)
{
    kiln_rstore_t *rs = kiln_xzalloc(sizeof(*rs));
    rs->aws = kiln_aws_new(spec->region);
    if (kiln_s3_target_init(&rs->t, rs->aws, spec->bucket, err) < 0)
        goto bad;
    if (spec->endpoint) {
        kiln_aws_endpoint_t ep = {0};
        if (kiln_aws_endpoint_parse(spec->endpoint, &ep, err) < 0)
            goto bad;
        kiln_aws_endpoint_clear(&rs->t.ep);
        rs->t.ep = ep;
        rs->t.path_style = 1;
    }
    if (ns)
        rs->base = spec->prefix[0] ? kiln_xasprintf("kiln-ns/%s/%s", ns, spec->prefix)
                                   : kiln_xasprintf("kiln-ns/%s", ns);
    else
        rs->base = kiln_xstrdup(spec->prefix);
    rs->name = kiln_xasprintf("s3://%s%s%s", spec->bucket, rs->base[0] ? "/" : "", rs->base);
    rs->ns = ns ? kiln_xstrdup(ns) : NULL;
    /* a lazy blob's source (engine/remote_lazy) */
    rs->spec = kiln_xasprintf(
        "type=s3,bucket=%s%s%s%s%s%s%s", spec->bucket, spec->prefix[0] ? ",prefix=" : "",
        spec->prefix, spec->region ? ",region=" : "", spec->region ? spec->region : "",
        spec->endpoint ? ",endpoint=" : "", spec->endpoint ? spec->endpoint : "");
    *out = rs;
    return 0;
bad:
    kiln_rstore_free(rs);
    return -1;
}

void kiln_rstore_free(kiln_rstore_t *rs)
{
    if (rs == NULL)
        return;
    kiln_s3_target_clear(&rs->t);
    kiln_aws_free(rs->aws);
    free(rs->base);
    free(rs->name);
    free(rs->spec);
    free(rs->ns);
    free(rs);
}

const char *kiln_rstore_spec(const kiln_rstore_t *rs)
{
    return rs->spec;
}

const char *kiln_rstore_ns(const kiln_rstore_t *rs)
{
    return rs->ns;
}

const char *kiln_rstore_name(const kiln_rstore_t *rs)
{
    return rs->name;
}

const char *kiln_rstore_base(const kiln_rstore_t *rs)
{
    return rs->base;
}

const kiln_s3_target_t *kiln_rstore_target(const kiln_rstore_t *rs)
{
    return &rs->t;
}

static char *blob_rel(const kiln_digest_t *d)
{
    return kiln_xasprintf("blobs/sha256/%s", d->hex);
}

int kiln_rstore_get(kiln_rstore_t *rs, kiln_http_t *http, const char *rel, size_t cap, char **buf,
                    size_t *len, kiln_error_t *err)
{
    _cleanup_free_ char *key = kiln_s3_join_key(rs->base, rel);
    return kiln_s3_get_object(&rs->t, http, key, 0, 0, cap, buf, len, err);
}

int kiln_rstore_put(kiln_rstore_t *rs, kiln_http_t *http, const char *rel, const void *buf,
                    size_t len, kiln_error_t *err)
{
    _cleanup_free_ char *key = kiln_s3_join_key(rs->base, rel);
    unsigned char md[32];
    if (kiln_s3_sha256(-1, 0, len, buf, md, err) < 0)
        return -1;
    return kiln_s3_put_object(&rs->t, http, key, -1, len, buf, md, "application/octet-stream",
                              "no-cache", err);
}

int kiln_rstore_get_blob(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                         uint64_t size, char **buf, kiln_error_t *err)
{
    _cleanup_free_ char *rel = blob_rel(d);
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    kiln_digest_t got;
    int r;
    if (size > KILN_CM_PACK_MAX)
        return kiln_error_set(err, 0, "blob %s: %llu bytes", d->hex, (unsigned long long)size);
    /* room for an error answer too: the length is checked below */
    r = kiln_rstore_get(rs, http, rel, (size_t)size + 65536, &body, &len, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return kiln_error_set(err, 0, "%s/%s: missing", rs->name, rel);
    kiln_digest_bytes(body, len, &got);
    if (len != size || !kiln_digest_equal(&got, d))
        return kiln_error_set(err, 0, "%s/%s: its content does not match its digest", rs->name,
                              rel);
    *buf = steal_pointer(&body);
    return 0;
}

int kiln_rstore_put_blob(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                         const void *mem, int fd, uint64_t size, kiln_error_t *err)
{
    _cleanup_free_ char *rel = blob_rel(d);
    _cleanup_free_ char *key = kiln_s3_join_key(rs->base, rel);
    unsigned char md[32];
    if (mem == NULL && size >= KILN_S3_DEFAULT_PART_SIZE) {
        unsigned long long bytes = 0;
        return kiln_s3_multipart_upload(&rs->t, http, key, fd, (size_t)size,
                                        "application/octet-stream", KILN_S3_CACHE_IMMUTABLE,
                                        KILN_S3_DEFAULT_PART_SIZE, 4, &bytes, err);
    }
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(d->hex + 2 * i, "%2x", &v);
        md[i] = (unsigned char)v;
    }
    return kiln_s3_put_object(&rs->t, http, key, mem ? -1 : fd, (size_t)size, mem, md,
                              "application/octet-stream", KILN_S3_CACHE_IMMUTABLE, err);
}

int kiln_rstore_has_blob(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                         kiln_error_t *err)
{
    _cleanup_free_ char *rel = blob_rel(d);
    _cleanup_free_ char *key = kiln_s3_join_key(rs->base, rel);
    _cleanup_free_ char *path = kiln_s3_key_path(&rs->t, key);
    kiln_aws_call_t call = {.service = "s3",
                            .endpoint = &rs->t.ep,
                            .s3 = 1,
                            .method = "HEAD",
                            .path = path,
                            .body_fd = -1};
    kiln_http_response_t resp = {0};
    long status;
    if (kiln_aws_send(rs->aws, http, &call, &resp, err) < 0)
        return kiln_error_prefix(err, "HEAD %s/%s", rs->name, rel);
    status = resp.status;
    kiln_http_response_free(&resp);
    if (status == 200)
        return 1;
    if (status == 404)
        return 0;
    return kiln_error_set(err, EIO, "HEAD %s/%s: HTTP %ld", rs->name, rel, status);
}

int kiln_rstore_blob_to_store(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                              uint64_t size, kiln_store_t *store, kiln_error_t *err)
{
    _cleanup_free_ char *rel = blob_rel(d);
    _cleanup_free_ char *key = kiln_s3_join_key(rs->base, rel);
    kiln_store_writer_t *w = NULL;
    if (kiln_store_writer_new(store, d, (int64_t)size, &w, err) < 0)
        return -1;
    for (uint64_t off = 0; off < size;) {
        uint64_t want = size - off < RANGE_SIZE ? size - off : RANGE_SIZE;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r =
            kiln_s3_get_object(&rs->t, http, key, off, want, (size_t)want + 65536, &buf, &len, err);
        if (r == 0)
            kiln_error_set(err, 0, "%s/%s: missing", rs->name, rel);
        if (r <= 0 || len != want || kiln_store_writer_write(w, buf, len, err) < 0) {
            if (r > 0 && len != want)
                kiln_error_set(err, EIO, "%s/%s: short range", rs->name, rel);
            kiln_store_writer_abort(w);
            return -1;
        }
        off += want;
    }
    return kiln_store_writer_commit(w, NULL, NULL, err);
}
