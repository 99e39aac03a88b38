/* kiln — the layer cache in S3 (`--cache-to/--cache-from type=s3`): the step cache entries
 * a build used or made (the target's, every stage's with mode=max) and their layers.
 *
 *   <base>/layers.json  {"kiln.cache.v1": {<key hex>: entry, ...}, "layers": [descriptor, ...]}
 *   <base>/blobs/sha256/<hex>  each layer, uploaded once (the previous index's layers and a
 *                              HEAD tell what is there already)
 *
 * Import records the layers the namespace does not have yet as lazy blobs of the cache
 * (oci/store_lazy: a namespace's records are its own, fetched from its own prefix, in ranges
 * with the digest checked, before their bytes are used), then merges the entries as a
 * registry cache import does (engine/remote_cache). A source that cannot be read is a
 * warning. The index is written after the layers, in one PutObject, and not at all when
 * unchanged. */
#include "engine/remote_layers.h"

#include "engine/cache.h"
#include "engine/remote_cache.h"
#include "engine/remote_lazy.h"
#include "engine/remote_mounts.h"
#include "oci/imagesize.h"
#include "oci/store_lazy.h"
#include "utils/workers.h"

#define INDEX_REL "layers.json"
#define INDEX_MAX (64u << 20)
#define LAYER_MAX (64ull << 30)
#define THREADS 4

static void *http_new(void)
{
    return kiln_http_new();
}

static void http_free(void *h)
{
    kiln_http_free(h);
}

typedef struct layers_job {
    engine_t *e;
    kiln_rstore_t *rs;
    kiln_descriptor_t *d;
    size_t n;
    uint64_t bytes;
    size_t n_lazy; /* layers recorded as lazy (not fetched) */
} layers_job_t;

/* Records the layers of index that the namespace lacks (each checked a digest and a size) as
 * lazy blobs of source lazy, their uncompressed sizes from usize (digest -> bytes, as the
 * export writes it). */
static int missing_layers(engine_t *e, json_t *list, json_t *usize, const char *lazy,
                          layers_job_t *j, kiln_error_t *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        kiln_descriptor_t d = {0};
        char ds[KILN_DIGEST_STR_MAX];
        json_t *u;
        int r;
        if (kiln_descriptor_from_json(v, "layer", &d, err) < 0)
            return -1;
        if (d.size <= 0 || (uint64_t)d.size > LAYER_MAX) {
            kiln_descriptor_clear(&d);
            return kiln_error_set(err, 0, "layer %zu: size %lld", i, (long long)d.size);
        }
        if (kiln_store_has(e->store, &d.digest, NULL) && kiln_cache_ns_knows(e, &d.digest)) {
            kiln_descriptor_clear(&d);
            continue;
        }
        /* named, fetched when something needs its bytes */
        u = json_object_get(usize, kiln_digest_str(&d.digest, ds));
        r = kiln_store_lazy_note(
            e->store, &d.digest, (uint64_t)d.size,
            json_is_integer(u) && json_integer_value(u) > 0 ? (uint64_t)json_integer_value(u) : 0,
            lazy, NULL, err);
        kiln_descriptor_clear(&d);
        if (r < 0)
            return -1;
        j->n_lazy++;
    }
    return 0;
}

/* Imports the index of rs: 0 (also when there is none), -1 with err. */
static int import_one(engine_t *e, kiln_rstore_t *rs, kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    kiln_http_t *http = kiln_http_new();
    layers_job_t j = {.e = e, .rs = rs};
    _cleanup_free_ char *lazy = NULL;
    json_t *idx = NULL;
    size_t len = 0, n = 0;
    double t0 = kiln_engine_now();
    int r = kiln_rstore_get(rs, http, INDEX_REL, INDEX_MAX, &body, &len, err), ret = -1;
    kiln_http_free(http);
    if (r <= 0)
        return r;
    idx = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(json_object_get(idx, "kiln.cache.v1")) ||
        !json_is_array(json_object_get(idx, "layers"))) {
        kiln_error_set(err, 0, "%s/%s is not a kiln layer cache index", kiln_rstore_name(rs),
                       INDEX_REL);
        goto out;
    }
    lazy = kiln_remote_lazy_s3_source(rs);
    if (missing_layers(e, json_object_get(idx, "layers"), json_object_get(idx, "usize"), lazy, &j,
                       err) < 0) {
        kiln_error_prefix(err, "%s/%s", kiln_rstore_name(rs), INDEX_REL);
        goto out;
    }
    if (kiln_remote_cache_merge(e, json_object_get(idx, "kiln.cache.v1"), &n, err) < 0)
        goto out;
    kiln_engine_log(e,
                    "imported %zu cache entries from %s (%zu layers named to fetch when needed, "
                    "in %.2fs)",
                    n, kiln_rstore_name(rs), j.n_lazy, kiln_engine_now() - t0);
    ret = 0;
out:
    json_decref(idx);
    return ret;
}

