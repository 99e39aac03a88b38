/* kiln — step cache keys and the local cache: a step's key chains its parent's key with
 * what the step is (kiln_cache_key_step); an entry is a store ref cache/<key> (or
 * cache/ns/NAME/<key>) naming the layer and config the step made; lookup restores them,
 * store writes them. A namespaced build reuses only blobs its namespace fetched or built.
 * Entries are written in groups by a flusher thread: the blobs of a group made durable by one
 * sync of the store, then its refs, so no entry ever names a blob a crash cut short, and a
 * step neither fsyncs nor waits for a sync. */
#include "engine/cache.h"

#include "oci/store_lazy.h"

/* A group of entries is written once its oldest is this old (and at the end of the build):
 * a crash loses at most about this much of steps' work, which the next build does again. */
#define CACHE_FLUSH_MS 1000

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void kiln_cache_init(engine_t *e)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cache_flush_cond, &a);
    pthread_condattr_destroy(&a);
}

/* Writes a group of "<name>\t<digest>" refs: one sync of the store makes the blobs they
 * name durable (kiln_store_ref_set_volatile), then each ref. */
static int write_group(engine_t *e, strv_t *group, kiln_error_t *err)
{
    for (size_t i = 0; i < group->n; i++) {
        char *tab = strchr(group->v[i], '\t');
        _cleanup_free_ char *name = kiln_xstrndup(group->v[i], (size_t)(tab - group->v[i]));
        kiln_digest_t d;
        if (kiln_digest_parse(tab + 1, &d, err) < 0 ||
            kiln_store_ref_set_volatile(e->store, name, &d, err) < 0)
            return -1;
    }
    return 0;
}

/* The flusher thread: writes the queue once its oldest entry is CACHE_FLUSH_MS old, off the
 * steps' path (the sync waits for the disk); everything when told to stop. */
