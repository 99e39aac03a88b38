/* kiln — pushing images (manifest or index, with their blobs) to registries. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/layout.h"
#include "oci/registry.h"
#include "oci/registry_http.h"
#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

static int store_open_cb(void *ctx, const kiln_digest_t *d, int *fd, uint64_t *size,
                         kiln_error_t *err)
{
    return kiln_store_open_blob(ctx, d, fd, size, err);
}

static int layout_open_cb(void *ctx, const kiln_digest_t *d, int *fd, uint64_t *size,
                          kiln_error_t *err)
{
    return kiln_layout_open_blob(ctx, d, fd, size, err);
}

static int store_origin_cb(void *ctx, const kiln_digest_t *d, char *name, size_t len)
{
    return kiln_store_lazy_registry_name(ctx, d, name, len);
}

kiln_blob_source_t kiln_registry_source_store(kiln_store_t *s)
{
    kiln_blob_source_t src = {store_open_cb, s, store_origin_cb};
    return src;
}

kiln_blob_source_t kiln_registry_source_layout(const char *dir)
{
    kiln_blob_source_t src = {layout_open_cb, (void *)dir};
    return src;
}

/* Reads a document blob from the source (capped) and checks its digest. */
static int read_doc(const kiln_blob_source_t *src, const kiln_digest_t *d, char **out, size_t *len,
                    kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    uint64_t size = 0;
    size_t n = 0;
    kiln_digest_t got;
    char ds[KILN_DIGEST_STR_MAX];

    if (src->open(src->ctx, d, &fd, &size, err) < 0)
        return -1;
    if (kiln_fs_read_fd(fd, KILN_IMAGE_MANIFEST_MAX, &buf, &n, err) < 0)
        return kiln_error_prefix(err, "manifest %s", kiln_digest_str(d, ds));
    kiln_digest_bytes(buf, n, &got);
    if (!kiln_digest_equal(&got, d))
        return kiln_error_set(err, 0, "manifest %s: content does not match its digest",
                              kiln_digest_str(d, ds));
    *out = steal_pointer(&buf);
    *len = n;
    return 0;
}

typedef struct {
    kiln_registry_t *r;
    const kiln_blob_source_t *src;
    const kiln_reg_endpoint_t *ep;
    const char *repository;
    const char *mount_from; /* repository on the same registry, or NULL */
    const char *refname;    /* for events */
    kiln_descriptor_t *blobs;
} push_ctx_t;

/* Absolute URL of an upload Location (which may be relative), with extra query. */
static char *upload_url(const kiln_reg_repo_t *repo, const char *base_url, const char *location,
                        const char *query)
{
    _cleanup_free_ char *abs = NULL;
    if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0) {
        abs = kiln_xstrdup(location);
    } else {
        /* scheme://host of the request URL */
        const char *p = strstr(base_url, "://");
        size_t hl = p ? (size_t)(p + 3 - base_url) + strcspn(p + 3, "/") : 0;
        abs =
            kiln_xasprintf("%.*s%s%s", (int)hl, base_url, location[0] == '/' ? "" : "/", location);
    }
    if (query == NULL)
        return steal_pointer(&abs);
    return kiln_xasprintf("%s%s%s", abs, strchr(abs, '?') ? "&" : "?", query);
}

/* One attempt at uploading a blob: POST (or mount), then PUT or PATCH…PUT.
 * Returns 0 done, -1 failed; *retry says whether starting over may help. */
