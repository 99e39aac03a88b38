/* kiln — pulling images from a registry into the shared store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oci/pull_stream.h"
#include "oci/registry.h"
#include "oci/registry_http.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define PROGRESS_STEP (8u << 20)
/* The bytes of a streamed-only blob held for its reader (po->stream_only): the download
 * pauses while they are all unread. */
#define STREAM_RING (4u << 20)

void kiln_registry_image_clear(kiln_registry_image_t *img)
{
    if (img == NULL)
        return;
    kiln_descriptor_clear(&img->top);
    kiln_descriptor_clear(&img->manifest);
    kiln_manifest_free(img->parsed);
    free(img->name);
    free(img->host);
    memset(img, 0, sizeof(*img));
}

/* One blob to fetch. */
typedef struct {
    kiln_digest_t digest;
    uint64_t size;
    /* its bytes for a reader while it downloads (po->on_blob_stream), released by
     * whoever ends the download */
    kiln_blob_stream_t *bs;
    int mem; /* streamed only (po->stream_only): never in the store */
} want_blob_t;

typedef struct {
    kiln_registry_t *r;
    kiln_store_t *s;
    const kiln_reg_endpoint_t *ep;
    const char *repository;
    want_blob_t *blobs;
    const kiln_registry_pull_opts_t *po;
} pull_ctx_t;

typedef struct {
    pull_ctx_t *pc;
    want_blob_t *b;
    kiln_store_writer_t *w;
    uint64_t got;
    uint64_t next_event;
    int attempt_started;
    int multi;     /* on the multi handle: a full stream pauses the transfer (else waits) */
    int paused;    /* the transfer is paused until the stream has room */
    uint64_t skip; /* bytes of this response already pushed (a 200 answering a Range) */
    char ds[KILN_DIGEST_STR_MAX];
} dl_t;

/* A new store writer for the blob (a pulled blob can be fetched again: no fsync), its
 * stream (when one is read) pointed at the new file. */
static int dl_new_writer(dl_t *d, kiln_error_t *err)
{
    if (d->b->mem) { /* no file: a download resumes where its stream is */
        d->got = kiln_blob_stream_pushed(d->b->bs);
        return 0;
    }
    if (kiln_store_writer_new(d->pc->s, &d->b->digest, (int64_t)d->b->size, &d->w, err) < 0)
        return -1;
    kiln_store_writer_no_sync(d->w);
    if (d->b->bs != NULL) {
        int fd = kiln_store_writer_open_read(d->w, err);
        if (fd < 0)
            return -1;
        kiln_blob_stream_restart(d->b->bs, fd);
    }
    return 0;
}

/* Drops the blob written so far (the download starts over). */
static void dl_drop_writer(dl_t *d)
{
    kiln_store_writer_abort(d->w);
    d->w = NULL;
    d->got = 0;
}

/* Verifies and publishes the blob; its readers learn the verdict. */
static int dl_commit(dl_t *d, kiln_error_t *err)
{
    if (d->b->mem)
        return kiln_blob_stream_commit(d->b->bs, d->b->size, err);
    int rc = kiln_store_writer_commit(d->w, NULL, NULL, err);
    d->w = NULL;
    if (d->b->bs != NULL)
        kiln_blob_stream_finish(d->b->bs, rc == 0, d->got, err);
    return rc;
}

/* Ends blob b's stream (a failure unless it was committed) and drops it. */
static void dl_end_stream(want_blob_t *b, const kiln_error_t *err)
{
    if (b->bs == NULL)
        return;
    kiln_blob_stream_finish(b->bs, 0, 0, err);
    kiln_blob_stream_unref(b->bs);
    b->bs = NULL;
}

/* A streamed-only blob's bytes into its stream (those a 200 repeats skipped): 0, 1 when
 * the stream has no room (the transfer pauses and gets the same bytes again), -1 past the
 * blob's size. */
