/* kiln — one object sent to S3 (see s3_object.h): addressing, hashing, PutObject with a
 * checksum, multipart uploads with parts in parallel and each part retried, and
 * kiln_s3_upload_file (one file, by PutObject or multipart by its size). */
#include "utils/aws/s3_object.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/aws/xml.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define DEFAULT_CONCURRENCY 16
#define DEFAULT_PART_CONCURRENCY 8 /* x part size of memory */
#define READ_CHUNK (1024u * 1024)
#define PART_ATTEMPTS 3

void kiln_s3_target_clear(kiln_s3_target_t *t)
{
    kiln_aws_endpoint_clear(&t->ep);
    free(t->bucket);
}

int kiln_s3_target_init(kiln_s3_target_t *t, kiln_aws_t *aws, const char *bucket, kiln_error_t *err)
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
char *kiln_s3_key_path(const kiln_s3_target_t *t, const char *key)
{
    _cleanup_free_ char *enc = kiln_sigv4_uri_encode(key, strlen(key), 1);
    if (t->path_style)
        return kiln_xasprintf("/%s/%s", t->bucket, enc);
    return kiln_xasprintf("/%s", enc);
}

char *kiln_s3_join_key(const char *prefix, const char *rel)
{
    return prefix[0] ? kiln_xasprintf("%s/%s", prefix, rel) : kiln_xstrdup(rel);
}

static void b64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

