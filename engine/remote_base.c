/* kiln — FROM a registry image on a fresh worker: the stage needs the manifest (its digest is
 * the stage's cache key, its layers the stage's) and the config at once, the layer blobs only
 * when a step unpacks them (a RUN after a cache miss) and when the build ends (the image's
 * blobs are in the store). So the manifest and config are fetched here, and the layers by
 * kiln_registry_pull in a background thread while the cached steps, the remote cache import
 * and the unpacking of the layers already there go on; kiln_snapshot_lower_dir waits only for
 * the blob it unpacks (kiln_remote_base_wait), so each layer is unpacked as soon as it has
 * arrived, in parallel with the download of the next (engine/snapshot). A layer still
 * downloading is unpacked as its bytes arrive: the pull's on_blob_stream hook hands over
 * each blob's stream (oci/pull_stream), whose last read waits for the digest-checked commit
 * (kiln_remote_base_stream). */
#include "engine/remote_base.h"

#include "engine/cache.h"
#include "engine/remote_lazy.h"
#include "oci/store_lazy.h"

typedef struct base_pull {
    engine_t *e;
    char *ref; /* name@digest of the platform manifest */
    kiln_digest_t *layers;
    int64_t *sizes;
    size_t n_layers;
    int started;         /* the thread runs (or ran): a lower dir needed a layer */
    bool insecure;       /* the registry was reached over plain HTTP (for a lazy blob's source) */
    kiln_digest_t *have; /* blobs complete in the store (on_blob) */
    size_t n_have;
    kiln_blob_stream_t **streams; /* per layer: its download's stream (on_blob_stream) */
    pthread_t thread;
    int done, failed;
    kiln_error_t err;
    struct base_pull *next;
} base_pull_t;

/* The pulls of this build, guarded by one lock (never held while anything else is taken). */
typedef struct base_pulls {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    base_pull_t *list;
} base_pulls_t;

static base_pulls_t *pulls_of(engine_t *e)
{
    pthread_mutex_lock(&e->lock);
    if (e->base_pulls == NULL) {
        base_pulls_t *p = kiln_xzalloc(sizeof(*p));
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        e->base_pulls = p;
    }
    pthread_mutex_unlock(&e->lock);
    return e->base_pulls;
}

/* A blob of the shared store is reused when the build's namespace knows it; one of an
 * additional store (the operator's, for every build: engine/base_store) always. */
static int may_reuse(void *ud, const kiln_digest_t *d)
{
    base_pull_t *p = ud;
    return kiln_cache_ns_knows(p->e, d) || kiln_store_in_additional(p->e->store, d);
}

static void on_blob(void *ud, const kiln_digest_t *d)
{
    base_pull_t *p = ud;
    base_pulls_t *ps = p->e->base_pulls;
    kiln_cache_ns_note(p->e, d);
    pthread_mutex_lock(&ps->lock);
    p->have = kiln_xrealloc(p->have, (p->n_have + 1) * sizeof(*p->have));
    p->have[p->n_have++] = *d;
    pthread_cond_broadcast(&ps->cond);
    pthread_mutex_unlock(&ps->lock);
}

static void on_blob_stream(void *ud, kiln_blob_stream_t *bs)
{
    base_pull_t *p = ud;
    base_pulls_t *ps = p->e->base_pulls;
    pthread_mutex_lock(&ps->lock);
    kiln_blob_stream_adopt(p->streams, p->layers, p->n_layers, bs);
    pthread_cond_broadcast(&ps->cond);
    pthread_mutex_unlock(&ps->lock);
}

static void *pull_main(void *arg)
{
    base_pull_t *p = arg;
    base_pulls_t *ps = p->e->base_pulls;
    kiln_registry_pull_opts_t po = {
        .may_reuse = may_reuse, .on_blob = on_blob, .on_blob_stream = on_blob_stream, .hook_ud = p};
    kiln_registry_image_t ri = {0};
    kiln_error_t err = {0};
    int r = kiln_registry_pull(p->e->registry, p->e->store, p->ref, &po, &ri, &err);
    if (r == 0)
        kiln_registry_image_clear(&ri);
    pthread_mutex_lock(&ps->lock);
    p->done = 1;
    p->failed = r < 0;
    p->err = err;
    pthread_cond_broadcast(&ps->cond);
    pthread_mutex_unlock(&ps->lock);
    return NULL;
}

