/* kiln — S3 uploads (see s3.h). */
#include "utils/aws/s3.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/aws/sigv4.h"
#include "utils/aws/xml.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/pathres.h"
#include "utils/size.h"

#define DEFAULT_CONCURRENCY 16
#define DEFAULT_PART_CONCURRENCY 8 /* x part size of memory */
#define MAX_CONCURRENCY 64
#define MANIFEST_CAP (64u * 1024 * 1024)
#define MAX_FILES 1000000
#define READ_CHUNK (1024u * 1024)
#define PART_ATTEMPTS 3

/* ---- naming policy ---- */

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"eot", "application/vnd.ms-fontobject"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
};

const char *kiln_s3_content_type(const char *name)
{
    const char *base = strrchr(name, '/');
    const char *dot = strrchr(base ? base + 1 : name, '.');
    if (dot == NULL)
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++)
        if (strcasecmp(dot + 1, content_types[i].ext) == 0)
            return content_types[i].type;
    return "application/octet-stream";
}

/* A token looks like a content hash: 8+ hex characters with a digit, or 8-32
 * base64url characters mixing upper case, lower case and digits/-/_ (the
 * style of Vite and esbuild). */
static int hash_like(const char *t, size_t n)
{
    int hex = 1, digit = 0, upper = 0, lower = 0, other = 0;
    if (n < 8 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (isdigit(c))
            digit = 1;
        else if (isupper(c))
            upper = 1;
        else if (islower(c))
            lower = 1;
        else if (c == '_' || c == '-')
            other = 1;
        else
            return 0;
        if (!isxdigit(c) || isupper(c))
            hex = 0;
    }
    if (hex && digit)
        return 1;
    return n <= 32 && upper && lower && (digit || other || n == 8);
}

const char *kiln_s3_cache_control(const char *name)
{
    const char *base = strrchr(name, '/');
    const char *p;
    size_t len;
    const char *ext;
    base = base ? base + 1 : name;
    ext = strrchr(base, '.');
    if (ext && (strcasecmp(ext, ".html") == 0 || strcasecmp(ext, ".htm") == 0))
        return KILN_S3_CACHE_HTML;
    len = ext ? (size_t)(ext - base) : strlen(base);
    /* tokens after the first one, split on '.', '-' and '_' is too eager for
     * base64url hashes containing '-': split on '.' and on the last '-' */
    p = memchr(base, '.', len);
    while (p && p < base + len) {
        const char *next = memchr(p + 1, '.', (size_t)(base + len - p - 1));
        const char *tend = next ? next : base + len;
        if (hash_like(p + 1, (size_t)(tend - p - 1)))
            return KILN_S3_CACHE_IMMUTABLE;
        p = next;
    }
    p = NULL;
    for (const char *q = base; q < base + len; q++)
        if (*q == '-')
            p = q;
    if (p && p > base) {
        const char *tend = memchr(p, '.', (size_t)(base + len - p));
        if (hash_like(p + 1, (size_t)((tend ? tend : base + len) - p - 1)))
            return KILN_S3_CACHE_IMMUTABLE;
    }
    return KILN_S3_CACHE_DEFAULT;
}

int kiln_s3_parse_url(const char *url, char **bucket, char **prefix, kiln_error_t *err)
{
    const char *b, *slash;
    _cleanup_free_ char *bk = NULL;
    char *px;
    size_t n;
    if (strncmp(url, "s3://", 5) != 0)
        return kiln_error_set(err, EINVAL, "'%s' is not an s3://bucket/prefix URL", url);
    b = url + 5;
    slash = strchr(b, '/');
    bk = slash ? kiln_xstrndup(b, (size_t)(slash - b)) : kiln_xstrdup(b);
    n = strlen(bk);
    if (n < 3 || n > 63)
        return kiln_error_set(err, EINVAL, "'%s': bucket name must be 3 to 63 characters", url);
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)bk[i]) || isdigit((unsigned char)bk[i]) || bk[i] == '-' ||
              bk[i] == '.'))
            return kiln_error_set(err, EINVAL, "'%s': bad character '%c' in bucket name", url,
                                  bk[i]);
    slash = slash ? slash : b + strlen(b);
    while (*slash == '/')
        slash++;
    px = kiln_xstrdup(slash);
    n = strlen(px);
    while (n > 0 && px[n - 1] == '/')
        px[--n] = '\0';
    *bucket = steal_pointer(&bk);
    *prefix = px;
    return 0;
}

