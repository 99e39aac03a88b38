/* kiln — step cache keys and the local cache: a step's key chains its parent's key with
 * what the step is (kiln_cache_key_step); an entry is a store ref cache/<key> (or
 * cache/ns/NAME/<key>) naming the layer and config the step made; lookup restores them,
 * store writes them. A namespaced build reuses only blobs its namespace fetched or built. */
#include "engine/cache.h"

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
 * alone, learnt from another tenant's manifest, does not give its bytes). A
 * use keeps the mark fresh for gc. */
bool kiln_cache_ns_knows(engine_t *e, const kiln_digest_t *d)
{
    if (e->known_fd < 0)
        return true;
    return utimensat(e->known_fd, d->hex, NULL, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Records that the build's namespace fetched (verified) or built blob d. */
void kiln_cache_ns_note(engine_t *e, const kiln_digest_t *d)
{
    int fd;
    if (e->known_fd < 0)
        return;
    fd = openat(e->known_fd, d->hex, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    (void)utimensat(e->known_fd, d->hex, NULL, AT_SYMLINK_NOFOLLOW);
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
    r = kiln_store_ref_get(e->store, ref, &d, err);
    if (r <= 0)
        return r;
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
            !kiln_store_has(e->store, &l.desc.digest, NULL) ||
            !kiln_cache_ns_knows(e, &l.desc.digest)) {
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
    r = kiln_store_ref_set(e->store, ref, &desc.digest, err);
    if (r == 0 && l != NULL) {
        /* the entry is kiln's own JSON: pin its layer too, so a prune keeps it */
        _cleanup_free_ char *lref = kiln_xasprintf("%s.layer", ref);
        r = kiln_store_ref_set(e->store, lref, &l->desc.digest, err);
    }
    if (r == 0)
        note_cache_entry(e, st, key, &desc.digest);
    kiln_descriptor_clear(&desc);
    return r;
}

void kiln_cache_hash_str(kiln_sha256_t *h, const char *s)
{
    kiln_sha256_update(h, s, strlen(s) + 1);
}