void kiln_s3_hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* SHA-256 of len bytes of fd at offset, or of mem when given. */
int kiln_s3_sha256(int fd, off_t off, size_t len, const void *mem, unsigned char md[32],
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

/* Sends a call to t and fails (err from the S3 answer) on a non-2xx status. */
static int s3_call(const kiln_s3_target_t *t, kiln_http_t *http, kiln_aws_call_t *call,
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

int kiln_s3_put_object(const kiln_s3_target_t *t, kiln_http_t *http, const char *key, int fd,
                       size_t size, const void *mem, const unsigned char md[32],
                       const char *content_type, const char *cache_control, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_s3_key_path(t, key);
    _cleanup_free_ char *h_ct = kiln_xasprintf("Content-Type: %s", content_type);
    _cleanup_free_ char *h_cc = kiln_xasprintf("Cache-Control: %s", cache_control);
    _cleanup_free_ char *h_ck = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("PUT s3://%s/%s", t->bucket, key);
    char hexhash[65], b64hash[48];
    const char *hdrs[3];
    kiln_aws_call_t call = {0};
    kiln_http_response_t resp = {0};

    kiln_s3_hex(md, 32, hexhash);
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

/* GetObject (a range of it when len > 0) into memory, at most cap bytes. */
int kiln_s3_get_object(const kiln_s3_target_t *t, kiln_http_t *http, const char *key, uint64_t off,
                       uint64_t len, size_t cap, char **out, size_t *out_len, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_s3_key_path(t, key);
    _cleanup_free_ char *range = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("GET s3://%s/%s", t->bucket, key);
    const char *hdrs[1];
    kiln_aws_call_t call = {0};
    kiln_http_response_t resp = {0};

    call.service = "s3";
    call.endpoint = &t->ep;
    call.s3 = 1;
    call.method = "GET";
    call.path = path;
    call.body_fd = -1;
    call.response_cap = cap;
    if (len > 0) {
        range = kiln_xasprintf("Range: bytes=%llu-%llu", (unsigned long long)off,
                               (unsigned long long)(off + len - 1));
        hdrs[0] = range;
        call.headers = hdrs;
        call.n_headers = 1;
    }
    if (kiln_aws_send(t->aws, http, &call, &resp, err) < 0)
        return kiln_error_prefix(err, "%s", what);
    if (resp.status == 404) {
        kiln_http_response_free(&resp);
        return 0;
    }
    if (resp.status != 200 && resp.status != 206) {
        kiln_aws_error_from_response(&resp, err, what);
        kiln_http_response_free(&resp);
        return -1;
    }
    *out = steal_pointer(&resp.body);
    *out_len = resp.body_len;
    kiln_http_response_free(&resp);
    return 1;
}

typedef struct mp_part {
    char *etag;
} mp_part_t;

typedef struct mp_job {
    const kiln_s3_target_t *t;
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
    _cleanup_free_ char *path = kiln_s3_key_path(j->t, j->key);
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
    kiln_s3_sha256(-1, 0, len, buf, md, NULL);
    kiln_s3_hex(md, 32, hexhash);
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

static void abort_upload(const kiln_s3_target_t *t, kiln_http_t *http, const char *key,
                         const char *upload_id)
{
    _cleanup_free_ char *path = kiln_s3_key_path(t, key);
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

int kiln_s3_multipart_upload(const kiln_s3_target_t *t, kiln_http_t *http, const char *key, int fd,
                             size_t size, const char *content_type, const char *cache_control,
                             size_t part_size, unsigned concurrency, unsigned long long *bytes,
                             kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_s3_key_path(t, key);
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
    pthread_t th[KILN_S3_MAX_CONCURRENCY];
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
    if (concurrency > KILN_S3_MAX_CONCURRENCY)
        concurrency = KILN_S3_MAX_CONCURRENCY;
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

void kiln_s3_opts_defaults(const kiln_s3_opts_t *o, size_t *threshold, size_t *part_size,
                           unsigned *concurrency)
{
    *threshold = o->multipart_threshold ? o->multipart_threshold : KILN_S3_DEFAULT_PART_SIZE;
    *part_size = o->part_size ? o->part_size : KILN_S3_DEFAULT_PART_SIZE;
    if (*part_size < KILN_S3_MIN_PART_SIZE)
        *part_size = KILN_S3_MIN_PART_SIZE;
    *concurrency = o->concurrency ? o->concurrency : DEFAULT_CONCURRENCY;
    if (*concurrency > KILN_S3_MAX_CONCURRENCY)
        *concurrency = KILN_S3_MAX_CONCURRENCY;
}

int kiln_s3_upload_file(kiln_aws_t *aws, const char *path, const char *dest,
                        const kiln_s3_opts_t *opts, kiln_s3_stats_t *stats, kiln_error_t *err)
{
    static const kiln_s3_opts_t defaults = {0};
    const kiln_s3_opts_t *o = opts ? opts : &defaults;
    _cleanup_free_ char *bucket = NULL;
    _cleanup_free_ char *key = NULL;
    _cleanup_close_ int fd = -1;
    kiln_s3_target_t t = {0};
    kiln_http_t *http = NULL;
    size_t threshold, part_size;
    unsigned concurrency;
    unsigned char md[32];
    struct stat st;
    const char *ct, *cc;
    int ret = -1;

    memset(stats, 0, sizeof(*stats));
    kiln_s3_opts_defaults(o, &threshold, &part_size, &concurrency);
    if (kiln_s3_parse_url(dest, &bucket, &key, err) < 0)
        return -1;
    if (key[0] == '\0' || dest[strlen(dest) - 1] == '/') {
        const char *base = strrchr(path, '/');
        char *k = kiln_s3_join_key(key, base ? base + 1 : path);
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
    if (kiln_s3_target_init(&t, aws, bucket, err) < 0)
        return -1;
    http = kiln_http_new();
    if ((size_t)st.st_size >= threshold) {
        unsigned long long bytes = 0;
        ret = kiln_s3_multipart_upload(&t, http, key, fd, (size_t)st.st_size, ct, cc, part_size,
                                       o->concurrency, &bytes, err);
        stats->multipart = ret == 0;
        stats->bytes = bytes;
    } else if (kiln_s3_sha256(fd, 0, (size_t)st.st_size, NULL, md, err) < 0) {
        kiln_error_prefix(err, "%s", path);
    } else {
        ret = kiln_s3_put_object(&t, http, key, fd, (size_t)st.st_size, NULL, md, ct, cc, err);
        if (ret == 0)
            stats->bytes = (unsigned long long)st.st_size;
    }
    if (ret == 0)
        stats->uploaded = 1;
    kiln_http_free(http);
    kiln_s3_target_clear(&t);
    return ret;
}