int kiln_s3_parse_size(const char *s, size_t *out)
{
    uint64_t v;

    if (kiln_size_parse(s, &v, NULL) < 0 || v > SIZE_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

void kiln_s3_output_clear(kiln_s3_output_t *out)
{
    free(out->dest);
    free(out->cache_control);
    memset(out, 0, sizeof(*out));
}

static const char *const output_keys[] = {
    "type", "dest", "cache-control", "part-size", "multipart-threshold", "concurrency", "full",
};

/* Length of the known key `tok` starts with (followed by '='), or 0. */
static size_t known_key(const char *tok, size_t len)
{
    for (size_t i = 0; i < sizeof(output_keys) / sizeof(output_keys[0]); i++) {
        size_t kl = strlen(output_keys[i]);
        if (len > kl && tok[kl] == '=' && strncmp(tok, output_keys[i], kl) == 0)
            return kl;
    }
    return 0;
}

int kiln_s3_output_parse(const char *spec, kiln_s3_output_t *out, kiln_error_t *err)
{
    kiln_s3_output_t o = {0};
    const char *p = spec;
    int is_s3 = 0;

    while (*p) {
        const char *start = p, *end;
        size_t kl;
        _cleanup_free_ char *val = NULL;
        while (*p == ' ')
            p++;
        kl = known_key(p, strlen(p));
        if (kl == 0) {
            kiln_error_set(err, EINVAL, "--output '%s': unknown field at '%s'", spec, start);
            goto fail;
        }
        /* the value runs to the next ",<known key>=" */
        end = p + kl + 1;
        for (;;) {
            const char *comma = strchr(end, ',');
            const char *q;
            if (comma == NULL) {
                end += strlen(end);
                break;
            }
            q = comma + 1;
            while (*q == ' ')
                q++;
            if (known_key(q, strlen(q))) {
                end = comma;
                break;
            }
            end = comma + 1;
        }
        val = kiln_xstrndup(p + kl + 1, (size_t)(end - p - kl - 1));
        if (strncmp(p, "type", kl) == 0 && kl == 4) {
            if (strcmp(val, "s3") != 0) {
                kiln_error_set(err, EINVAL, "--output '%s': type must be s3", spec);
                goto fail;
            }
            is_s3 = 1;
        } else if (kl == 4 && strncmp(p, "dest", 4) == 0) {
            free(o.dest);
            o.dest = steal_pointer(&val);
        } else if (kl == 13 && strncmp(p, "cache-control", 13) == 0) {
            free(o.cache_control);
            o.cache_control = steal_pointer(&val);
        } else if (kl == 4 && strncmp(p, "full", 4) == 0) {
            o.opts.full = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
        } else {
            size_t n = 0;
            if (kiln_s3_parse_size(val, &n) < 0 || (kl == 11 && (n == 0 || n > 64))) {
                kiln_error_set(err, EINVAL, "--output '%s': bad %.*s '%s'", spec, (int)kl, p, val);
                goto fail;
            }
            if (kl == 9)
                o.opts.part_size = n;
            else if (kl == 19)
                o.opts.multipart_threshold = n;
            else
                o.opts.concurrency = (unsigned)n;
        }
        p = *end ? end + 1 : end;
    }
    if (!is_s3 || o.dest == NULL) {
        kiln_error_set(err, EINVAL, "--output '%s': needs type=s3 and dest=s3://BUCKET/PREFIX",
                       spec);
        goto fail;
    }
    if (strncmp(o.dest, "s3://", 5) != 0) {
        kiln_error_set(err, EINVAL, "--output '%s': dest must be an s3:// URL", spec);
        goto fail;
    }
    o.opts.cache_control = o.cache_control;
    *out = o;
    return 0;
fail:
    kiln_s3_output_clear(&o);
    return -1;
}

/* ---- addressing ---- */

typedef struct s3_target {
    kiln_aws_t *aws;
    kiln_aws_endpoint_t ep; /* host already includes the bucket when virtual-hosted */
    char *bucket;
    int path_style;
} s3_target_t;

static void target_clear(s3_target_t *t)
{
    kiln_aws_endpoint_clear(&t->ep);
    free(t->bucket);
}

static int target_init(s3_target_t *t, kiln_aws_t *aws, const char *bucket, kiln_error_t *err)
{
    const char *force = getenv("KILN_S3_PATH_STYLE");
    memset(t, 0, sizeof(*t));
    t->aws = aws;
    if (kiln_aws_endpoint_resolve("s3", aws->region, &t->ep, err) < 0)
        return -1;
    t->bucket = kiln_xstrdup(bucket);
    t->path_style = t->ep.custom || strchr(bucket, '.') != NULL;
    if (force && force[0])
        t->path_style = strcmp(force, "1") == 0;
    if (!t->path_style) {
        char *h = kiln_xasprintf("%s.%s", bucket, t->ep.host);
        free(t->ep.host);
        t->ep.host = h;
    }
    return 0;
}

/* Wire path of a key. */
static char *key_path(const s3_target_t *t, const char *key)
{
    _cleanup_free_ char *enc = kiln_sigv4_uri_encode(key, strlen(key), 1);
    if (t->path_style)
        return kiln_xasprintf("/%s/%s", t->bucket, enc);
    return kiln_xasprintf("/%s", enc);
}

static char *join_key(const char *prefix, const char *rel)
{
    return prefix[0] ? kiln_xasprintf("%s/%s", prefix, rel) : kiln_xstrdup(rel);
}

/* ---- hashing ---- */

static void b64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* SHA-256 of len bytes of fd at offset, or of mem when given. */
static int sha256_range(int fd, off_t off, size_t len, const void *mem, unsigned char md[32],
                        kiln_error_t *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    _cleanup_free_ char *buf = NULL;
    size_t done = 0;
    unsigned int mdlen = 32;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    if (mem) {
        EVP_DigestUpdate(ctx, mem, len);
    } else {
        buf = kiln_xmalloc(READ_CHUNK);
        while (done < len) {
            size_t want = len - done < READ_CHUNK ? len - done : READ_CHUNK;
            ssize_t n = pread(fd, buf, want, off + (off_t)done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                EVP_MD_CTX_free(ctx);
                return kiln_error_set(err, n < 0 ? errno : EIO, "reading");
            }
            EVP_DigestUpdate(ctx, buf, (size_t)n);
            done += (size_t)n;
        }
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    return 0;
}

/* ---- single calls ---- */

/* Sends a call to t and fails (err from the S3 answer) on a non-2xx status. */
static int s3_call(const s3_target_t *t, kiln_http_t *http, kiln_aws_call_t *call,
                   kiln_http_response_t *resp, const char *what, kiln_error_t *err)
{
    call->service = "s3";
    call->endpoint = &t->ep;
    call->s3 = 1;
    if (kiln_aws_send(t->aws, http, call, resp, err) < 0)
        return kiln_error_prefix(err, "%s", what);
    if (resp->status < 200 || resp->status > 299) {
        kiln_aws_error_from_response(resp, err, what);
        kiln_http_response_free(resp);
        return -1;
    }
    return 0;
}

static int put_object(const s3_target_t *t, kiln_http_t *http, const char *key, int fd, size_t size,
                      const void *mem, const unsigned char md[32], const char *content_type,
                      const char *cache_control, kiln_error_t *err)
{
    _cleanup_free_ char *path = key_path(t, key);
    _cleanup_free_ char *h_ct = kiln_xasprintf("Content-Type: %s", content_type);
    _cleanup_free_ char *h_cc = kiln_xasprintf("Cache-Control: %s", cache_control);
    _cleanup_free_ char *h_ck = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("PUT s3://%s/%s", t->bucket, key);
    char hexhash[65], b64hash[48];
    const char *hdrs[3];
    kiln_aws_call_t call = {0};
    kiln_http_response_t resp = {0};

    hex(md, 32, hexhash);
    b64(md, 32, b64hash);
    h_ck = kiln_xasprintf("x-amz-checksum-sha256: %s", b64hash);
    hdrs[0] = h_ct;
    hdrs[1] = h_cc;
    hdrs[2] = h_ck;
    call.method = "PUT";
    call.path = path;
    call.headers = hdrs;
    call.n_headers = 3;
    call.body = mem;
    call.body_fd = fd;
    call.body_len = size;
    call.payload_hash = hexhash;
    if (s3_call(t, http, &call, &resp, what, err) < 0)
        return -1;
    kiln_http_response_free(&resp);
    return 0;
}

/* ---- multipart ---- */

typedef struct mp_part {
    char *etag;
} mp_part_t;

typedef struct mp_job {
    const s3_target_t *t;
    const char *key;
    const char *upload_id;
    int fd;
    size_t size;
    size_t part_size;
    unsigned nparts;
    mp_part_t *parts;
    atomic_uint next;
    atomic_int failed;
    pthread_mutex_t lock;
    kiln_error_t err;
    atomic_ullong bytes;
} mp_job_t;

static int upload_part(mp_job_t *j, kiln_http_t *http, unsigned idx, char *buf, kiln_error_t *err)
{
    off_t off = (off_t)idx * (off_t)j->part_size;
    size_t len = j->size - (size_t)off < j->part_size ? j->size - (size_t)off : j->part_size;
    _cleanup_free_ char *path = key_path(j->t, j->key);
    _cleanup_free_ char *enc_id = kiln_sigv4_uri_encode(j->upload_id, strlen(j->upload_id), 0);
    _cleanup_free_ char *query = kiln_xasprintf("partNumber=%u&uploadId=%s", idx + 1, enc_id);
    _cleanup_free_ char *what =
        kiln_xasprintf("upload part %u of s3://%s/%s", idx + 1, j->t->bucket, j->key);
    unsigned char md[32];
    char hexhash[65];
    size_t got = 0;
    kiln_aws_call_t call = {0};
    kiln_http_response_t resp = {0};
    char *etag;

    while (got < len) {
        ssize_t n = pread(j->fd, buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return kiln_error_set(err, n < 0 ? errno : EIO, "reading %s at offset %lld", j->key,
                                  (long long)(off + (off_t)got));
        got += (size_t)n;
    }
    /* Each part's integrity is its signed payload hash: S3 recomputes the
     * SHA-256 of the body and rejects a mismatch (XAmzContentSHA256Mismatch).
     * (SHA-256 rather than Content-MD5: it is needed for the signature anyway,
     * and MD5 would cost more CPU than SHA-256 with SHA extensions.) No
     * x-amz-checksum-* here: those need the algorithm declared on
     * CreateMultipartUpload and per-part checksums on completion. */
    sha256_range(-1, 0, len, buf, md, NULL);
    hex(md, 32, hexhash);
    call.method = "PUT";
    call.path = path;
    call.query = query;
    call.body = buf;
    call.body_len = len;
    call.payload_hash = hexhash;
    if (s3_call(j->t, http, &call, &resp, what, err) < 0)
        return -1;
    etag = kiln_http_response_header(&resp, "etag");
    kiln_http_response_free(&resp);
    if (etag == NULL)
        return kiln_error_set(err, EPROTO, "%s: answer has no ETag", what);
    j->parts[idx].etag = etag;
    j->bytes += len;
    return 0;
}

static void *mp_worker(void *arg)
{
    mp_job_t *j = arg;
    kiln_http_t *http = kiln_http_new();
    char *buf = kiln_xmalloc(j->part_size);
    for (;;) {
        unsigned idx = atomic_fetch_add(&j->next, 1);
        kiln_error_t e = {0};
        int ok = 0;
        if (idx >= j->nparts || j->failed)
            break;
        /* per-part retries on top of the request-level ones */
        for (int a = 0; a < PART_ATTEMPTS && !j->failed; a++) {
            kiln_error_clear(&e);
            if (upload_part(j, http, idx, buf, &e) == 0) {
                ok = 1;
                break;
            }
            if (e.code == EACCES)
                break; /* a 403 will not go away */
        }
        if (!ok) {
            pthread_mutex_lock(&j->lock);
            if (!j->failed) {
                j->err = e;
                j->failed = 1;
            }
            pthread_mutex_unlock(&j->lock);
            break;
        }
    }
    free(buf);
    kiln_http_free(http);
    return NULL;
}

static void abort_upload(const s3_target_t *t, kiln_http_t *http, const char *key,
                         const char *upload_id)
{
    _cleanup_free_ char *path = key_path(t, key);
    _cleanup_free_ char *enc_id = kiln_sigv4_uri_encode(upload_id, strlen(upload_id), 0);
    _cleanup_free_ char *query = kiln_xasprintf("uploadId=%s", enc_id);
    kiln_aws_call_t call = {.method = "DELETE", .path = path, .query = query, .body_fd = -1};
    kiln_http_response_t resp = {0};
    if (s3_call(t, http, &call, &resp, "abort", NULL) == 0)
        kiln_http_response_free(&resp);
}

/* True (err set) unless the answer to CompleteMultipartUpload is a
 * CompleteMultipartUploadResult document. */
static int complete_failed(const kiln_http_response_t *resp, const char *what, kiln_error_t *err)
{
    _cleanup_free_ char *root = NULL;
    if (kiln_aws_xml_parse(resp->body, resp->body_len, NULL, 0, &root, what, err) < 0)
        return 1;
    if (strcmp(root, "CompleteMultipartUploadResult") == 0)
        return 0;
    if (strcmp(root, "Error") == 0)
        kiln_aws_error_from_response(resp, err, what);
    else
        kiln_error_set(err, EPROTO, "%s: answer is a %s, not a CompleteMultipartUploadResult", what,
                       root);
    return 1;
}

static int multipart_upload(const s3_target_t *t, kiln_http_t *http, const char *key, int fd,
                            size_t size, const char *content_type, const char *cache_control,
                            size_t part_size, unsigned concurrency, unsigned long long *bytes,
                            kiln_error_t *err)
{
    _cleanup_free_ char *path = key_path(t, key);
    _cleanup_free_ char *h_ct = kiln_xasprintf("Content-Type: %s", content_type);
    _cleanup_free_ char *h_cc = kiln_xasprintf("Cache-Control: %s", cache_control);
    _cleanup_free_ char *upload_id = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("multipart upload of s3://%s/%s", t->bucket, key);
    _cleanup_free_ char *xml = NULL;
    _cleanup_free_ char *enc_id = NULL;
    _cleanup_free_ char *query = NULL;
    const char *hdrs[2] = {h_ct, h_cc};
    kiln_aws_call_t call = {0};
    kiln_http_response_t resp = {0};
    mp_job_t j = {0};
    pthread_t th[MAX_CONCURRENCY];
    unsigned nth = 0;
    kiln_buf_t b;
    int ret = -1;

    while ((size + part_size - 1) / part_size > KILN_S3_MAX_PARTS)
        part_size *= 2;
    call.method = "POST";
    call.path = path;
    call.query = "uploads=";
    call.headers = hdrs;
    call.n_headers = 2;
    call.body_fd = -1;
    if (s3_call(t, http, &call, &resp, what, err) < 0)
        return -1;
    upload_id = kiln_aws_xml_text(resp.body, resp.body_len,
                                  "InitiateMultipartUploadResult/UploadId", what, err);
    kiln_http_response_free(&resp);
    if (upload_id == NULL)
        return -1;
    if (upload_id[0] == '\0')
        return kiln_error_set(err, EPROTO, "%s: answer has an empty UploadId", what);

    j.t = t;
    j.key = key;
    j.upload_id = upload_id;
    j.fd = fd;
    j.size = size;
    j.part_size = part_size;
    j.nparts = (unsigned)((size + part_size - 1) / part_size);
    j.parts = kiln_xzalloc(j.nparts * sizeof(*j.parts));
    pthread_mutex_init(&j.lock, NULL);
    if (concurrency == 0)
        concurrency = DEFAULT_PART_CONCURRENCY;
    if (concurrency > MAX_CONCURRENCY)
        concurrency = MAX_CONCURRENCY;
    if (concurrency > j.nparts)
        concurrency = j.nparts;
    for (nth = 0; nth < concurrency; nth++)
        if (pthread_create(&th[nth], NULL, mp_worker, &j) != 0)
            break;
    if (nth == 0)
        mp_worker(&j);
    for (unsigned i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    *bytes += j.bytes;
    if (j.failed) {
        if (err)
            *err = j.err;
        abort_upload(t, http, key, upload_id);
        goto out;
    }
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL,
                     "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/"
                     "2006-03-01/\">");
    for (unsigned i = 0; i < j.nparts; i++)
        kiln_buf_appendf(&b, NULL, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1,
                         j.parts[i].etag);
    kiln_buf_appendf(&b, NULL, "</CompleteMultipartUpload>");
    xml = kiln_buf_steal(&b, NULL);
    enc_id = kiln_sigv4_uri_encode(upload_id, strlen(upload_id), 0);
    query = kiln_xasprintf("uploadId=%s", enc_id);
    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.path = path;
    call.query = query;
    call.body = xml;
    call.body_len = strlen(xml);
    if (s3_call(t, http, &call, &resp, what, err) < 0) {
        abort_upload(t, http, key, upload_id);
        goto out;
    }
    /* S3 may answer 200 with an <Error> body on completion (the request failed after the
     * status line was sent): only a CompleteMultipartUploadResult is a success */
    if (complete_failed(&resp, what, err)) {
        kiln_http_response_free(&resp);
        abort_upload(t, http, key, upload_id);
        goto out;
    }
    kiln_http_response_free(&resp);
    ret = 0;
out:
    for (unsigned i = 0; i < j.nparts; i++)
        free(j.parts[i].etag);
    free(j.parts);
    pthread_mutex_destroy(&j.lock);
    return ret;
}

/* ---- deploy ---- */

typedef struct file_ent {
    char *rel;
    size_t size;
    unsigned char md[32];
    const char *content_type;
    const char *cache_control;
    int skip;
} file_ent_t;

typedef struct deploy {
    s3_target_t t;
    const char *dir;
    int dirfd;
    const char *prefix;
    const kiln_s3_opts_t *o;
    size_t threshold;
    size_t part_size;
    unsigned concurrency;
    file_ent_t *files;
    size_t nfiles, alloc;
    json_t *old; /* previous manifest "files" object, or NULL */
    atomic_size_t next;
    atomic_int failed;
    atomic_size_t uploaded, skipped, multipart;
    atomic_ullong bytes;
    pthread_mutex_t lock;
    kiln_error_t err;
} deploy_t;

/* Walks dir (no symlinks followed), collecting regular files. */
static int walk(deploy_t *d, int dfd, const char *rel, kiln_error_t *err)
{
    DIR *dir;
    struct dirent *e;
    int fd = dup(dfd);
    if (fd < 0)
        return kiln_error_set(err, errno, "dup");
    dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return kiln_error_set(err, errno, "reading directory %s/%s", d->dir, rel);
    }
    while ((e = readdir(dir)) != NULL) {
        struct stat st;
        _cleanup_free_ char *r = NULL;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            closedir(dir);
            return kiln_error_set(err, errno, "stat %s/%s%s%s", d->dir, rel, rel[0] ? "/" : "",
                                  e->d_name);
        }
        r = rel[0] ? kiln_xasprintf("%s/%s", rel, e->d_name) : kiln_xstrdup(e->d_name);
        if (S_ISDIR(st.st_mode)) {
            _cleanup_close_ int sub =
                openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || walk(d, sub, r, err) < 0) {
                closedir(dir);
                return sub < 0 ? kiln_error_set(err, errno, "open %s/%s", d->dir, r) : -1;
            }
        } else if (S_ISREG(st.st_mode)) {
            if (d->nfiles >= MAX_FILES) {
                closedir(dir);
                return kiln_error_set(err, E2BIG, "%s: more than %d files", d->dir, MAX_FILES);
            }
            if (d->nfiles == d->alloc) {
                d->alloc = d->alloc ? d->alloc * 2 : 256;
                d->files = kiln_xrealloc(d->files, d->alloc * sizeof(*d->files));
            }
            memset(&d->files[d->nfiles], 0, sizeof(d->files[0]));
            d->files[d->nfiles].rel = steal_pointer(&r);
            d->files[d->nfiles].size = (size_t)st.st_size;
            d->nfiles++;
        }
    }
    closedir(dir);
    return 0;
}

static int unchanged(const deploy_t *d, const file_ent_t *f)
{
    json_t *e;
    char h[65];
    if (d->old == NULL || d->o->full)
        return 0;
    e = json_object_get(d->old, f->rel);
    if (!json_is_object(e))
        return 0;
    hex(f->md, 32, h);
    return json_is_string(json_object_get(e, "sha256")) &&
           strcmp(json_string_value(json_object_get(e, "sha256")), h) == 0 &&
           json_integer_value(json_object_get(e, "size")) == (json_int_t)f->size &&
           json_is_string(json_object_get(e, "content_type")) &&
           strcmp(json_string_value(json_object_get(e, "content_type")), f->content_type) == 0 &&
           json_is_string(json_object_get(e, "cache_control")) &&
           strcmp(json_string_value(json_object_get(e, "cache_control")), f->cache_control) == 0;
}

static void set_failed(deploy_t *d, const kiln_error_t *e)
{
    pthread_mutex_lock(&d->lock);
    if (!d->failed) {
        d->err = *e;
        d->failed = 1;
    }
    pthread_mutex_unlock(&d->lock);
}

/* Hashes one file and uploads it with PutObject when small and changed. */
static int process_file(deploy_t *d, kiln_http_t *http, file_ent_t *f, kiln_error_t *err)
{
    _cleanup_close_ int fd = kiln_pathres_openat(d->dirfd, f->rel, O_RDONLY | O_NOFOLLOW);
    _cleanup_free_ char *key = NULL;
    _cleanup_free_ char *mem = NULL;
    size_t got = 0;
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s/%s", d->dir, f->rel);
    f->content_type = kiln_s3_content_type(f->rel);
    f->cache_control = d->o->cache_control ? d->o->cache_control : kiln_s3_cache_control(f->rel);
    if (f->size < d->threshold) {
        /* small: read once, hash and send from memory */
        mem = kiln_xmalloc(f->size + 1);
        while (got < f->size) {
            ssize_t n = read(fd, mem + got, f->size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return kiln_error_set(err, n < 0 ? errno : EIO, "read %s/%s", d->dir, f->rel);
            got += (size_t)n;
        }
        sha256_range(-1, 0, f->size, mem, f->md, NULL);
    } else if (sha256_range(fd, 0, f->size, NULL, f->md, err) < 0) {
        return kiln_error_prefix(err, "%s/%s", d->dir, f->rel);
    }
    if (unchanged(d, f)) {
        f->skip = 1;
        d->skipped++;
        return 0;
    }
    if (f->size >= d->threshold)
        return 0; /* multipart, done in the second phase */
    key = join_key(d->prefix, f->rel);
    if (put_object(&d->t, http, key, -1, f->size, mem, f->md, f->content_type, f->cache_control,
                   err) < 0)
        return -1;
    d->uploaded++;
    d->bytes += f->size;
    return 0;
}

static void *file_worker(void *arg)
{
    deploy_t *d = arg;
    kiln_http_t *http = kiln_http_new();
    for (;;) {
        size_t i = atomic_fetch_add(&d->next, 1);
        kiln_error_t e = {0};
        if (i >= d->nfiles || d->failed)
            break;
        if (process_file(d, http, &d->files[i], &e) < 0) {
            set_failed(d, &e);
            break;
        }
    }
    kiln_http_free(http);
    return NULL;
}

static int load_manifest(deploy_t *d, kiln_http_t *http, kiln_error_t *err)
{
    _cleanup_free_ char *key = join_key(d->prefix, KILN_S3_MANIFEST_NAME);
    _cleanup_free_ char *path = key_path(&d->t, key);
    kiln_aws_call_t call = {.service = "s3",
                            .endpoint = &d->t.ep,
                            .method = "GET",
                            .path = path,
                            .body_fd = -1,
                            .s3 = 1,
                            .response_cap = MANIFEST_CAP};
    kiln_http_response_t resp = {0};
    json_t *j;
    if (kiln_aws_send(d->t.aws, http, &call, &resp, err) < 0)
        return kiln_error_prefix(err, "GET s3://%s/%s", d->t.bucket, key);
    if (resp.status == 404) {
        kiln_http_response_free(&resp);
        return 0;
    }
    if (resp.status != 200) {
        kiln_aws_error_from_response(&resp, err, "GET deploy manifest");
        kiln_http_response_free(&resp);
        return kiln_error_prefix(err, "s3://%s/%s", d->t.bucket, key);
    }
    j = json_loadb(resp.body, resp.body_len, 0, NULL);
    kiln_http_response_free(&resp);
    if (j && json_is_object(json_object_get(j, "files"))) {
        d->old = json_incref(json_object_get(j, "files"));
    }
    json_decref(j); /* an unreadable manifest means: upload everything */
    return 0;
}

static int write_manifest(deploy_t *d, kiln_http_t *http, kiln_error_t *err)
{
    _cleanup_free_ char *key = join_key(d->prefix, KILN_S3_MANIFEST_NAME);
    _cleanup_free_ char *text = NULL;
    json_t *root = json_object(), *files = json_object();
    unsigned char md[32];
    int ret;
    for (size_t i = 0; i < d->nfiles; i++) {
        file_ent_t *f = &d->files[i];
        char h[65];
        hex(f->md, 32, h);
        json_object_set_new(files, f->rel,
                            json_pack("{s:s, s:I, s:s, s:s}", "sha256", h, "size",
                                      (json_int_t)f->size, "content_type", f->content_type,
                                      "cache_control", f->cache_control));
    }
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "prefix", json_string(d->prefix));
    json_object_set_new(root, "files", files);
    text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(1));
    json_decref(root);
    sha256_range(-1, 0, strlen(text), text, md, NULL);
    ret = put_object(&d->t, http, key, -1, strlen(text), text, md, "application/json", "no-cache",
                     err);
    return ret;
}