static int dl_push(dl_t *d, const char *buf, size_t len, kiln_error_t *err)
{
    size_t k = d->skip < len ? (size_t)d->skip : len;
    if (d->got + (len - k) > d->b->size) /* never more than its size reaches the unpacker */
        return kiln_error_set(err, EFBIG, "blob %s: more than the expected %llu bytes", d->ds,
                              (unsigned long long)d->b->size);
    if (len > k && !kiln_blob_stream_push(d->b->bs, buf + k, len - k, !d->multi)) {
        d->paused = 1;
        return 1;
    }
    d->skip -= k;
    d->got += len - k;
    return 0;
}

/* Streams the body into the store writer (or a streamed-only blob's stream); restarts when
 * the server ignored Range (a stream skips what it has). 1: pause the transfer. */
static int dl_sink(void *ud, const void *buf, size_t len, long status, kiln_error_t *err)
{
    dl_t *d = ud;
    if (!d->attempt_started) {
        d->attempt_started = 1;
        d->skip = status == 200 && d->b->mem ? d->got : 0;
        if (status == 200 && d->got > 0 && !d->b->mem) {
            dl_drop_writer(d);
            if (dl_new_writer(d, err) < 0)
                return -1;
        }
    }
    if (d->b->mem) {
        int r = dl_push(d, buf, len, err);
        if (r != 0)
            return r;
    } else if (kiln_store_writer_write(d->w, buf, len, err) < 0) {
        return kiln_error_prefix(err, "blob %s", d->ds);
    } else {
        d->got += len;
    }
    if (d->b->bs != NULL && !d->b->mem)
        kiln_blob_stream_grow(d->b->bs, kiln_store_writer_flushed(d->w));
    if (d->got >= d->next_event) {
        kiln_reg_event(d->pc->r, KILN_REGISTRY_EV_BLOB_PROGRESS, NULL, d->ds, d->pc->ep->host, NULL,
                       d->b->size, d->got);
        d->next_event = d->got + PROGRESS_STEP;
    }
    return 0;
}

/* Downloads one blob into the store, resuming with Range after a dropped connection. */
static int pull_blob(size_t i, void *ud, CURL *h, kiln_error_t *err)
{
    pull_ctx_t *pc = ud;
    dl_t d = {.pc = pc, .b = &pc->blobs[i], .next_event = PROGRESS_STEP};
    kiln_reg_repo_t repo;
    int attempt = 0, rc = -1;
    _cleanup_free_ char *range = NULL;

    kiln_digest_str(&d.b->digest, d.ds);
    kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_START, NULL, d.ds, pc->ep->host, NULL, d.b->size,
                   0);
    if (dl_new_writer(&d, err) < 0) {
        kiln_store_writer_abort(d.w);
        dl_end_stream(d.b, err);
        return -1;
    }
    kiln_reg_repo_init(&repo, pc->r, pc->ep, pc->repository, "pull", NULL);
    for (;;) {
        kiln_reg_req_t q;
        kiln_error_t e = {0};
        int ok;
        kiln_reg_req_init(&q, "GET", kiln_reg_url(&repo, h, "blobs/%s", d.ds));
        q.sink = dl_sink;
        q.sink_ud = &d;
        q.no_retry = 1;
        free(range);
        range = d.got > 0 ? kiln_xasprintf("bytes=%llu-", (unsigned long long)d.got) : NULL;
        q.range = range;
        d.attempt_started = 0;
        ok = kiln_reg_do(&repo, h, &q, &e);
        if (ok == 0 && (q.status == 200 || q.status == 206)) {
            kiln_reg_req_free(&q);
            if (d.got != d.b->size) {
                /* a short body without a transport error: retry the rest */
                if (attempt < pc->r->o.retries) {
                    kiln_reg_backoff(pc->r, attempt++, -1);
                    continue;
                }
                kiln_error_set(err, 0, "blob %s: got %llu of %llu bytes", d.ds,
                               (unsigned long long)d.got, (unsigned long long)d.b->size);
                break;
            }
            rc = dl_commit(&d, err);
            if (rc < 0)
                kiln_error_prefix(err, "blob %s from %s/%s", d.ds, pc->ep->host, repo.repository);
            break;
        }
        if (ok == 0 && q.status == 416 && d.got > 0 && !d.b->mem) {
            /* range not satisfiable: start over */
            kiln_reg_req_free(&q);
            dl_drop_writer(&d);
            if (dl_new_writer(&d, err) < 0)
                break;
            continue;
        }
        if (attempt < pc->r->o.retries &&
            ((ok < 0 && kiln_reg_retryable_curl(q.curl_code) && !q.sink_failed) ||
             (ok == 0 && (q.status == 408 || q.status == 429 || q.status >= 500)))) {
            long ra = q.retry_after;
            _cleanup_free_ char *m = ok < 0 ? kiln_xasprintf("blob %s: %s", d.ds, e.msg)
                                            : kiln_xasprintf("blob %s: HTTP %ld", d.ds, q.status);
            kiln_reg_req_free(&q);
            kiln_reg_event(pc->r, KILN_REGISTRY_EV_RETRY, NULL, d.ds, pc->ep->host, m, d.b->size,
                           d.got);
            kiln_reg_backoff(pc->r, attempt++, ra);
            continue;
        }
        if (ok < 0) {
            if (err != NULL)
                *err = e;
        } else {
            kiln_reg_fail(&q, err, "blob %s from %s/%s", d.ds, pc->ep->host, repo.repository);
        }
        kiln_reg_req_free(&q);
        break;
    }
    kiln_store_writer_abort(d.w);
    dl_end_stream(d.b, err);
    kiln_reg_repo_clear(&repo);
    if (rc == 0) {
        kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_DONE, NULL, d.ds, pc->ep->host, NULL, d.b->size,
                       d.b->size);
        if (pc->po != NULL && pc->po->on_blob != NULL && !d.b->mem)
            pc->po->on_blob(pc->po->hook_ud, &d.b->digest);
    }
    return rc;
}