static void *flusher_main(void *arg)
{
    engine_t *e = arg;

    pthread_mutex_lock(&e->lock);
    for (;;) {
        uint64_t due = e->cache_pending_since + CACHE_FLUSH_MS;
        if (e->cache_pending.n > 0 && (e->cache_flusher_stop || mono_ms() >= due)) {
            kiln_error_t ferr = {0};
            int r;
            e->cache_writing = e->cache_pending;
            e->cache_pending = (strv_t){0};
            pthread_mutex_unlock(&e->lock);
            r = write_group(e, &e->cache_writing, &ferr);
            pthread_mutex_lock(&e->lock);
            strv_clear(&e->cache_writing);
            if (r < 0 && !kiln_error_is_set(&e->cache_flush_err))
                e->cache_flush_err = ferr;
            continue;
        }
        if (e->cache_flusher_stop)
            break;
        if (e->cache_pending.n == 0) {
            pthread_cond_wait(&e->cache_flush_cond, &e->lock);
        } else {
            struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000};
            pthread_cond_timedwait(&e->cache_flush_cond, &e->lock, &ts);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* Queues ref name -> d for the flusher (a later one for the same name wins). */
static void pending_add(engine_t *e, const char *name, const kiln_digest_t *d)
{
    char ds[KILN_DIGEST_STR_MAX];
    pthread_mutex_lock(&e->lock);
    if (e->cache_pending.n == 0) {
        e->cache_pending_since = mono_ms();
        pthread_cond_signal(&e->cache_flush_cond);
    }
    strv_add(&e->cache_pending, kiln_xasprintf("%s\t%s", name, kiln_digest_str(d, ds)));
    if (!e->cache_flusher_on && !e->cache_flusher_stop)
        e->cache_flusher_on = pthread_create(&e->cache_flusher, NULL, flusher_main, e) == 0;
    pthread_mutex_unlock(&e->lock);
}

/* In v, the last "<name>\t<digest>": 1 and *d, else 0. */
static int queued_in(const strv_t *v, const char *name, kiln_digest_t *d)
{
    size_t nl = strlen(name);
    for (size_t i = v->n; i > 0; i--)
        if (strncmp(v->v[i - 1], name, nl) == 0 && v->v[i - 1][nl] == '\t')
            return kiln_digest_parse(v->v[i - 1] + nl + 1, d, NULL) == 0;
    return 0;
}

/* The target of ref name queued or being written: 1 and *d, 0 when there is none. */
static int pending_get(engine_t *e, const char *name, kiln_digest_t *d)
{
    int r;
    pthread_mutex_lock(&e->lock);
    r = queued_in(&e->cache_pending, name, d) || queued_in(&e->cache_writing, name, d);
    pthread_mutex_unlock(&e->lock);
    return r;
}

int kiln_cache_finish(engine_t *e, kiln_error_t *err)
{
    bool on;
    int r = 0;

    pthread_mutex_lock(&e->lock);
    e->cache_flusher_stop = true;
    on = e->cache_flusher_on;
    pthread_cond_signal(&e->cache_flush_cond);
    pthread_mutex_unlock(&e->lock);
    if (on)
        pthread_join(e->cache_flusher, NULL);
    e->cache_flusher_on = false;
    /* no flusher could be started: written here */
    if (e->cache_pending.n > 0)
        r = write_group(e, &e->cache_pending, err);
    strv_clear(&e->cache_pending);
    if (r == 0 && kiln_error_is_set(&e->cache_flush_err)) {
        if (err != NULL)
            *err = e->cache_flush_err;
        r = -1;
    }
    pthread_cond_destroy(&e->cache_flush_cond);
    return r;
}

void kiln_cache_key_step(kiln_digest_t *key, const char *what, const char *extra)
{
    kiln_sha256_t h;
    char ks[KILN_DIGEST_STR_MAX];
    kiln_sha256_init(&h, NULL);
    kiln_digest_str(key, ks);
    kiln_sha256_update(&h, ks, strlen(ks));
    kiln_sha256_update(&h, "\n", 1);
    kiln_sha256_update(&h, what, strlen(what));
    kiln_sha256_update(&h, "\n", 1);
    if (extra)
        kiln_sha256_update(&h, extra, strlen(extra));
    kiln_sha256_final(&h, key);
}

/* The store ref of a step cache entry, in the build's namespace. */
char *kiln_cache_ref(const engine_t *e, const kiln_digest_t *key)
{
    char ks[KILN_DIGEST_STR_MAX];
    kiln_digest_str(key, ks);
    return kiln_xasprintf("%s%s", e->cache_prefix, strchr(ks, ':') + 1);
}

/* Whether the build's namespace may use blob d of the shared store: always
 * without a namespace, else only when it fetched or built d itself (a digest
 * alone, learnt from another tenant's manifest, does not give its bytes; the
 * marks are the store handle's: oci/store_lazy). */
bool kiln_cache_ns_knows(engine_t *e, const kiln_digest_t *d)
{
    return kiln_store_ns_knows(e->store, d);
}

/* Records that the build's namespace fetched (verified) or built blob d. */
void kiln_cache_ns_note(engine_t *e, const kiln_digest_t *d)
{
    kiln_store_ns_note(e->store, d);
}

/* Whether an entry may name layer d: in the store and the namespace's own, or a lazy blob
 * (the namespace's own record: fetched from its source before its bytes are used). */
bool kiln_cache_layer_usable(engine_t *e, const kiln_digest_t *d)
{
    return (kiln_store_has(e->store, d, NULL) == 1 && kiln_cache_ns_knows(e, d)) ||
           kiln_store_lazy_get(e->store, d, &(kiln_store_lazy_t){0}, NULL) == 1;
}

static void note_cache_entry(engine_t *e, const stage_t *st, const kiln_digest_t *key,
                             const kiln_digest_t *entry)
{
    char ks[KILN_DIGEST_STR_MAX], es[KILN_DIGEST_STR_MAX];
    kiln_digest_str(key, ks);
    kiln_digest_str(entry, es);
    pthread_mutex_lock(&e->lock);
    strv_add(&e->cache_used, kiln_xasprintf("%d %s %s", st->index, es, strchr(ks, ':') + 1));
    pthread_mutex_unlock(&e->lock);
}

/* Looks a step up: on a hit replaces the stage config, appends the layer, makes key the
 * stage's key and returns 1; 0 on a miss (a broken entry is one); -1 with err. */
int kiln_cache_lookup(engine_t *e, stage_t *st, const kiln_digest_t *key, kiln_error_t *err)
{
    _cleanup_free_ char *ref = kiln_cache_ref(e, key);
    _cleanup_free_ char *body = NULL;
    kiln_digest_t d;
    size_t len;
    json_t *j, *cfg, *layer;
    int r;

    if (e->req->no_cache)
        return 0;
    /* an entry of this build not written yet; else the store's (one a crash left
     * unreadable is a miss) */
    r = pending_get(e, ref, &d);
    if (r == 0 && kiln_store_ref_get(e->store, ref, &d, NULL) <= 0)
        return 0;
    note_cache_entry(e, st, key, &d);
    if (kiln_store_read_blob(e->store, &d, 0, &body, &len, err) < 0)
        return 0; /* a broken entry is a miss */
    j = json_loadb(body, len, 0, NULL);
    if (j == NULL)
        return 0;
    cfg = json_object_get(j, "config");
    layer = json_object_get(j, "layer");
    if (!json_is_object(cfg)) {
        json_decref(j);
        return 0;
    }
    if (json_is_object(layer)) {
        layer_t l = {0};
        const char *diff = json_string_value(json_object_get(j, "diff_id"));
        if (kiln_descriptor_from_json(layer, "layer", &l.desc, NULL) < 0 || diff == NULL ||
            kiln_digest_parse(diff, &l.diff_id, NULL) < 0 ||
            !kiln_cache_layer_usable(e, &l.desc.digest)) {
            kiln_descriptor_clear(&l.desc);
            json_decref(j);
            return 0;
        }
        st->layers = kiln_xrealloc(st->layers, (st->n_layers + 1) * sizeof(layer_t));
        st->layers[st->n_layers++] = l;
    }
    json_decref(st->config);
    st->config = json_deep_copy(cfg);
    {
        json_int_t built = json_integer_value(json_object_get(j, "built"));
        pthread_mutex_lock(&e->lock);
        if ((time_t)built > e->stamp)
            e->stamp = (time_t)built;
        pthread_mutex_unlock(&e->lock);
    }
    json_decref(j);
    st->key = *key;
    return 1;
}

int kiln_cache_store(engine_t *e, stage_t *st, const kiln_digest_t *key, const layer_t *l,
                     kiln_error_t *err)
{
    _cleanup_free_ char *ref = kiln_cache_ref(e, key);
    json_t *j = json_object();
    kiln_descriptor_t desc = {0};
    int r;
    json_object_set(j, "config", st->config);
    pthread_mutex_lock(&e->lock);
    if (e->created > e->stamp)
        e->stamp = e->created;
    pthread_mutex_unlock(&e->lock);
    json_object_set_new(j, "built", json_integer((json_int_t)e->created));
    if (l != NULL) {
        char ds[KILN_DIGEST_STR_MAX];
        json_object_set_new(j, "layer", kiln_descriptor_to_json(&l->desc));
        json_object_set_new(j, "diff_id", json_string(kiln_digest_str(&l->diff_id, ds)));
    }
    r = kiln_image_store_put(e->store, j, "application/vnd.kiln.cache.v1+json", &desc, err);
    json_decref(j);
    if (r < 0)
        return -1;
    if (l != NULL) {
        /* the entry is kiln's own JSON: pin its layer too (first), so a prune keeps it */
        _cleanup_free_ char *lref = kiln_xasprintf("%s.layer", ref);
        pending_add(e, lref, &l->desc.digest);
    }
    pending_add(e, ref, &desc.digest);
    note_cache_entry(e, st, key, &desc.digest);
    kiln_descriptor_clear(&desc);
    return 0;
}

void kiln_cache_hash_str(kiln_sha256_t *h, const char *s)
{
    kiln_sha256_update(h, s, strlen(s) + 1);
}