static int upload_once(push_ctx_t *pc, kiln_reg_repo_t *repo, CURL *h, const kiln_descriptor_t *b,
                       const char *ds, int fd, int *retry, int *mounted, kiln_error_t *err)
{
    kiln_reg_req_t q;
    _cleanup_free_ char *loc = NULL;
    _cleanup_free_ char *dq = NULL;
    char *esc;
    uint64_t chunk, off = 0;
    int rc = -1;

    *retry = 0;
    esc = curl_easy_escape(h, ds, 0);
    dq = kiln_xasprintf("digest=%s", esc);
    if (pc->mount_from != NULL) {
        char *from = curl_easy_escape(h, pc->mount_from, 0);
        kiln_reg_req_init(&q, "POST",
                          kiln_reg_url(repo, h, "blobs/uploads/?mount=%s&from=%s", esc, from));
        curl_free(from);
    } else {
        kiln_reg_req_init(&q, "POST", kiln_reg_url(repo, h, "blobs/uploads/"));
    }
    curl_free(esc);
    q.no_retry = 1;
    if (kiln_reg_do(repo, h, &q, err) < 0) {
        *retry = kiln_reg_retryable_curl(q.curl_code);
        goto out;
    }
    if (q.status == 201 && pc->mount_from != NULL) {
        *mounted = 1;
        rc = 0;
        goto out;
    }
    if (q.status != 202 || q.location == NULL) {
        *retry = q.status >= 500 || q.status == 429 || q.status == 408;
        kiln_reg_fail(&q, err, "starting upload of %s to %s/%s", ds, pc->ep->host,
                      repo->repository);
        goto out;
    }
    loc = upload_url(repo, q.url, q.location, NULL);
    chunk = pc->r->o.chunk_size;
    if (q.chunk_min > chunk)
        chunk = q.chunk_min;
    if (b->size >= pc->r->o.monolithic_max) {
        while (off < b->size) {
            uint64_t n = b->size - off < chunk ? b->size - off : chunk;
            _cleanup_free_ char *cr =
                kiln_xasprintf("Content-Range: %llu-%llu", (unsigned long long)off,
                               (unsigned long long)(off + n - 1));
            kiln_reg_req_free(&q);
            kiln_reg_req_init(&q, "PATCH", kiln_xstrdup(loc));
            q.no_retry = 1;
            q.has_body = 1;
            q.body_fd = fd;
            q.body_off = off;
            q.body_size = n;
            q.content_type = "application/octet-stream";
            q.extra_header = cr;
            if (kiln_reg_do(repo, h, &q, err) < 0) {
                *retry = kiln_reg_retryable_curl(q.curl_code) && !q.sink_failed;
                kiln_error_prefix(err, "uploading %s", ds);
                goto out;
            }
            if (q.status != 202) {
                *retry = q.status >= 500 || q.status == 429 || q.status == 408 || q.status == 416;
                kiln_reg_fail(&q, err, "uploading %s to %s/%s", ds, pc->ep->host, repo->repository);
                goto out;
            }
            if (q.location != NULL) {
                free(loc);
                loc = upload_url(repo, q.url, q.location, NULL);
            }
            off += n;
            kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_PROGRESS, pc->refname, ds, pc->ep->host,
                           NULL, b->size, off);
        }
        kiln_reg_req_free(&q);
        kiln_reg_req_init(&q, "PUT", upload_url(repo, loc, loc, dq));
        q.has_body = 1;
        q.body = "";
        q.body_len = 0;
    } else {
        kiln_reg_req_free(&q);
        kiln_reg_req_init(&q, "PUT", upload_url(repo, loc, loc, dq));
        q.has_body = 1;
        q.body_fd = fd;
        q.body_off = 0;
        q.body_size = b->size;
        q.content_type = "application/octet-stream";
    }
    q.no_retry = 1;
    if (kiln_reg_do(repo, h, &q, err) < 0) {
        *retry = kiln_reg_retryable_curl(q.curl_code) && !q.sink_failed;
        kiln_error_prefix(err, "uploading %s", ds);
        goto out;
    }
    if (q.status != 201) {
        *retry = q.status >= 500 || q.status == 429 || q.status == 408;
        kiln_reg_fail(&q, err, "finishing upload of %s to %s/%s", ds, pc->ep->host,
                      repo->repository);
        goto out;
    }
    rc = 0;
out:
    kiln_reg_req_free(&q);
    return rc;
}

/* A lazy blob of the source (not read yet) whose image is on the destination's registry in
 * another repository: 1 when that registry mounted it from there (nothing fetched), else 0
 * (the blob is then read and uploaded as any other). */
static int mount_lazy(push_ctx_t *pc, CURL *h, const kiln_descriptor_t *b, const char *ds)
{
    char name[KILN_STORE_LAZY_SOURCE_MAX];
    _cleanup_free_ char *tmp = NULL;
    kiln_reference_t from = {0};
    kiln_reg_repo_t repo;
    kiln_reg_req_t q;
    char *esc, *fr;
    int mounted = 0;
    if (pc->src->origin == NULL ||
        pc->src->origin(pc->src->ctx, &b->digest, name, sizeof(name)) != 1)
        return 0;
    tmp = kiln_xasprintf("%s:x", name);
    if (kiln_reference_parse(tmp, &from, NULL) < 0 ||
        strcmp(from.registry, pc->ep->registry) != 0 ||
        strcmp(from.repository, pc->repository) == 0) {
        kiln_reference_free(&from);
        return 0;
    }
    kiln_reg_repo_init(&repo, pc->r, pc->ep, pc->repository, "pull,push", from.repository);
    esc = curl_easy_escape(h, ds, 0);
    fr = curl_easy_escape(h, from.repository, 0);
    kiln_reg_req_init(&q, "POST",
                      kiln_reg_url(&repo, h, "blobs/uploads/?mount=%s&from=%s", esc, fr));
    curl_free(esc);
    curl_free(fr);
    q.no_retry = 1;
    /* 202 (an upload started instead) or an error: the upload below */
    if (kiln_reg_do(&repo, h, &q, NULL) == 0 && q.status == 201) {
        mounted = 1;
        kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_MOUNTED, pc->refname, ds, pc->ep->host,
                       from.repository, b->size, b->size);
    }
    kiln_reg_req_free(&q);
    kiln_reg_repo_clear(&repo);
    kiln_reference_free(&from);
    return mounted;
}