/* --- parallel downloads on one curl multi handle ------------------------ */

typedef enum { X_PENDING, X_ACTIVE, X_DONE, X_SYNC } xfer_state_t;

/* One blob download driven by the multi handle. */
typedef struct {
    dl_t d;
    kiln_reg_req_t q;
    CURL *h;
    char *range;
    char errbuf[CURL_ERROR_SIZE];
    xfer_state_t state;
    int attempt;
    int started;
    uint64_t not_before; /* monotonic ms before which a retry waits */
} xfer_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Starts (or restarts, resuming with Range) transfer x on the multi handle. */
static void xfer_start(pull_ctx_t *pc, kiln_reg_repo_t *repo, CURLM *m, xfer_t *x)
{
    if (!x->started) {
        x->started = 1;
        kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_START, NULL, x->d.ds, pc->ep->host, NULL,
                       x->d.b->size, 0);
    }
    kiln_reg_req_init(&x->q, "GET", kiln_reg_url(repo, x->h, "blobs/%s", x->d.ds));
    x->q.sink = dl_sink;
    x->q.sink_ud = &x->d;
    free(x->range);
    x->range = x->d.got > 0 ? kiln_xasprintf("bytes=%llu-", (unsigned long long)x->d.got) : NULL;
    x->q.range = x->range;
    x->d.attempt_started = 0;
    kiln_reg_setup(repo, x->h, &x->q, x->errbuf);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_multi_add_handle(m, x->h);
    x->state = X_ACTIVE;
}

/* Judges a finished transfer: done, retry later, hand to the synchronous
 * path (a 401: the token needs renewing), or fail. */