/* Starts p's download (with ps->lock held): the first time a step needs one of its layers. */
static void start_locked(base_pulls_t *ps, base_pull_t *p)
{
    if (p->started)
        return;
    p->started = 1;
    if (pthread_create(&p->thread, NULL, pull_main, p) != 0) {
        /* no thread: the pull runs here */
        p->thread = 0;
        pthread_mutex_unlock(&ps->lock);
        pull_main(p);
        pthread_mutex_lock(&ps->lock);
    }
}

/* The platform manifest ref names (an index's linux/amd64 entry): its body and descriptor,
 * and name@digest in *pinned. */
static int resolve(engine_t *e, const char *ref, char **body, size_t *len, kiln_descriptor_t *top,
                   kiln_descriptor_t *md, char **pinned, kiln_error_t *err)
{
    kiln_reference_t r = {0};
    _cleanup_free_ char *name = NULL;
    char mt[256], ds[KILN_DIGEST_STR_MAX];
    kiln_digest_t d;
    if (kiln_registry_get_manifest(e->registry, ref, body, len, mt, &d, err) < 0)
        return -1;
    memset(top, 0, sizeof(*top));
    snprintf(top->media_type, sizeof(top->media_type), "%s", mt);
    top->digest = d;
    top->size = (int64_t)*len;
    if (kiln_reference_parse(ref, &r, err) < 0)
        return -1;
    name = kiln_reference_name(&r);
    kiln_reference_free(&r);
    if (strcmp(mt, KILN_MT_OCI_INDEX) == 0 || strcmp(mt, KILN_MT_DOCKER_LIST) == 0) {
        kiln_index_t *ix = NULL;
        _cleanup_free_ char *child = NULL;
        int k;
        if (kiln_image_parse_index(*body, *len, &ix, err) < 0)
            return kiln_error_prefix(err, "%s", ref);
        k = kiln_image_index_select(ix, "linux", "amd64", NULL, err);
        if (k >= 0)
            child = kiln_xasprintf("%s@%s", name, kiln_digest_str(&ix->manifests[k].digest, ds));
        kiln_index_free(ix);
        if (k < 0)
            return kiln_error_prefix(err, "%s", ref);
        free(*body);
        *body = NULL;
        if (kiln_registry_get_manifest(e->registry, child, body, len, mt, &d, err) < 0)
            return -1;
    }
    memset(md, 0, sizeof(*md));
    snprintf(md->media_type, sizeof(md->media_type), "%s", mt);
    md->digest = d;
    md->size = (int64_t)*len;
    *pinned = kiln_xasprintf("%s@%s", name, kiln_digest_str(&d, ds));
    return 0;
}

int kiln_remote_base_start(engine_t *e, const char *ref, kiln_registry_image_t *ri, char **cfg_body,
                           size_t *cfg_len, kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    _cleanup_free_ char *pinned = NULL;
    kiln_manifest_t *m = NULL;
    kiln_digest_t cd;
    base_pulls_t *ps;
    base_pull_t *p;
    size_t len = 0;

    if (resolve(e, ref, &body, &len, &ri->top, &ri->manifest, &pinned, err) < 0)
        return -1;
    if (kiln_image_parse_manifest(body, len, &m, err) < 0)
        return kiln_error_prefix(err, "%s", ref);
    if (kiln_registry_get_blob(e->registry, pinned, &m->config.digest, KILN_IMAGE_CONFIG_MAX,
                               cfg_body, cfg_len, err) < 0 ||
        kiln_store_put_bytes(e->store, *cfg_body, *cfg_len, &cd, err) < 0) {
        kiln_manifest_free(m);
        return kiln_error_prefix(err, "%s", ref);
    }
    kiln_cache_ns_note(e, &cd); /* fetched (and checked) by this build */
    ps = pulls_of(e);
    p = kiln_xzalloc(sizeof(*p));
    p->e = e;
    p->ref = steal_pointer(&pinned);
    p->n_layers = m->n_layers;
    p->layers = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->layers));
    p->streams = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->streams));
    for (size_t i = 0; i < m->n_layers; i++)
        p->layers[i] = m->layers[i].digest;
    p->sizes = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->sizes));
    for (size_t i = 0; i < m->n_layers; i++)
        p->sizes[i] = m->layers[i].size;
    p->insecure = kiln_registry_is_insecure(e->registry, p->ref);
    pthread_mutex_lock(&ps->lock);
    /* downloaded when a step first needs a layer, or never: a fully cached build names them
     * as lazy blobs (kiln_remote_base_join; a namespaced build's are its own records, fetched
     * with its credentials before their bytes are used: oci/store_lazy) */
    p->next = ps->list;
    ps->list = p;
    pthread_mutex_unlock(&ps->lock);
    ri->parsed = m;
    return 0;
}