static void deploy_free(deploy_t *d)
{
    for (size_t i = 0; i < d->nfiles; i++)
        free(d->files[i].rel);
    free(d->files);
    if (d->old)
        json_decref(d->old);
    if (d->dirfd >= 0)
        close(d->dirfd);
    target_clear(&d->t);
    pthread_mutex_destroy(&d->lock);
}

static void opts_defaults(const kiln_s3_opts_t *o, size_t *threshold, size_t *part_size,
                          unsigned *concurrency)
{
    *threshold = o->multipart_threshold ? o->multipart_threshold : KILN_S3_DEFAULT_PART_SIZE;
    *part_size = o->part_size ? o->part_size : KILN_S3_DEFAULT_PART_SIZE;
    if (*part_size < KILN_S3_MIN_PART_SIZE)
        *part_size = KILN_S3_MIN_PART_SIZE;
    *concurrency = o->concurrency ? o->concurrency : DEFAULT_CONCURRENCY;
    if (*concurrency > MAX_CONCURRENCY)
        *concurrency = MAX_CONCURRENCY;
}

int kiln_s3_upload_dir(kiln_aws_t *aws, const char *dir, const char *dest,
                       const kiln_s3_opts_t *opts, kiln_s3_stats_t *stats, kiln_error_t *err)
{
    static const kiln_s3_opts_t defaults = {0};
    _cleanup_free_ char *bucket = NULL;
    _cleanup_free_ char *prefix = NULL;
    deploy_t d = {0};
    kiln_http_t *http = NULL;
    pthread_t th[MAX_CONCURRENCY];
    unsigned nth = 0;
    int ret = -1;

    memset(stats, 0, sizeof(*stats));
    d.dirfd = -1;
    d.o = opts ? opts : &defaults;
    opts_defaults(d.o, &d.threshold, &d.part_size, &d.concurrency);
    pthread_mutex_init(&d.lock, NULL);
    if (kiln_s3_parse_url(dest, &bucket, &prefix, err) < 0)
        goto out;
    d.prefix = prefix;
    d.dir = dir;
    if (target_init(&d.t, aws, bucket, err) < 0)
        goto out;
    d.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.dirfd < 0) {
        kiln_error_set(err, errno, "open %s", dir);
        goto out;
    }
    if (walk(&d, d.dirfd, "", err) < 0)
        goto out;
    stats->files = d.nfiles;
    http = kiln_http_new();
    if (load_manifest(&d, http, err) < 0)
        goto out;
    for (nth = 0; nth < d.concurrency && nth < d.nfiles; nth++)
        if (pthread_create(&th[nth], NULL, file_worker, &d) != 0)
            break;
    for (unsigned i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    if (nth == 0 && d.nfiles > 0)
        file_worker(&d);
    if (d.failed) {
        if (err)
            *err = d.err;
        goto out;
    }
    for (size_t i = 0; i < d.nfiles; i++) {
        file_ent_t *f = &d.files[i];
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *key = NULL;
        unsigned long long bytes = 0;
        if (f->skip || f->size < d.threshold)
            continue;
        fd = kiln_pathres_openat(d.dirfd, f->rel, O_RDONLY | O_NOFOLLOW);
        if (fd < 0) {
            kiln_error_set(err, errno, "open %s/%s", dir, f->rel);
            goto out;
        }
        key = join_key(prefix, f->rel);
        ret = multipart_upload(&d.t, http, key, fd, f->size, f->content_type, f->cache_control,
                               d.part_size, d.o->concurrency, &bytes, err);
        d.bytes += bytes;
        if (ret < 0)
            goto out;
        ret = -1;
        d.uploaded++;
        d.multipart++;
    }
    if (write_manifest(&d, http, err) < 0) {
        kiln_error_prefix(err, "deploy manifest");
        goto out;
    }
    ret = 0;
out:
    stats->uploaded = d.uploaded;
    stats->skipped = d.skipped;
    stats->multipart = d.multipart;
    stats->bytes = d.bytes;
    kiln_http_free(http);
    deploy_free(&d);
    return ret;
}