static int xfer_done(pull_ctx_t *pc, kiln_reg_repo_t *repo, xfer_t *x, CURLcode cc,
                     kiln_error_t *err)
{
    kiln_reg_req_t *q = &x->q;
    int rc = 0;

    kiln_reg_finish(x->h, q, cc);
    cc = (CURLcode)q->curl_code; /* a refusal by the address policy is final */
    if (q->sink_failed) {
        if (err != NULL)
            *err = q->sink_err;
        rc = -1;
    } else if (cc == CURLE_OK && (q->status == 200 || q->status == 206) &&
               x->d.got == x->d.b->size) {
        rc = dl_commit(&x->d, err);
        if (rc < 0) {
            kiln_error_prefix(err, "blob %s from %s/%s", x->d.ds, pc->ep->host, repo->repository);
        } else {
            x->state = X_DONE;
            kiln_reg_event(pc->r, KILN_REGISTRY_EV_BLOB_DONE, NULL, x->d.ds, pc->ep->host, NULL,
                           x->d.b->size, x->d.b->size);
            if (pc->po != NULL && pc->po->on_blob != NULL && !x->d.b->mem)
                pc->po->on_blob(pc->po->hook_ud, &x->d.b->digest);
        }
    } else if (cc == CURLE_OK && q->status == 401) {
        x->state = X_SYNC;
    } else if (cc == CURLE_OK && q->status == 416 && x->d.got > 0 && !x->d.b->mem) {
        dl_drop_writer(&x->d);
        x->state = X_PENDING;
        rc = dl_new_writer(&x->d, err);
    } else if (x->attempt < pc->r->o.retries &&
               ((cc != CURLE_OK && kiln_reg_retryable_curl(cc)) ||
                (cc == CURLE_OK && (q->status == 408 || q->status == 429 || q->status >= 500 ||
                                    q->status == 200 || q->status == 206)))) {
        /* a transport error, a server error, or a short body: resume later */
        _cleanup_free_ char *msg =
            cc != CURLE_OK ? kiln_xasprintf("blob %s: %s", x->d.ds,
                                            x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc))
                           : kiln_xasprintf("blob %s: HTTP %ld", x->d.ds, q->status);
        kiln_reg_event(pc->r, KILN_REGISTRY_EV_RETRY, NULL, x->d.ds, pc->ep->host, msg,
                       x->d.b->size, x->d.got);
        x->not_before = now_ms() + kiln_reg_backoff_ms(pc->r, x->attempt++, q->retry_after);
        x->state = X_PENDING;
    } else if (cc != CURLE_OK) {
        rc = kiln_error_set(err, 0, "GET %s: blob %s: %s%s", pc->ep->host, x->d.ds,
                            x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc),
                            x->attempt ? " (after retries)" : "");
    } else if (q->status == 200 || q->status == 206) {
        rc = kiln_error_set(err, 0, "blob %s: got %llu of %llu bytes", x->d.ds,
                            (unsigned long long)x->d.got, (unsigned long long)x->d.b->size);
    } else {
        rc = kiln_reg_fail(q, err, "blob %s from %s/%s", x->d.ds, pc->ep->host, repo->repository);
    }
    kiln_reg_req_free(q);
    return rc;
}

/* A streamed-only blob's reader made room: the multi loop resumes its transfer. */
static void wake_multi(void *m)
{
    curl_multi_wakeup(m);
}

/* Resumes the transfers paused for a full stream whose reader has made room. */
static void resume_paused(xfer_t *xs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (xs[i].state == X_ACTIVE && xs[i].d.paused && !kiln_blob_stream_blocked(xs[i].d.b->bs)) {
            xs[i].d.paused = 0; /* before: the resumed write may pause it again */
            curl_easy_pause(xs[i].h, CURLPAUSE_CONT);
        }
}

/* Downloads blobs [0, n) of pc with at most `parallel` transfers in flight on
 * one curl multi handle (shared connections). The Authorization is set up
 * first with a HEAD; a blob whose transfer meets a 401 (token expired) goes
 * through the synchronous path, which re-authenticates. */