/* Makes sure the registry has blob i: HEAD, else mount, else upload (restarted
 * from scratch on transient failures, within the retry budget). */
static int push_blob(size_t i, void *ud, CURL *h, kiln_error_t *err)
{
    push_ctx_t *pc = ud;
    const kiln_descriptor_t *b = &pc->blobs[i];
    kiln_reg_repo_t repo;
    kiln_reg_req_t q;
    _cleanup_close_ int fd = -1;
    char ds[KILN_DIGEST_STR_MAX];
    uint64_t size = 0;
    int rc = -1, attempt = 0, retry = 0, mounted = 0;

    kiln_digest_str(&b->digest, ds);
    kiln_reg_repo_init(&repo, pc->r, pc->ep, pc->repository, "pull,push", pc->mount_from);
    kiln_reg_req_init(&q, "HEAD", kiln_reg_url(&repo, h, "blobs/%s", ds));
    if (kiln_reg_do(&repo, h, &q, err) < 0)
        goto out;
    if (q.status == 200) {
        kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_SKIPPED, pc->refname, ds, pc->ep->host,
                       "already in the registry", b->size, b->size);
        rc = 0;
        goto out;
    }
    if (q.status != 404) {
        kiln_reg_fail(&q, err, "checking blob %s on %s/%s", ds, pc->ep->host, repo.repository);
        goto out;
    }
    if (mount_lazy(pc, h, b, ds) == 1) {
        rc = 0;
        goto out;
    }
    if (pc->src->open(pc->src->ctx, &b->digest, &fd, &size, err) < 0)
        goto out;
    if (size != b->size) {
        kiln_error_set(err, 0, "blob %s: %llu bytes, but the manifest says %llu", ds,
                       (unsigned long long)size, (unsigned long long)b->size);
        goto out;
    }
    kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_START, pc->refname, ds, pc->ep->host, NULL, b->size,
                   0);
    for (;;) {
        kiln_error_t e = {0};
        if (upload_once(pc, &repo, h, b, ds, fd, &retry, &mounted, &e) == 0) {
            rc = 0;
            break;
        }
        if (!retry || attempt >= pc->r->o.retries) {
            if (err != NULL)
                *err = e;
            break;
        }
        kiln_reg_event(pc->r, KILN_REGISTRY_EV_RETRY, pc->refname, ds, pc->ep->host, e.msg, b->size,
                       0);
        kiln_reg_backoff(pc->r, attempt++, -1);
    }
    if (rc == 0)
        kiln_reg_event(pc->r, mounted ? KILN_REGISTRY_EV_BLOB_MOUNTED : KILN_REGISTRY_EV_BLOB_DONE,
                       pc->refname, ds, pc->ep->host, mounted ? pc->mount_from : NULL, b->size,
                       b->size);
out:
    kiln_reg_req_free(&q);
    kiln_reg_repo_clear(&repo);
    return rc;
}

