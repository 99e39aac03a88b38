/* kiln — the registry cache: the registry client of a build, pulls that honour the
 * cache namespace, cache import (--cache-from: entries of an image merged into the local
 * cache) and export (--cache-to: this build's entries pushed as an image). */
#include "engine/remote_cache.h"

#include "engine/cache.h"
#include "engine/cachemanifest.h"
#include "engine/regcache.h"
#include "engine/remote_lazy.h"
#include "engine/remote_mounts.h"
#include "oci/store_lazy.h"

/* kiln_registry_pull hooks: a blob another namespace stored is fetched again */
static int pull_may_reuse(void *ud, const kiln_digest_t *d)
{
    return kiln_cache_ns_knows(ud, d);
}

static void pull_on_blob(void *ud, const kiln_digest_t *d)
{
    kiln_cache_ns_note(ud, d);
}

/* Pulls ref into the store for this build (see pull_may_reuse). */
int kiln_remote_cache_pull(engine_t *e, const char *ref, kiln_registry_image_t *ri,
                           kiln_error_t *err)
{
    kiln_registry_pull_opts_t po = {
        .may_reuse = pull_may_reuse, .on_blob = pull_on_blob, .hook_ud = e};
    return kiln_registry_pull(e->registry, e->store, ref, &po, ri, err);
}

int kiln_remote_cache_registry(engine_t *e, kiln_error_t *err)
{
    int r = 0;
    pthread_mutex_lock(&e->lock);
    if (e->registry == NULL) {
        kiln_registry_opts_t o;
        kiln_registry_opts_init(&o);
        o.insecure = e->req->insecure_registries;
        o.mirrors = e->req->mirrors;
        o.policy = e->registry_policy;
        if (e->req->registry_config)
            o.config_file = e->req->registry_config;
        r = kiln_registry_new(&o, &e->registry, err);
    }
    pthread_mutex_unlock(&e->lock);
    return r;
}

/* Stores an imported cache entry without an fsync: it can be imported again, and a ref
 * naming an entry a crash cut short is a miss (kiln_cache_lookup checks the digest). */