static int pull_blobs_multi(pull_ctx_t *pc, size_t n, kiln_error_t *err)
{
    kiln_reg_repo_t repo;
    kiln_reg_req_t head;
    xfer_t *xs;
    CURLM *m;
    CURL *h0;
    size_t done = 0, active = 0, nsync = 0;
    int rc = 0;
    char ds[KILN_DIGEST_STR_MAX];

    if (n == 0)
        return 0;
    kiln_reg_repo_init(&repo, pc->r, pc->ep, pc->repository, "pull", NULL);
    h0 = kiln_reg_handle();
    kiln_reg_req_init(
        &head, "HEAD",
        kiln_reg_url(&repo, h0, "blobs/%s", kiln_digest_str(&pc->blobs[0].digest, ds)));
    rc = kiln_reg_do(&repo, h0, &head, err);
    kiln_reg_req_free(&head);
    curl_easy_cleanup(h0);
    if (rc < 0) {
        kiln_reg_repo_clear(&repo);
        return -1;
    }
    xs = kiln_xzalloc(n * sizeof(*xs));
    m = curl_multi_init();
    if (m == NULL)
        abort();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)pc->r->o.parallel);
    for (size_t i = 0; i < n && rc == 0; i++) {
        xs[i].d.pc = pc;
        xs[i].d.b = &pc->blobs[i];
        xs[i].d.next_event = PROGRESS_STEP;
        xs[i].d.multi = 1;
        kiln_digest_str(&xs[i].d.b->digest, xs[i].d.ds);
        xs[i].h = kiln_reg_handle();
        if (pc->po != NULL && pc->po->on_blob_stream != NULL) {
            xs[i].d.b->bs = kiln_blob_stream_new(&xs[i].d.b->digest);
            if (xs[i].d.b->mem &&
                kiln_blob_stream_memory(xs[i].d.b->bs, STREAM_RING, wake_multi, m, err) < 0) {
                rc = -1;
                break;
            }
            pc->po->on_blob_stream(pc->po->hook_ud, xs[i].d.b->bs);
        }
        rc = dl_new_writer(&xs[i].d, err);
    }
    while (rc == 0 && done < n) {
        CURLMsg *msg;
        int running = 0, left = 0;
        uint64_t now = now_ms();
        for (size_t i = 0; i < n && active < pc->r->o.parallel; i++) {
            if (xs[i].state == X_PENDING && xs[i].not_before <= now) {
                xfer_start(pc, &repo, m, &xs[i]);
                active++;
            }
        }
        resume_paused(xs, n);
        curl_multi_perform(m, &running);
        while (rc == 0 && (msg = curl_multi_info_read(m, &left)) != NULL) {
            xfer_t *x = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            curl_multi_remove_handle(m, x->h);
            active--;
            rc = xfer_done(pc, &repo, x, msg->data.result, err);
            if (x->state == X_DONE || x->state == X_SYNC)
                done++;
        }
        if (rc == 0 && done < n)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        if (xs[i].state == X_ACTIVE) {
            curl_multi_remove_handle(m, xs[i].h);
            kiln_reg_req_free(&xs[i].q);
        }
        kiln_store_writer_abort(xs[i].d.w);
        if (pc->blobs[i].mem && pc->blobs[i].bs != NULL) /* the multi handle goes away */
            kiln_blob_stream_set_wake(pc->blobs[i].bs, NULL, NULL);
        if (rc == 0 && xs[i].state == X_SYNC)
            pc->blobs[nsync++] = pc->blobs[i]; /* its stream goes along */
        else
            dl_end_stream(&pc->blobs[i], rc < 0 ? err : NULL);
        curl_easy_cleanup(xs[i].h);
        free(xs[i].range);
    }
    curl_multi_cleanup(m);
    free(xs);
    kiln_reg_repo_clear(&repo);
    if (rc == 0 && nsync > 0)
        rc = kiln_reg_parallel(nsync, pc->r->o.parallel, pull_blob, pc, err);
    return rc;
}

/* Adds blob d to the list (once); mem: it may be streamed only (a blob named twice is not:
 * its stream has one reader). */