static bool has(const kiln_digest_t *v, size_t n, const kiln_digest_t *d)
{
    for (size_t i = 0; i < n; i++)
        if (kiln_digest_equal(&v[i], d))
            return true;
    return false;
}

/* The stream of blob d in pull p (a new reference), or NULL. Called with the lock held. */
static kiln_blob_stream_t *stream_of(const base_pull_t *p, const kiln_digest_t *d)
{
    for (size_t i = 0; i < p->n_layers; i++)
        if (p->streams[i] != NULL && kiln_digest_equal(&p->layers[i], d))
            return kiln_blob_stream_ref(p->streams[i]);
    return NULL;
}

/* Waits until blob d is in the store or (with bs) its download has started. */
static int wait_blob(engine_t *e, const kiln_digest_t *d, kiln_blob_stream_t **bs,
                     kiln_error_t *err)
{
    base_pulls_t *ps = e->base_pulls;
    int ret = 0;
    if (bs != NULL)
        *bs = NULL;
    if (ps == NULL)
        return 0;
    pthread_mutex_lock(&ps->lock);
    for (base_pull_t *p = ps->list; p && ret == 0; p = p->next) {
        if (!has(p->layers, p->n_layers, d))
            continue;
        start_locked(ps, p);
        while (!p->done && !has(p->have, p->n_have, d) &&
               (bs == NULL || (*bs = stream_of(p, d)) == NULL))
            pthread_cond_wait(&ps->cond, &ps->lock);
        if (has(p->have, p->n_have, d) || (bs != NULL && *bs != NULL))
            break;
        ret = p->failed ? -1 : 0;
        if (ret < 0)
            kiln_error_set(err, p->err.code, "%s", p->err.msg);
    }
    pthread_mutex_unlock(&ps->lock);
    return ret;
}

int kiln_remote_base_wait(engine_t *e, const kiln_digest_t *d, kiln_error_t *err)
{
    return wait_blob(e, d, NULL, err);
}

int kiln_remote_base_stream(engine_t *e, const kiln_digest_t *d, kiln_blob_stream_t **bs,
                            kiln_error_t *err)
{
    return wait_blob(e, d, bs, err);
}

/* The layers of p, never downloaded, recorded as lazy blobs of its registry image. */
static int note_lazy(engine_t *e, base_pull_t *p, kiln_error_t *err)
{
    _cleanup_free_ char *src = kiln_remote_lazy_registry_source(p->ref, p->insecure);
    /* how this build reached the registry (a mirror, a CA): the fetch goes the same way */
    _cleanup_free_ char *via = kiln_remote_lazy_registry_via(e->registry, p->ref);
    for (size_t i = 0; i < p->n_layers; i++)
        if (kiln_store_lazy_note(e->store, &p->layers[i], (uint64_t)p->sizes[i], 0, src, via, err) <
            0)
            return -1;
    return 0;
}

int kiln_remote_base_join(engine_t *e, kiln_error_t *err)
{
    base_pulls_t *ps = e->base_pulls;
    int ret = 0;
    if (ps == NULL)
        return 0;
    for (base_pull_t *p = ps->list; p; p = p->next) {
        if (!p->started && err != NULL) {
            if (note_lazy(e, p, err) < 0)
                return -1;
            continue;
        }
        if (p->thread)
            pthread_join(p->thread, NULL);
        p->thread = 0;
        if (p->failed && ret == 0) {
            ret = -1;
            if (err)
                kiln_error_set(err, p->err.code, "%s", p->err.msg);
        }
    }
    return ret;
}

void kiln_remote_base_free(engine_t *e)
{
    base_pulls_t *ps = e->base_pulls;
    if (ps == NULL)
        return;
    kiln_remote_base_join(e, NULL);
    while (ps->list) {
        base_pull_t *p = ps->list;
        ps->list = p->next;
        free(p->ref);
        free(p->layers);
        free(p->sizes);
        free(p->have);
        for (size_t i = 0; i < p->n_layers; i++)
            kiln_blob_stream_unref(p->streams[i]);
        free(p->streams);
        free(p);
    }
    pthread_mutex_destroy(&ps->lock);
    pthread_cond_destroy(&ps->cond);
    free(ps);
    e->base_pulls = NULL;
}