static int put_entry(kiln_store_t *s, json_t *entry, kiln_descriptor_t *desc, kiln_error_t *err)
{
    _cleanup_free_ char *buf = NULL;
    kiln_store_writer_t *w = NULL;
    size_t len;
    memset(desc, 0, sizeof(*desc));
    if (kiln_image_serialize(entry, &buf, &len, &desc->digest, err) < 0 ||
        kiln_store_writer_new(s, &desc->digest, (int64_t)len, &w, err) < 0)
        return -1;
    kiln_store_writer_no_sync(w);
    if (kiln_store_writer_write(w, buf, len, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    if (kiln_store_writer_commit(w, NULL, NULL, err) < 0)
        return -1;
    snprintf(desc->media_type, sizeof(desc->media_type), "application/vnd.kiln.cache.v1+json");
    desc->size = (int64_t)len;
    return 0;
}

/* Merges the cache entries of map (key hex -> entry, from a remote cache) into the local
 * cache: an entry whose layer this namespace has not fetched or built is left out, a local
 * entry wins. *n counts those merged. The entries are written without an fsync (put_entry),
 * the import's lazy blob records made durable in one sync, then the refs written without one:
 * an imported entry lost in a crash is imported again (or its step runs again). */
int kiln_remote_cache_merge(engine_t *e, json_t *map, size_t *n, kiln_error_t *err)
{
    json_t *entry;
    const char *key;
    strv_t names = {0};
    kiln_digest_t *targets = NULL;
    size_t nt = 0;
    int ret = -1;
    json_object_foreach(map, key, entry)
    {
        kiln_digest_t kd, have;
        kiln_descriptor_t desc = {0};
        _cleanup_free_ char *name = NULL;
        kiln_descriptor_t ld = {0};
        json_t *layer = json_object_get(entry, "layer");
        bool has_layer = false;
        if (kiln_digest_parse_hex(key, &kd, NULL) < 0)
            continue;
        name = kiln_cache_ref(e, &kd);
        if (kiln_store_ref_get(e->store, name, &have, NULL) == 1)
            continue; /* a local entry wins */
        if (json_is_object(layer) && kiln_descriptor_from_json(layer, "layer", &ld, NULL) == 0) {
            /* an entry may only name a layer this namespace fetched (the cache image's own),
             * built or named lazily (its own record, fetched from its own source before its
             * bytes are used), not any blob of the shared store */
            if (!kiln_cache_ns_knows(e, &ld.digest) &&
                kiln_store_lazy_get(e->store, &ld.digest, &(kiln_store_lazy_t){0}, NULL) != 1) {
                kiln_descriptor_clear(&ld);
                continue;
            }
            has_layer = true;
        }
        if (put_entry(e->store, entry, &desc, err) < 0) {
            kiln_descriptor_clear(&ld);
            goto out;
        }
        targets = kiln_xrealloc(targets, (nt + 2) * sizeof(*targets));
        if (has_layer) {
            strv_add(&names, kiln_xasprintf("%s.layer", name));
            targets[nt++] = ld.digest;
        }
        strv_add(&names, steal_pointer(&name));
        targets[nt++] = desc.digest;
        kiln_descriptor_clear(&ld);
        kiln_descriptor_clear(&desc);
        (*n)++;
    }
    if (nt > 0 && kiln_store_sync(e->store, err) < 0)
        goto out;
    for (size_t i = 0; i < nt; i++)
        if (kiln_store_ref_set_volatile(e->store, names.v[i], &targets[i], err) < 0)
            goto out;
    ret = 0;
out:
    strv_clear(&names);
    free(targets);
    return ret;
}

/* A cache mount pack of a registry cache image: not pulled with the image, fetched when a
 * step mounts its cache id (kiln_remote_cache_fetch_pack). */
static int skip_pack(void *ud, const kiln_descriptor_t *d)
{
    (void)ud;
    return strcmp(d->media_type, KILN_CM_PACK_MEDIA_TYPE) == 0;
}

/* Notes why cache image ref did not give pack ds: the message as the fetch made it (its
 * system error text once), prefixed with the pack and ref when it names neither (an answer
 * refused before the blob was asked for: "answered 401 without a WWW-Authenticate header");
 * after the first cache image's reason, "; " and the next one's. */
static void fetch_failed(kiln_error_t *err, kiln_error_t *why, const char *ds, const char *ref,
                         bool first)
{
    if (strstr(why->msg, ds) == NULL)
        kiln_error_prefix(why, "blob %s from %s", ds, ref);
    if (err == NULL)
        return;
    if (first || err->msg[0] == '\0') {
        *err = *why;
        return;
    }
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, "; %s", why->msg);
}

int kiln_remote_cache_fetch_pack(engine_t *e, const kiln_digest_t *d, uint64_t size, char **buf,
                                 kiln_error_t *err)
{
    char ds[KILN_DIGEST_STR_MAX];
    kiln_digest_str(d, ds);
    if (size > KILN_CM_PACK_MAX)
        return kiln_error_set(err, 0, "pack %s: %llu bytes", ds, (unsigned long long)size);
    if (kiln_remote_cache_registry(e, err) < 0)
        return -1;
    for (size_t i = 0; i < e->req->n_cache_from; i++) {
        kiln_error_t ferr = {0};
        kiln_digest_t got;
        size_t len = 0;
        /* the first cache image's repository serving it; the digest checked by the fetch */
        if (kiln_registry_get_blob(e->registry, e->req->cache_from[i], d, (size_t)size, buf, &len,
                                   &ferr) < 0) {
            fetch_failed(err, &ferr, ds, e->req->cache_from[i], i == 0);
            continue;
        }
        if (len != size) {
            free(*buf);
            *buf = NULL;
            return kiln_error_set(err, 0, "pack %s: %zu bytes, not %llu", ds, len,
                                  (unsigned long long)size);
        }
        /* kept for a later build and a registry --cache-to; now this namespace's own */
        if (kiln_store_put_bytes(e->store, *buf, len, &got, NULL) == 0)
            kiln_cache_ns_note(e, d);
        return 0;
    }
    if (e->req->n_cache_from == 0)
        kiln_error_set(err, 0, "pack %s: no registry --cache-from to fetch it from", ds);
    return -1;
}

/* The blob source of the cache image's push: the store, and a pack of an imported cache
 * mount this build did not use (never pulled) from the registry cache it came from, only
 * when the destination lacks it (the push asks the source only then). */
static int export_open(void *ctx, const kiln_digest_t *d, int *fd, uint64_t *size,
                       kiln_error_t *err)
{
    engine_t *e = ctx;
    kiln_blob_source_t st = kiln_registry_source_store(e->store);
    _cleanup_free_ char *buf = NULL;
    kiln_error_t serr = {0};
    uint64_t want = 0;
    if (st.open(st.ctx, d, fd, size, &serr) == 0)
        return 0;
    if (!kiln_remote_mounts_pack_size(e, d, &want)) {
        *err = serr;
        return -1;
    }
    if (kiln_remote_cache_fetch_pack(e, d, want, &buf, err) < 0)
        return -1;
    return st.open(st.ctx, d, fd, size, err);
}

/* A layer of a registry cache image left out of its import's pull: a cache mount pack
 * (fetched when a step mounts its id) or a layer the namespace cannot use from the store yet
 * (named lazily by note_lazy). */
static int skip_import(void *ud, const kiln_descriptor_t *d)
{
    engine_t *e = ud;
    return skip_pack(NULL, d) || kiln_store_has(e->store, &d->digest, NULL) != 1 ||
           !kiln_cache_ns_knows(e, &d->digest);
}

/* Records the layers of cache image ri that the pull left out (not the packs) as lazy blobs of
 * it, pinned to its manifest: fetched, digest and size checked, when their bytes are needed. */
static int note_lazy(engine_t *e, const kiln_registry_image_t *ri, size_t *n, kiln_error_t *err)
{
    char ds[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *pinned =
        kiln_xasprintf("%s@%s", ri->name, kiln_digest_str(&ri->manifest.digest, ds));
    _cleanup_free_ char *src =
        kiln_remote_lazy_registry_source(pinned, kiln_registry_is_insecure(e->registry, pinned));
    /* reached later the way this build reached the cache (its mirrors, plain HTTP, CA) */
    _cleanup_free_ char *via = kiln_remote_lazy_registry_via(e->registry, pinned);
    for (size_t i = 0; i < ri->parsed->n_layers; i++) {
        const kiln_descriptor_t *l = &ri->parsed->layers[i];
        if (skip_pack(NULL, l) || !skip_import(e, l))
            continue;
        if (l->size <= 0)
            return kiln_error_set(err, 0, "%s: layer %s of size %lld", pinned,
                                  kiln_digest_str(&l->digest, ds), (long long)l->size);
        if (kiln_store_lazy_note(e->store, &l->digest, (uint64_t)l->size, 0, src, via, err) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

/* Imports the cache entries of a registry cache image (pulled into the store without its
 * layers: each is named lazily; its cache mount packs are fetched when a step mounts them) as
 * local entries. A missing image is not an error. */
int kiln_remote_cache_import(engine_t *e, const char *ref, kiln_error_t *err)
{
    kiln_registry_image_t ri = {0};
    kiln_error_t perr = {0};
    _cleanup_free_ char *body = NULL;
    size_t len, i = 0, n_lazy = 0;
    json_t *cfg;
    kiln_registry_pull_opts_t po = {.may_reuse = pull_may_reuse,
                                    .on_blob = pull_on_blob,
                                    .skip_layer = skip_import,
                                    .hook_ud = e};

    if (kiln_remote_cache_registry(e, err) < 0)
        return -1;
    if (kiln_registry_pull(e->registry, e->store, ref, &po, &ri, &perr) < 0) {
        kiln_engine_log(e, "WARNING: cache from %s not imported: %s", ref, perr.msg);
        return 0;
    }
    if (note_lazy(e, &ri, &n_lazy, err) < 0 ||
        kiln_store_read_blob(e->store, &ri.parsed->config.digest, KILN_IMAGE_CONFIG_MAX, &body,
                             &len, err) < 0) {
        kiln_registry_image_clear(&ri);
        return kiln_error_prefix(err, "cache from %s", ref);
    }
    kiln_registry_image_clear(&ri);
    cfg = json_loadb(body, len, 0, NULL);
    kiln_remote_mounts_imported(e, cfg);
    if (kiln_remote_cache_merge(e, json_object_get(cfg, "kiln.cache.v1"), &i, err) < 0) {
        json_decref(cfg);
        return -1;
    }
    json_decref(cfg);
    kiln_engine_log(e, "imported %zu cache entries from %s (%zu layers named to fetch when needed)",
                    i, ref, n_lazy);
    return 0;
}

/* The cache entries this build used or made (every stage's when all, else the target's),
 * keyed by their key hex, and the layers they name, each once, with their diff_ids. */
json_t *kiln_remote_cache_entries(engine_t *e, const stage_t *target, int all,
                                  kiln_descriptor_t **layers_out, kiln_digest_t **diff_ids,
                                  size_t *n_out)
{
    json_t *map = json_object();
    kiln_descriptor_t *layers = NULL;
    size_t nl = 0;
    *diff_ids = NULL;
    for (size_t i = 0; i < e->cache_used.n; i++) {
        int sidx = -1;
        char es[KILN_DIGEST_STR_MAX], kh[80];
        kiln_digest_t ed;
        _cleanup_free_ char *body = NULL;
        size_t len;
        json_t *entry, *layer;
        if (sscanf(e->cache_used.v[i], "%d %71s %79s", &sidx, es, kh) != 3 ||
            (!all && sidx != target->index) || kiln_digest_parse(es, &ed, NULL) < 0 ||
            kiln_store_read_blob(e->store, &ed, 0, &body, &len, NULL) < 0)
            continue;
        entry = json_loadb(body, len, 0, NULL);
        if (entry == NULL)
            continue;
        layer = json_object_get(entry, "layer");
        if (json_is_object(layer)) {
            kiln_descriptor_t d = {0};
            const char *diff = json_string_value(json_object_get(entry, "diff_id"));
            kiln_digest_t dd;
            bool dup = false;
            if (kiln_descriptor_from_json(layer, "layer", &d, NULL) == 0 && diff &&
                kiln_digest_parse(diff, &dd, NULL) == 0) {
                for (size_t k = 0; k < nl && !dup; k++)
                    dup = kiln_digest_equal(&layers[k].digest, &d.digest);
                if (!dup) {
                    layers = kiln_xrealloc(layers, (nl + 1) * sizeof(*layers));
                    *diff_ids = kiln_xrealloc(*diff_ids, (nl + 1) * sizeof(**diff_ids));
                    (*diff_ids)[nl] = dd;
                    layers[nl++] = d;
                    d = (kiln_descriptor_t){0};
                }
            }
            kiln_descriptor_clear(&d);
        }
        json_object_set_new(map, kh, entry);
    }
    *layers_out = layers;
    *n_out = nl;
    return map;
}

/* Pushes this build's cache entries (and their layers) as one image: an OCI
 * manifest whose config is a valid image config carrying the entries under
 * "kiln.cache.v1", so any registry (ECR included) stores it. */
int kiln_remote_cache_export(engine_t *e, const stage_t *target, kiln_error_t *err)
{
    json_t *cfg = kiln_image_config_new("amd64", "linux");
    json_t *map;
    kiln_descriptor_t *layers = NULL, cdesc = {0}, mdesc = {0};
    kiln_digest_t *diff_ids = NULL;
    size_t nl = 0;
    json_t *man = NULL;
    int ret = -1;
    const char *refs[1] = {e->req->cache_to};

    map = kiln_remote_cache_entries(e, target, e->req->cache_to_max, &layers, &diff_ids, &nl);
    for (size_t i = 0; i < nl; i++)
        kiln_image_config_add_diff_id(cfg, &diff_ids[i]);
    json_object_set_new(cfg, "kiln.cache.v1", map);
    if (e->rcache && json_object_size(e->rcache->reg_new) > 0) {
        /* the cache mounts: their manifests in the config, their packs as more blobs */
        json_t *m;
        const char *key;
        json_object_set(cfg, "kiln.mounts.v1", e->rcache->reg_new);
        json_object_set_new(cfg, KILN_REGCACHE_SAVED_KEY,
                            kiln_regcache_saved_of(e->rcache->reg_new, e->rcache->reg_saved));
        json_object_foreach(e->rcache->reg_new, key, m)
        {
            size_t k;
            json_t *b;
            json_array_foreach(json_object_get(m, "blobs"), k, b)
            {
                kiln_descriptor_t d = {0};
                bool dup = false;
                if (kiln_digest_parse(json_string_value(json_array_get(b, 0)), &d.digest, NULL) < 0)
                    continue;
                for (size_t i = 0; i < nl && !dup; i++)
                    dup = kiln_digest_equal(&layers[i].digest, &d.digest);
                if (dup)
                    continue;
                snprintf(d.media_type, sizeof(d.media_type), "%s", KILN_CM_PACK_MEDIA_TYPE);
                d.size = (uint64_t)json_integer_value(json_array_get(b, 1));
                layers = kiln_xrealloc(layers, (nl + 1) * sizeof(*layers));
                layers[nl++] = d;
            }
        }
    }
    if (kiln_image_store_put(e->store, cfg, KILN_MT_OCI_CONFIG, &cdesc, err) < 0)
        goto out;
    man = kiln_image_manifest_new(&cdesc, layers, nl, NULL);
    if (kiln_image_store_put(e->store, man, KILN_MT_OCI_MANIFEST, &mdesc, err) < 0)
        goto out;
    if (kiln_remote_cache_registry(e, err) < 0)
        goto out;
    {
        kiln_blob_source_t src = {.open = export_open, .ctx = e};
        if (kiln_registry_push(e->registry, &src, &mdesc, refs, 1, NULL, NULL, err) < 0)
            goto out;
    }
    kiln_engine_log(e, "exported %zu cache entries (%zu layers) to %s", json_object_size(map), nl,
                    e->req->cache_to);
    ret = 0;
out:
    for (size_t i = 0; i < nl; i++)
        kiln_descriptor_clear(&layers[i]);
    free(layers);
    free(diff_ids);
    kiln_descriptor_clear(&cdesc);
    kiln_descriptor_clear(&mdesc);
    json_decref(man);
    json_decref(cfg);
    if (ret < 0)
        kiln_error_prefix(err, "exporting the cache to %s", e->req->cache_to);
    return ret;
}