/* PUTs a manifest/index under tag_or_digest and checks the digest the registry reports. */
static int put_manifest(push_ctx_t *pc, CURL *h, const char *tag_or_digest, const char *body,
                        size_t len, const char *media_type, const kiln_digest_t *d,
                        kiln_error_t *err)
{
    kiln_reg_repo_t repo;
    kiln_reg_req_t q;
    char ds[KILN_DIGEST_STR_MAX];
    int rc = -1;

    kiln_reg_repo_init(&repo, pc->r, pc->ep, pc->repository, "pull,push", NULL);
    kiln_reg_req_init(&q, "PUT", kiln_reg_url(&repo, h, "manifests/%s", tag_or_digest));
    q.has_body = 1;
    q.body = body;
    q.body_len = len;
    q.content_type = media_type;
    kiln_digest_str(d, ds);
    if (kiln_reg_do(&repo, h, &q, err) < 0)
        goto out;
    if (q.status != 201 && q.status != 200) {
        kiln_reg_fail(&q, err, "pushing manifest %s to %s/%s:%s", ds, pc->ep->host, repo.repository,
                      tag_or_digest);
        goto out;
    }
    if (q.docker_digest != NULL && strcmp(q.docker_digest, ds) != 0) {
        kiln_error_set(err, 0, "pushing manifest %s to %s/%s: the registry stored %.80s", ds,
                       pc->ep->host, repo.repository, q.docker_digest);
        goto out;
    }
    kiln_reg_event(pc->r, KILN_REGISTRY_EV_MANIFEST_PUT, pc->refname, ds, pc->ep->host,
                   tag_or_digest, len, len);
    rc = 0;
out:
    kiln_reg_req_free(&q);
    kiln_reg_repo_clear(&repo);
    return rc;
}

/* Pushes the document d (and everything under it), then PUTs it as tag (or
 * by digest when tag is NULL). */
static int push_doc(push_ctx_t *pc, CURL *h, const kiln_descriptor_t *d, const char *tag, int depth,
                    kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    _cleanup_json_ json_t *j = NULL;
    size_t len = 0;
    char ds[KILN_DIGEST_STR_MAX];
    const char *mt;
    int rc = -1;

    kiln_digest_str(&d->digest, ds);
    if (depth > 2)
        return kiln_error_set(err, EINVAL, "index %s nests too deeply", ds);
    if (read_doc(pc->src, &d->digest, &body, &len, err) < 0)
        return -1;
    if (kiln_image_load_json(body, len, KILN_IMAGE_MANIFEST_MAX, "manifest", &j, err) < 0)
        return kiln_error_prefix(err, "%s", ds);
    mt = kiln_json_get_string(j, "mediaType");
    if (mt == NULL)
        mt = d->media_type[0] ? d->media_type : NULL;
    if (kiln_image_doc_kind(j) == KILN_DOC_INDEX) {
        kiln_index_t *ix = NULL;
        if (kiln_image_parse_index(body, len, &ix, err) < 0)
            return kiln_error_prefix(err, "%s", ds);
        rc = 0;
        for (size_t i = 0; i < ix->n_manifests && rc == 0; i++)
            rc = push_doc(pc, h, &ix->manifests[i], NULL, depth + 1, err);
        kiln_index_free(ix);
        if (rc < 0)
            return -1;
        if (mt == NULL)
            mt = KILN_MT_OCI_INDEX;
    } else {
        kiln_manifest_t *m = NULL;
        kiln_descriptor_t *blobs;
        if (kiln_image_parse_manifest(body, len, &m, err) < 0)
            return kiln_error_prefix(err, "%s", ds);
        blobs = kiln_xzalloc((m->n_layers + 1) * sizeof(*blobs));
        blobs[0] = m->config;
        for (size_t i = 0; i < m->n_layers; i++)
            blobs[i + 1] = m->layers[i];
        pc->blobs = blobs;
        rc = kiln_reg_parallel(m->n_layers + 1, pc->r->o.parallel, push_blob, pc, err);
        pc->blobs = NULL;
        free(blobs); /* shallow copies: the manifest owns the json members */
        if (mt == NULL)
            mt = m->media_type;
        if (rc < 0) {
            kiln_manifest_free(m);
            return -1;
        }
        rc = put_manifest(pc, h, tag ? tag : ds, body, len, mt, &d->digest, err);
        kiln_manifest_free(m);
        return rc;
    }
    return put_manifest(pc, h, tag ? tag : ds, body, len, mt, &d->digest, err);
}

/* The endpoint a push to reference ref goes to: never a mirror, the destination itself. */
static void dest_endpoint(kiln_registry_t *r, const kiln_reference_t *ref, kiln_reg_endpoint_t *ep)
{
    kiln_reg_endpoint_t *eps = NULL;
    size_t neps = 0;
    ep->registry = ref->registry;
    ep->host = (char *)kiln_reference_endpoint(ref->registry);
    ep->prefix = (char *)"";
    kiln_reg_endpoints(r, ref->registry, &eps, &neps, NULL);
    ep->insecure = eps[neps - 1].insecure;
    kiln_reg_endpoints_free(eps, neps);
}

