/* kiln — AWS Signature Version 4 (see sigv4.h). */
#include "utils/aws/sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define KEY_CACHE_SLOTS 16

void kiln_aws_creds_clear(kiln_aws_creds_t *creds)
{
    if (creds == NULL)
        return;
    if (creds->secret_access_key != NULL)
        OPENSSL_cleanse(creds->secret_access_key, strlen(creds->secret_access_key));
    if (creds->session_token != NULL)
        OPENSSL_cleanse(creds->session_token, strlen(creds->session_token));
    free(creds->access_key_id);
    free(creds->secret_access_key);
    free(creds->session_token);
    memset(creds, 0, sizeof(*creds));
}

void kiln_aws_creds_copy(kiln_aws_creds_t *dst, const kiln_aws_creds_t *src)
{
    dst->access_key_id = src->access_key_id ? kiln_xstrdup(src->access_key_id) : NULL;
    dst->secret_access_key = src->secret_access_key ? kiln_xstrdup(src->secret_access_key) : NULL;
    dst->session_token = src->session_token ? kiln_xstrdup(src->session_token) : NULL;
    dst->expiration = src->expiration;
    dst->source = src->source;
}

void kiln_sigv4_result_free(kiln_sigv4_result_t *r)
{
    if (r == NULL)
        return;
    free(r->canonical_request);
    free(r->string_to_sign);
    free(r->signature);
    free(r->signed_headers);
    free(r->authorization);
    memset(r, 0, sizeof(*r));
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void kiln_sigv4_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    hex_encode(md, 32, hex);
}

static void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                        unsigned char out[32])
{
    unsigned int outlen = 32;
    HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen);
}

void kiln_sigv4_amz_date(time_t when, char buf[17])
{
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(buf, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

char *kiln_sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = kiln_xmalloc(len * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX sequences ('+' stays '+', as AWS reads it). Returns the length. */
static size_t uri_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* Re-encodes one query component in canonical form (decode, then encode). */
static char *canonical_component(const char *s, size_t len)
{
    _cleanup_free_ char *dec = kiln_xmalloc(len + 1);
    size_t n = uri_decode(s, len, dec);
    return kiln_sigv4_uri_encode(dec, n, 0);
}

typedef struct kv {
    char *k;
    char *v;
    size_t order;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    if (c != 0)
        return c;
    c = strcmp(x->v, y->v);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void kv_free_all(kv_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].k);
        free(v[i].v);
    }
    free(v);
}

/* Canonical query string: pairs re-encoded and sorted by key, then value. */
static char *canonical_query(const char *query)
{
    kiln_buf_t b;
    kv_t *pairs = NULL;
    size_t n = 0, alloc = 0;
    const char *p = query ? query : "";

    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            if (n == alloc) {
                alloc = alloc ? alloc * 2 : 8;
                pairs = kiln_xrealloc(pairs, alloc * sizeof(*pairs));
            }
            pairs[n].k = canonical_component(p, klen);
            pairs[n].v = eq ? canonical_component(eq + 1, len - klen - 1) : kiln_xstrdup("");
            pairs[n].order = n;
            n++;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    if (n > 1)
        qsort(pairs, n, sizeof(*pairs), kv_cmp);
    kiln_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++)
        kiln_buf_appendf(&b, NULL, "%s%s=%s", i ? "&" : "", pairs[i].k, pairs[i].v);
    kv_free_all(pairs, n);
    return kiln_buf_steal(&b, NULL);
}

/* RFC 3986 dot-segment removal plus collapsing of empty segments, keeping a
 * trailing slash: what the AWS SDKs do for non-S3 services. */