static void add_want(want_blob_t **v, size_t *n, const kiln_descriptor_t *d, int mem)
{
    for (size_t i = 0; i < *n; i++)
        if (kiln_digest_equal(&(*v)[i].digest, &d->digest)) {
            (*v)[i].mem = 0;
            return;
        }
    *v = kiln_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n].digest = d->digest;
    (*v)[*n].size = d->size;
    (*v)[*n].bs = NULL;
    (*v)[*n].mem = mem;
    (*n)++;
}

/* A fetched manifest waiting to be stored. */
typedef struct {
    char *body;
    size_t len;
    kiln_descriptor_t desc;
    kiln_manifest_t *m;
} got_manifest_t;

int kiln_registry_pull(kiln_registry_t *r, kiln_store_t *s, const char *refstr,
                       const kiln_registry_pull_opts_t *po, kiln_registry_image_t *out,
                       kiln_error_t *err)
{
    kiln_reference_t ref = {0};
    kiln_reg_endpoint_t *eps = NULL;
    size_t neps = 0, nman = 0, nwant = 0, nfetch = 0, nmem = 0;
    kiln_reg_repo_t repo = {0};
    _cleanup_free_ char *top_body = NULL;
    _cleanup_free_ char *name = NULL;
    _cleanup_free_ char *full = NULL;
    size_t top_len = 0;
    char top_mt[256];
    kiln_digest_t top_digest;
    kiln_index_t *ix = NULL;
    got_manifest_t *mans = NULL;
    want_blob_t *want = NULL;
    int selected = 0, rc = -1;
    const char *os = po && po->os ? po->os : "linux";
    const char *arch = po && po->arch ? po->arch : "amd64";
    const char *variant = po ? po->variant : NULL;
    char ds[KILN_DIGEST_STR_MAX];
    CURL *h;

    if (kiln_reference_parse(refstr, &ref, err) < 0)
        return -1;
    full = kiln_reference_format(&ref);
    name = kiln_reference_name(&ref);
    h = kiln_reg_handle();
    if (kiln_reg_resolve(r, h, &ref, &eps, &neps, &repo, &top_body, &top_len, top_mt, &top_digest,
                         err) < 0)
        goto out;
    kiln_reg_event(r, KILN_REGISTRY_EV_RESOLVED, full, kiln_digest_str(&top_digest, ds),
                   repo.ep->host, repo.ep->is_mirror ? "mirror" : NULL, top_len, 0);

    if (strcmp(top_mt, KILN_MT_OCI_INDEX) == 0 || strcmp(top_mt, KILN_MT_DOCKER_LIST) == 0) {
        size_t first, last;
        if (kiln_image_parse_index(top_body, top_len, &ix, err) < 0) {
            kiln_error_prefix(err, "%s", full);
            goto out;
        }
        if (po != NULL && po->all_platforms) {
            int k = kiln_image_index_select(ix, os, arch, variant, NULL);
            first = 0;
            last = ix->n_manifests;
            selected = k > 0 ? k : 0;
            if (last == 0) {
                kiln_error_set(err, EINVAL, "%s: the index lists no manifests", full);
                goto out;
            }
        } else {
            int k = kiln_image_index_select(ix, os, arch, variant, err);
            if (k < 0) {
                kiln_error_prefix(err, "%s", full);
                goto out;
            }
            first = (size_t)k;
            last = first + 1;
            selected = 0;
        }
        mans = kiln_xzalloc((last - first) * sizeof(*mans));
        for (size_t i = first; i < last; i++) {
            const kiln_descriptor_t *cd = &ix->manifests[i];
            char cmt[256];
            kiln_digest_t cg;
            got_manifest_t *g = &mans[nman];
            kiln_digest_str(&cd->digest, ds);
            if (kiln_reg_fetch_manifest(&repo, h, ds, &cd->digest, &g->body, &g->len, cmt, &cg,
                                        err) < 0)
                goto out;
            nman++;
            kiln_descriptor_copy(&g->desc, cd);
            if (kiln_image_parse_manifest(g->body, g->len, &g->m, err) < 0) {
                kiln_error_prefix(err, "%s@%s", name, ds);
                goto out;
            }
        }
    } else {
        mans = kiln_xzalloc(sizeof(*mans));
        mans[0].body = steal_pointer(&top_body);
        mans[0].len = top_len;
        snprintf(mans[0].desc.media_type, sizeof(mans[0].desc.media_type), "%s", top_mt);
        mans[0].desc.digest = top_digest;
        mans[0].desc.size = top_len;
        nman = 1;
        if (kiln_image_parse_manifest(mans[0].body, mans[0].len, &mans[0].m, err) < 0) {
            kiln_error_prefix(err, "%s", full);
            goto out;
        }
    }

    for (size_t i = 0; i < nman; i++) {
        add_want(&want, &nwant, &mans[i].m->config, 0);
        for (size_t l = 0; l < mans[i].m->n_layers; l++)
            if (po == NULL || po->skip_layer == NULL ||
                !po->skip_layer(po->hook_ud, &mans[i].m->layers[l]))
                add_want(&want, &nwant, &mans[i].m->layers[l],
                         po != NULL && po->on_blob_stream != NULL && po->stream_only != NULL &&
                             po->stream_only(po->hook_ud, &mans[i].m->layers[l]));
    }
    if (po != NULL && po->on_manifest != NULL)
        po->on_manifest(po->hook_ud, mans[selected].m);
    /* skip what the store has */
    for (size_t i = 0; i < nwant; i++) {
        uint64_t have = 0;
        if (kiln_store_has(s, &want[i].digest, &have) == 1 && have == want[i].size &&
            (po == NULL || po->may_reuse == NULL || po->may_reuse(po->hook_ud, &want[i].digest))) {
            kiln_reg_event(r, KILN_REGISTRY_EV_BLOB_SKIPPED, NULL,
                           kiln_digest_str(&want[i].digest, ds), repo.ep->host, "in the store",
                           want[i].size, want[i].size);
            if (po != NULL && po->on_blob != NULL)
                po->on_blob(po->hook_ud, &want[i].digest);
            continue;
        }
        want[nfetch++] = want[i];
        nmem += want[i].mem;
    }
    {
        pull_ctx_t pc = {r, s, repo.ep, ref.repository, want, po};
        if (pull_blobs_multi(&pc, nfetch, err) < 0) {
            kiln_error_prefix(err, "pulling %s", full);
            goto out;
        }
    }
    /* manifests after their blobs, the top-level document last; none when a layer was only
     * streamed: the store does not have the image */
    for (size_t i = 0; i < nman && nmem == 0; i++) {
        kiln_digest_t d;
        if (kiln_store_put_bytes(s, mans[i].body, mans[i].len, &d, err) < 0)
            goto out;
    }
    if (ix != NULL && nmem == 0) {
        kiln_digest_t d;
        if (kiln_store_put_bytes(s, top_body, top_len, &d, err) < 0)
            goto out;
    }
    if (nmem == 0) {
        _cleanup_free_ char *pin = kiln_xasprintf("image/%s", full);
        if (kiln_store_ref_set(s, pin, &top_digest, err) < 0)
            goto out;
    }

    memset(out, 0, sizeof(*out));
    snprintf(out->top.media_type, sizeof(out->top.media_type), "%s", top_mt);
    out->top.digest = top_digest;
    out->top.size = top_len;
    kiln_descriptor_copy(&out->manifest, &mans[selected].desc);
    out->parsed = steal_pointer(&mans[selected].m);
    out->name = steal_pointer(&name);
    out->host = kiln_xstrdup(repo.ep->host);
    out->streamed = nmem;
    rc = 0;
out:
    for (size_t i = 0; i < nman; i++) {
        free(mans[i].body);
        kiln_descriptor_clear(&mans[i].desc);
        kiln_manifest_free(mans[i].m);
    }
    free(mans);
    free(want);
    kiln_index_free(ix);
    if (eps != NULL) {
        kiln_reg_repo_clear(&repo);
        kiln_reg_endpoints_free(eps, neps);
    }
    curl_easy_cleanup(h);
    kiln_reference_free(&ref);
    return rc;
}