int kiln_s3_upload_file(kiln_aws_t *aws, const char *path, const char *dest,
                        const kiln_s3_opts_t *opts, kiln_s3_stats_t *stats, kiln_error_t *err)
{
    static const kiln_s3_opts_t defaults = {0};
    const kiln_s3_opts_t *o = opts ? opts : &defaults;
    _cleanup_free_ char *bucket = NULL;
    _cleanup_free_ char *key = NULL;
    _cleanup_close_ int fd = -1;
    s3_target_t t = {0};
    kiln_http_t *http = NULL;
    size_t threshold, part_size;
    unsigned concurrency;
    unsigned char md[32];
    struct stat st;
    const char *ct, *cc;
    int ret = -1;

    memset(stats, 0, sizeof(*stats));
    opts_defaults(o, &threshold, &part_size, &concurrency);
    if (kiln_s3_parse_url(dest, &bucket, &key, err) < 0)
        return -1;
    if (key[0] == '\0' || dest[strlen(dest) - 1] == '/') {
        const char *base = strrchr(path, '/');
        char *k = join_key(key, base ? base + 1 : path);
        free(key);
        key = k;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0)
        return kiln_error_set(err, errno, "open %s", path);
    if (!S_ISREG(st.st_mode))
        return kiln_error_set(err, EINVAL, "%s is not a regular file", path);
    stats->files = 1;
    ct = kiln_s3_content_type(path);
    cc = o->cache_control ? o->cache_control : kiln_s3_cache_control(path);
    if (target_init(&t, aws, bucket, err) < 0)
        return -1;
    http = kiln_http_new();
    if ((size_t)st.st_size >= threshold) {
        unsigned long long bytes = 0;
        ret = multipart_upload(&t, http, key, fd, (size_t)st.st_size, ct, cc, part_size,
                               o->concurrency, &bytes, err);
        stats->multipart = ret == 0;
        stats->bytes = bytes;
    } else if (sha256_range(fd, 0, (size_t)st.st_size, NULL, md, err) < 0) {
        kiln_error_prefix(err, "%s", path);
    } else {
        ret = put_object(&t, http, key, fd, (size_t)st.st_size, NULL, md, ct, cc, err);
        if (ret == 0)
            stats->bytes = (unsigned long long)st.st_size;
    }
    if (ret == 0)
        stats->uploaded = 1;
    kiln_http_free(http);
    target_clear(&t);
    return ret;
}