int kiln_remote_layers_import(engine_t *e, kiln_error_t *err)
{
    kiln_rcache_t *rc = e->rcache;
    (void)err;
    for (size_t i = 0; rc && i < rc->n_from; i++) {
        kiln_error_t ierr = {0};
        if (import_one(e, rc->from[i], &ierr) < 0)
            kiln_engine_log(e, "WARNING: layer cache not imported: %s", ierr.msg);
    }
    return 0;
}

static int upload_layer(void *ud, void *http, size_t i, kiln_error_t *err)
{
    layers_job_t *j = ud;
    _cleanup_close_ int fd = -1;
    uint64_t size = 0;
    int r = kiln_rstore_has_blob(j->rs, http, &j->d[i].digest, err);
    if (r != 0)
        return r < 0 ? -1 : 0; /* another writer's upload, or an error */
    if (kiln_store_open_blob(j->e->store, &j->d[i].digest, &fd, &size, err) < 0)
        return -1;
    return kiln_rstore_put_blob(j->rs, http, &j->d[i].digest, NULL, fd, size, err);
}

/* The digests of the layers an index lists ("sha256:..." strings), as one JSON object. */
static json_t *listed(const char *body, size_t len)
{
    json_t *idx = json_loadb(body, len, 0, NULL), *out = json_object(), *v;
    size_t i;
    json_array_foreach(json_object_get(idx, "layers"), i, v)
    {
        const char *d = json_string_value(json_object_get(v, "digest"));
        if (d)
            json_object_set_new(out, d, json_true());
    }
    json_decref(idx);
    return out;
}

int kiln_remote_layers_export(engine_t *e, const stage_t *target, kiln_error_t *err)
{
    kiln_rcache_t *rc = e->rcache;
    _cleanup_free_ char *old = NULL;
    _cleanup_free_ char *text = NULL;
    kiln_descriptor_t *layers = NULL;
    kiln_digest_t *diff_ids = NULL;
    kiln_http_t *http;
    layers_job_t j = {.e = e};
    json_t *map, *idx, *list, *have = NULL;
    size_t nl = 0, old_len = 0;
    double t0 = kiln_engine_now();
    int r, ret = -1;
    if (rc == NULL || rc->to == NULL)
        return 0;
    j.rs = rc->to;
    http = kiln_http_new();
    map = kiln_remote_cache_entries(e, target, rc->to_mode_max, &layers, &diff_ids, &nl);
    list = json_array();
    for (size_t i = 0; i < nl; i++)
        json_array_append_new(list, kiln_descriptor_to_json(&layers[i]));
    /* each layer's uncompressed size when known: an import that leaves a layer lazy still
     * tells the image's size without fetching it */
    {
        json_t *us = json_object();
        for (size_t i = 0; i < nl; i++) {
            char ds[KILN_DIGEST_STR_MAX];
            uint64_t u = kiln_image_size_known(e->store, &layers[i].digest);
            if (u > 0)
                json_object_set_new(us, kiln_digest_str(&layers[i].digest, ds),
                                    json_integer((json_int_t)u));
        }
        idx = json_pack("{sososo}", "kiln.cache.v1", map, "layers", list, "usize", us);
    }
    text = json_dumps(idx, JSON_COMPACT | JSON_SORT_KEYS);
    r = kiln_rstore_get(rc->to, http, INDEX_REL, INDEX_MAX, &old, &old_len, err);
    if (r < 0)
        goto out;
    if (r > 0 && old_len == strlen(text) && memcmp(old, text, old_len) == 0) {
        kiln_engine_log(e, "layer cache unchanged in %s (%zu entries)", kiln_rstore_name(rc->to),
                        json_object_size(map));
        ret = 0;
        goto out;
    }
    have = r > 0 ? listed(old, old_len) : json_object();
    for (size_t i = 0; i < nl; i++) {
        char ds[KILN_DIGEST_STR_MAX];
        if (json_object_get(have, kiln_digest_str(&layers[i].digest, ds)))
            continue; /* the index there names it: it is there */
        j.d = kiln_xrealloc(j.d, (j.n + 1) * sizeof(*j.d));
        j.d[j.n++] = layers[i];
        j.bytes += (uint64_t)layers[i].size;
    }
    if (kiln_workers_run(j.n, THREADS, upload_layer, http_new, http_free, &j, err) < 0 ||
        kiln_rstore_put(rc->to, http, INDEX_REL, text, strlen(text), err) < 0)
        goto out;
    kiln_engine_log(e, "exported %zu cache entries (%zu layers, %zu new, %.1f MB) to %s in %.2fs",
                    json_object_size(map), nl, j.n, (double)j.bytes / 1e6, kiln_rstore_name(rc->to),
                    kiln_engine_now() - t0);
    ret = 0;
out:
    for (size_t i = 0; i < nl; i++)
        kiln_descriptor_clear(&layers[i]);
    free(layers);
    free(diff_ids);
    free(j.d); /* its descriptors are layers' */
    json_decref(have);
    json_decref(idx);
    kiln_http_free(http);
    if (ret < 0)
        kiln_error_prefix(err, "exporting the layer cache to %s", kiln_rstore_name(rc->to));
    return ret;
}