int kiln_registry_put_manifest(kiln_registry_t *r, const char *ref, const char *body, size_t len,
                               const char *media_type, kiln_error_t *err)
{
    kiln_reference_t parsed = {0};
    kiln_reg_endpoint_t ep = {0};
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];
    if (kiln_reference_parse(ref, &parsed, err) < 0)
        return -1;
    kiln_digest_bytes(body, len, &d);
    kiln_digest_str(&d, ds);
    if (parsed.digest != NULL && strcmp(parsed.digest, ds) != 0) {
        kiln_error_set(err, EINVAL, "push to %s: the manifest's digest is %s", ref, ds);
        kiln_reference_free(&parsed);
        return -1;
    }
    dest_endpoint(r, &parsed, &ep);
    _cleanup_free_ char *full = kiln_reference_format(&parsed);
    push_ctx_t pc = {r, NULL, &ep, parsed.repository, NULL, full, NULL};
    CURL *h = kiln_reg_handle();
    int rc = put_manifest(&pc, h, parsed.tag ? parsed.tag : ds, body, len, media_type, &d, err);
    curl_easy_cleanup(h);
    kiln_reference_free(&parsed);
    return rc;
}

int kiln_registry_push(kiln_registry_t *r, const kiln_blob_source_t *src,
                       const kiln_descriptor_t *top, const char *const *refs, size_t n,
                       const char *mount_from, kiln_digest_t *pushed, kiln_error_t *err)
{
    kiln_reference_t *parsed = kiln_xzalloc((n ? n : 1) * sizeof(*parsed));
    kiln_reference_t mref = {0};
    CURL *h = kiln_reg_handle();
    int rc = -1;
    char ds[KILN_DIGEST_STR_MAX];

    kiln_digest_str(&top->digest, ds);
    if (n == 0) {
        kiln_error_set(err, EINVAL, "push: no destination reference");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (kiln_reference_parse(refs[i], &parsed[i], err) < 0)
            goto out;
        if (parsed[i].digest != NULL && strcmp(parsed[i].digest, ds) != 0) {
            kiln_error_set(err, EINVAL, "push to %s: the image's digest is %s", refs[i], ds);
            goto out;
        }
    }
    if (mount_from != NULL) {
        _cleanup_free_ char *tmp = kiln_xasprintf("%s:x", mount_from);
        if (kiln_reference_parse(tmp, &mref, NULL) < 0)
            memset(&mref, 0, sizeof(mref));
    }
    for (size_t i = 0; i < n; i++) {
        kiln_reg_endpoint_t ep = {0};
        _cleanup_free_ char *full = kiln_reference_format(&parsed[i]);
        const char *tag = parsed[i].tag ? parsed[i].tag : NULL;
        const char *mount_repo = NULL;
        push_ctx_t pc;
        size_t j;
        int done = 0;

        dest_endpoint(r, &parsed[i], &ep);
        /* an earlier destination in the same repository: only tag it */
        for (j = 0; j < i; j++)
            if (strcmp(parsed[j].registry, parsed[i].registry) == 0 &&
                strcmp(parsed[j].repository, parsed[i].repository) == 0)
                break;
        if (mref.registry != NULL && strcmp(mref.registry, parsed[i].registry) == 0 &&
            strcmp(mref.repository, parsed[i].repository) != 0)
            mount_repo = mref.repository;
        for (size_t k = 0; k < i && mount_repo == NULL; k++)
            if (strcmp(parsed[k].registry, parsed[i].registry) == 0)
                mount_repo = parsed[k].repository;
        pc = (push_ctx_t){r, src, &ep, parsed[i].repository, mount_repo, full, NULL};
        if (j < i) {
            _cleanup_free_ char *body = NULL;
            _cleanup_json_ json_t *jd = NULL;
            size_t len = 0;
            const char *mt;
            if (read_doc(src, &top->digest, &body, &len, err) < 0 ||
                kiln_image_load_json(body, len, KILN_IMAGE_MANIFEST_MAX, "manifest", &jd, err) < 0)
                goto out;
            mt = kiln_json_get_string(jd, "mediaType");
            if (put_manifest(&pc, h, tag ? tag : ds, body, len, mt ? mt : top->media_type,
                             &top->digest, err) < 0) {
                kiln_error_prefix(err, "%s", full);
                goto out;
            }
            done = 1;
        }
        if (!done && push_doc(&pc, h, top, tag, 0, err) < 0) {
            kiln_error_prefix(err, "push %s", full);
            goto out;
        }
    }
    if (pushed != NULL)
        *pushed = top->digest;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        kiln_reference_free(&parsed[i]);
    free(parsed);
    kiln_reference_free(&mref);
    curl_easy_cleanup(h);
    return rc;
}