/* Runs fn on each endpoint of ref's registry (mirrors first) until one succeeds. */
static int on_endpoints(kiln_registry_t *r, const char *refstr,
                        int (*fn)(kiln_reg_repo_t *repo, CURL *h, void *ud, kiln_error_t *err),
                        void *ud, kiln_error_t *err)
{
    kiln_reference_t ref = {0};
    kiln_reg_endpoint_t *eps = NULL;
    size_t neps = 0;
    CURL *h;
    int rc = -1;

    if (kiln_reference_parse(refstr, &ref, err) < 0)
        return -1;
    h = kiln_reg_handle();
    kiln_reg_endpoints(r, ref.registry, &eps, &neps, err);
    for (size_t i = 0; i < neps && rc < 0; i++) {
        kiln_reg_repo_t repo;
        kiln_reg_repo_init(&repo, r, &eps[i], ref.repository, "pull", NULL);
        kiln_error_clear(err);
        rc = fn(&repo, h, ud, err);
        kiln_reg_repo_clear(&repo);
    }
    kiln_reg_endpoints_free(eps, neps);
    curl_easy_cleanup(h);
    kiln_reference_free(&ref);
    return rc;
}

typedef struct {
    kiln_store_t *s;
    const kiln_descriptor_t *d;
} pull_one_t;