static char *normalize_path(const char *path)
{
    size_t len = strlen(path);
    char **segs = kiln_xzalloc((len + 2) * sizeof(char *));
    size_t nseg = 0;
    int trailing = len > 1 && path[len - 1] == '/';
    const char *p = path;
    kiln_buf_t b;

    while (*p) {
        const char *slash;
        size_t sl;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        slash = strchr(p, '/');
        sl = slash ? (size_t)(slash - p) : strlen(p);
        if (sl == 1 && p[0] == '.') {
            /* skip */
        } else if (sl == 2 && p[0] == '.' && p[1] == '.') {
            if (nseg > 0)
                free(segs[--nseg]);
        } else {
            segs[nseg++] = kiln_xstrndup(p, sl);
        }
        p += sl;
    }
    /* "/a/.." and "/a/." name a directory: keep the slash only if present */
    kiln_buf_init(&b, 0);
    for (size_t i = 0; i < nseg; i++)
        kiln_buf_appendf(&b, NULL, "/%s", segs[i]);
    if (nseg == 0 || trailing)
        kiln_buf_append(&b, "/", 1, NULL);
    for (size_t i = 0; i < nseg; i++)
        free(segs[i]);
    free(segs);
    return kiln_buf_steal(&b, NULL);
}

typedef struct hdr {
    char *name;  /* lower case */
    char *value; /* trimmed, inner whitespace collapsed */
    size_t order;
} hdr_t;