static int pull_one(kiln_reg_repo_t *repo, CURL *h, void *ud, kiln_error_t *err)
{
    pull_one_t *o = ud;
    want_blob_t b = {.digest = o->d->digest, .size = o->d->size};
    pull_ctx_t pc = {repo->r, o->s, repo->ep, repo->repository, &b, NULL};
    return pull_blob(0, &pc, h, err);
}

int kiln_registry_pull_blob(kiln_registry_t *r, kiln_store_t *s, const char *refstr,
                            const kiln_descriptor_t *d, kiln_error_t *err)
{
    pull_one_t o = {s, d};
    return on_endpoints(r, refstr, pull_one, &o, err);
}

typedef struct {
    const kiln_digest_t *d;
    size_t cap;
    char **body;
    size_t *len;
} get_one_t;

static int get_one(kiln_reg_repo_t *repo, CURL *h, void *ud, kiln_error_t *err)
{
    get_one_t *o = ud;
    kiln_reg_req_t q;
    kiln_digest_t got;
    char ds[KILN_DIGEST_STR_MAX];
    int rc = -1;

    kiln_digest_str(o->d, ds);
    kiln_reg_req_init(&q, "GET", kiln_reg_url(repo, h, "blobs/%s", ds));
    q.resp_cap = o->cap;
    if (kiln_reg_do(repo, h, &q, err) == 0) {
        if (q.status != 200) {
            kiln_reg_fail(&q, err, "blob %s from %s/%s", ds, repo->ep->host, repo->repository);
        } else {
            kiln_digest_bytes(q.resp.data ? q.resp.data : "", q.resp.len, &got);
            if (!kiln_digest_equal(&got, o->d)) {
                kiln_error_set(err, 0, "blob %s from %s/%s: content does not match its digest", ds,
                               repo->ep->host, repo->repository);
            } else {
                *o->len = q.resp.len;
                *o->body = q.resp.data ? kiln_buf_steal(&q.resp, NULL) : kiln_xstrdup("");
                rc = 0;
            }
        }
    }
    kiln_reg_req_free(&q);
    return rc;
}

int kiln_registry_get_blob(kiln_registry_t *r, const char *refstr, const kiln_digest_t *d,
                           size_t cap, char **body, size_t *len, kiln_error_t *err)
{
    get_one_t o = {d, cap, body, len};
    return on_endpoints(r, refstr, get_one, &o, err);
}