static int hdr_cmp(const void *a, const void *b)
{
    const hdr_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static char *trim_collapse(const char *v)
{
    size_t len = strlen(v), o = 0;
    char *out = kiln_xmalloc(len + 1);
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = o > 0;
            continue;
        }
        if (space)
            out[o++] = ' ';
        space = 0;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

/* Builds the canonical header block and the signed-header list. */
static int canonical_headers(const kiln_sigv4_request_t *req, char **block, char **signed_list,
                             kiln_error_t *err)
{
    hdr_t *h = kiln_xzalloc((req->n_headers + 1) * sizeof(*h));
    kiln_buf_t cb, sb;
    int ret = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name;
        if (name == NULL || name[0] == '\0') {
            ret = kiln_error_set(err, EINVAL, "signing: header %zu has no name", i);
            for (size_t j = 0; j < i; j++) {
                free(h[j].name);
                free(h[j].value);
            }
            free(h);
            return ret;
        }
        h[i].name = kiln_xstrdup(name);
        for (char *c = h[i].name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        h[i].value = trim_collapse(req->headers[i].value ? req->headers[i].value : "");
        h[i].order = i;
    }
    qsort(h, req->n_headers, sizeof(*h), hdr_cmp);
    kiln_buf_init(&cb, 0);
    kiln_buf_init(&sb, 0);
    for (size_t i = 0; i < req->n_headers; i++) {
        if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
            /* repeated header: values joined with ',' on the previous line */
            cb.len--; /* drop the '\n' */
            kiln_buf_appendf(&cb, NULL, ",%s\n", h[i].value);
            continue;
        }
        kiln_buf_appendf(&cb, NULL, "%s:%s\n", h[i].name, h[i].value);
        kiln_buf_appendf(&sb, NULL, "%s%s", sb.len ? ";" : "", h[i].name);
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    *block = kiln_buf_steal(&cb, NULL);
    *signed_list = kiln_buf_steal(&sb, NULL);
    return 0;
}

typedef struct key_slot {
    char id[128];
    unsigned char secret_hash[32];
    char date[9];
    char region[64];
    char service[64];
    unsigned char key[32];
    int used;
} key_slot_t;

static key_slot_t key_cache[KEY_CACHE_SLOTS];
static unsigned key_cache_next;
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* Derives (or finds in the cache) the signing key for date/region/service. */
static void signing_key(const kiln_aws_creds_t *creds, const char *date, const char *region,
                        const char *service, unsigned char key[32])
{
    unsigned char sh[32], k[32];
    unsigned int shlen = 32;
    const char *secret = creds->secret_access_key ? creds->secret_access_key : "";
    const char *id = creds->access_key_id ? creds->access_key_id : "";
    _cleanup_free_ char *k0 = kiln_xasprintf("AWS4%s", secret);
    int cacheable = strlen(id) < sizeof(key_cache[0].id) &&
                    strlen(region) < sizeof(key_cache[0].region) &&
                    strlen(service) < sizeof(key_cache[0].service);

    EVP_Digest(secret, strlen(secret), sh, &shlen, EVP_sha256(), NULL);
    if (cacheable) {
        pthread_mutex_lock(&key_cache_lock);
        for (unsigned i = 0; i < KEY_CACHE_SLOTS; i++) {
            key_slot_t *s = &key_cache[i];
            if (s->used && strcmp(s->id, id) == 0 && memcmp(s->secret_hash, sh, 32) == 0 &&
                strcmp(s->date, date) == 0 && strcmp(s->region, region) == 0 &&
                strcmp(s->service, service) == 0) {
                memcpy(key, s->key, 32);
                pthread_mutex_unlock(&key_cache_lock);
                OPENSSL_cleanse(k0, strlen(k0));
                return;
            }
        }
        pthread_mutex_unlock(&key_cache_lock);
    }
    hmac_sha256(k0, strlen(k0), date, strlen(date), k);
    OPENSSL_cleanse(k0, strlen(k0));
    hmac_sha256(k, 32, region, strlen(region), k);
    hmac_sha256(k, 32, service, strlen(service), k);
    hmac_sha256(k, 32, "aws4_request", 12, k);
    memcpy(key, k, 32);
    if (cacheable) {
        key_slot_t *s;
        pthread_mutex_lock(&key_cache_lock);
        s = &key_cache[key_cache_next++ % KEY_CACHE_SLOTS];
        memcpy(s->id, id, strlen(id) + 1);
        memcpy(s->secret_hash, sh, 32);
        memcpy(s->date, date, 9);
        memcpy(s->region, region, strlen(region) + 1);
        memcpy(s->service, service, strlen(service) + 1);
        memcpy(s->key, k, 32);
        s->used = 1;
        pthread_mutex_unlock(&key_cache_lock);
    }
    OPENSSL_cleanse(k, sizeof(k));
}

/* Core of both signing modes: canonical request → string to sign → signature.
 * `query` is the query string that is signed. */
static int sign_core(const kiln_sigv4_request_t *req, const char *query,
                     const kiln_sigv4_scope_t *scope, const kiln_aws_creds_t *creds,
                     kiln_sigv4_result_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *cquery = NULL;
    _cleanup_free_ char *hblock = NULL;
    _cleanup_free_ char *slist = NULL;
    char amzdate[17], date[9], creq_hash[65], sig[65];
    unsigned char key[32], mac[32];
    kiln_sigv4_result_t r = {0};

    if (req->method == NULL || req->method[0] == '\0')
        return kiln_error_set(err, EINVAL, "signing: request has no method");
    if (req->path == NULL || req->path[0] != '/')
        return kiln_error_set(err, EINVAL, "signing: path '%s' does not start with '/'",
                              req->path ? req->path : "");
    if (scope->region == NULL || scope->service == NULL)
        return kiln_error_set(err, EINVAL, "signing: no region or service");
    if (creds == NULL || creds->access_key_id == NULL || creds->secret_access_key == NULL)
        return kiln_error_set(err, EINVAL, "signing: no credentials");

    if (scope->s3_rules) {
        path = kiln_xstrdup(req->path);
    } else {
        _cleanup_free_ char *norm = normalize_path(req->path);
        path = kiln_sigv4_uri_encode(norm, strlen(norm), 1);
    }
    cquery = canonical_query(query);
    if (canonical_headers(req, &hblock, &slist, err) < 0)
        return -1;
    r.canonical_request =
        kiln_xasprintf("%s\n%s\n%s\n%s\n%s\n%s", req->method, path, cquery, hblock, slist,
                       req->payload_hash ? req->payload_hash : KILN_SIGV4_EMPTY_SHA256);
    kiln_sigv4_sha256_hex(r.canonical_request, strlen(r.canonical_request), creq_hash);
    kiln_sigv4_amz_date(scope->when, amzdate);
    memcpy(date, amzdate, 8);
    date[8] = '\0';
    r.string_to_sign = kiln_xasprintf("%s\n%s\n%s/%s/%s/aws4_request\n%s", SIGV4_ALGORITHM, amzdate,
                                      date, scope->region, scope->service, creq_hash);
    signing_key(creds, date, scope->region, scope->service, key);
    hmac_sha256(key, 32, r.string_to_sign, strlen(r.string_to_sign), mac);
    OPENSSL_cleanse(key, sizeof(key));
    hex_encode(mac, 32, sig);
    r.signature = kiln_xstrdup(sig);
    r.authorization = kiln_xasprintf("%s Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                                     "Signature=%s",
                                     SIGV4_ALGORITHM, creds->access_key_id, date, scope->region,
                                     scope->service, slist, sig);
    r.signed_headers = steal_pointer(&slist);
    *out = r;
    return 0;
}

int kiln_sigv4_sign(const kiln_sigv4_request_t *req, const kiln_sigv4_scope_t *scope,
                    const kiln_aws_creds_t *creds, kiln_sigv4_result_t *out, kiln_error_t *err)
{
    return sign_core(req, req->query, scope, creds, out, err);
}

int kiln_sigv4_presign(const kiln_sigv4_request_t *req, const kiln_sigv4_scope_t *scope,
                       const kiln_aws_creds_t *creds, unsigned expires_seconds, char **query_out,
                       kiln_error_t *err)
{
    _cleanup_free_ char *slist = NULL;
    _cleanup_free_ char *hblock = NULL;
    _cleanup_free_ char *cred = NULL;
    _cleanup_free_ char *ecred = NULL;
    _cleanup_free_ char *eslist = NULL;
    _cleanup_free_ char *query = NULL;
    char amzdate[17];
    kiln_sigv4_request_t r = *req;
    kiln_sigv4_result_t res = {0};
    kiln_buf_t b;

    if (creds == NULL || creds->access_key_id == NULL)
        return kiln_error_set(err, EINVAL, "presigning: no credentials");
    if (canonical_headers(req, &hblock, &slist, err) < 0)
        return -1;
    kiln_sigv4_amz_date(scope->when, amzdate);
    cred = kiln_xasprintf("%s/%.8s/%s/%s/aws4_request", creds->access_key_id, amzdate,
                          scope->region ? scope->region : "", scope->service ? scope->service : "");
    ecred = kiln_sigv4_uri_encode(cred, strlen(cred), 0);
    eslist = kiln_sigv4_uri_encode(slist, strlen(slist), 0);
    kiln_buf_init(&b, 0);
    if (req->query && req->query[0])
        kiln_buf_appendf(&b, NULL, "%s&", req->query);
    kiln_buf_appendf(&b, NULL,
                     "X-Amz-Algorithm=%s&X-Amz-Credential=%s&X-Amz-Date=%s&X-Amz-Expires=%u&"
                     "X-Amz-SignedHeaders=%s",
                     SIGV4_ALGORITHM, ecred, amzdate, expires_seconds, eslist);
    if (creds->session_token) {
        _cleanup_free_ char *tok =
            kiln_sigv4_uri_encode(creds->session_token, strlen(creds->session_token), 0);
        kiln_buf_appendf(&b, NULL, "&X-Amz-Security-Token=%s", tok);
    }
    query = kiln_buf_steal(&b, NULL);
    if (r.payload_hash == NULL)
        r.payload_hash = KILN_SIGV4_UNSIGNED_PAYLOAD;
    if (sign_core(&r, query, scope, creds, &res, err) < 0)
        return -1;
    *query_out = kiln_xasprintf("%s&X-Amz-Signature=%s", query, res.signature);
    kiln_sigv4_result_free(&res);
    return 0;
}
