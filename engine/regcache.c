/* kiln — the registry cache image's bound and its gc (see regcache.h). */
#include "engine/regcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/cachemanifest.h"
#include "oci/digest.h"
#include "oci/image.h"
#include "oci/reference.h"
#include "oci/registry.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Whether digest string ds is among the first n of seen. */
static bool seen_has(const char *const *seen, size_t n, const char *ds)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(seen[i], ds) == 0)
            return true;
    return false;
}

uint64_t kiln_regcache_mounts_bytes(const json_t *mounts)
{
    const char **seen = NULL;
    size_t n = 0;
    uint64_t total = 0;
    const char *key;
    json_t *m;

    json_object_foreach((json_t *)mounts, key, m)
    {
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(m, "blobs"), i, b)
        {
            const char *ds = json_string_value(json_array_get(b, 0));
            json_int_t sz = json_integer_value(json_array_get(b, 1));
            if (ds == NULL || sz <= 0 || seen_has(seen, n, ds))
                continue;
            seen = kiln_xrealloc(seen, (n + 1) * sizeof(*seen));
            seen[n++] = ds;
            total += (uint64_t)sz;
        }
    }
    free(seen);
    return total;
}

/* The least recently saved id of mounts (NULL when empty). */
static const char *oldest(const json_t *mounts, const json_t *saved)
{
    const char *best = NULL, *key;
    json_int_t best_t = 0;
    json_t *m;

    json_object_foreach((json_t *)mounts, key, m)
    {
        json_int_t t = json_integer_value(json_object_get(saved, key));
        if (best == NULL || t < best_t || (t == best_t && strcmp(key, best) < 0)) {
            best = key;
            best_t = t;
        }
    }
    return best;
}

size_t kiln_regcache_evict(json_t *mounts, json_t *saved, uint64_t max, uint64_t *bytes)
{
    uint64_t total = kiln_regcache_mounts_bytes(mounts);
    size_t n = 0;

    while (total > max && json_object_size(mounts) > 0) {
        _cleanup_free_ char *key = kiln_xstrdup(oldest(mounts, saved));
        json_object_del(mounts, key);
        if (saved)
            json_object_del(saved, key);
        n++;
        total = kiln_regcache_mounts_bytes(mounts);
    }
    if (bytes)
        *bytes = total;
    return n;
}

json_t *kiln_regcache_saved_of(const json_t *mounts, const json_t *saved)
{
    json_t *out = json_object(), *m;
    const char *key;

    json_object_foreach((json_t *)mounts, key, m)
    {
        json_t *t = json_object_get(saved, key);
        if (json_is_integer(t))
            json_object_set(out, key, t);
    }
    return out;
}

/* The position of layer digest ds in the manifest's layers, -1 when it is none of them. */
static long layer_of(const json_t *layers, const char *ds)
{
    size_t i;
    json_t *l;
    json_array_foreach((json_t *)layers, i, l)
    {
        const char *d = json_string_value(json_object_get(l, "digest"));
        if (d && strcmp(d, ds) == 0)
            return (long)i;
    }
    return -1;
}

/* A size of the document: an integer from 0 to max. */
static bool size_ok(const json_t *v, uint64_t max)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
           (uint64_t)json_integer_value(v) <= max;
}

static int check_layers(const char *what, const json_t *layers, kiln_error_t *err)
{
    size_t i;
    json_t *l;

    if (!json_is_array(layers))
        return kiln_error_set(err, 0, "%s: the manifest has no layers list", what);
    json_array_foreach((json_t *)layers, i, l)
    {
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        const char *ds = json_string_value(json_object_get(l, "digest"));
        bool pack = mt && strcmp(mt, KILN_CM_PACK_MEDIA_TYPE) == 0;
        kiln_digest_t d;
        if (ds == NULL || kiln_digest_parse(ds, &d, NULL) < 0)
            return kiln_error_set(err, 0, "%s: layers[%zu] has no valid digest", what, i);
        if (!size_ok(json_object_get(l, "size"), pack ? KILN_CM_PACK_MAX : KILN_REGCACHE_LAYER_MAX))
            return kiln_error_set(
                err, ERANGE,
                "%s: layers[%zu] (%s) declares size %s: a %s must be 0 to %llu "
                "bytes",
                what, i, ds,
                json_is_integer(json_object_get(l, "size")) ? "out of range" : "that is no number",
                pack ? "cache mount pack" : "layer",
                (unsigned long long)(pack ? KILN_CM_PACK_MAX : KILN_REGCACHE_LAYER_MAX));
        if (json_object_get(l, "urls") != NULL)
            return kiln_error_set(err, 0,
                                  "%s: layers[%zu] (%s) names urls: a cache image's blobs must be "
                                  "its own, in its repository",
                                  what, i, ds);
    }
    return 0;
}

int kiln_regcache_check(const char *what, const json_t *man, const json_t *cfg, kiln_error_t *err)
{
    const json_t *layers = json_object_get(man, "layers");
    json_t *mounts = json_object_get(cfg, KILN_REGCACHE_MOUNTS_KEY);
    json_t *entries = json_object_get(cfg, KILN_REGCACHE_ENTRIES_KEY);
    json_t *saved = json_object_get(cfg, KILN_REGCACHE_SAVED_KEY), *v;
    const char *key;

    if (json_object_get(man, "manifests") != NULL)
        return kiln_error_set(err, 0,
                              "%s: an image index, not a kiln cache image (a manifest whose config "
                              "carries kiln.cache.v1)",
                              what);
    if (check_layers(what, layers, err) < 0)
        return -1;
    if ((mounts && !json_is_object(mounts)) || (entries && !json_is_object(entries)) ||
        (saved && !json_is_object(saved)))
        return kiln_error_set(err, 0, "%s: the config's kiln.* members must be objects", what);
    json_object_foreach(mounts, key, v)
    {
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(v, "blobs"), i, b)
        {
            const char *ds = json_string_value(json_array_get(b, 0));
            long at = ds ? layer_of(layers, ds) : -1;
            if (ds == NULL || !size_ok(json_array_get(b, 1), KILN_CM_PACK_MAX))
                return kiln_error_set(err, 0,
                                      "%s: cache mount %s: pack %zu has no digest or a size "
                                      "outside 0 to %u bytes",
                                      what, key, i, KILN_CM_PACK_MAX);
            if (at < 0 ||
                json_integer_value(json_object_get(json_array_get(layers, (size_t)at), "size")) !=
                    json_integer_value(json_array_get(b, 1)))
                return kiln_error_set(err, 0,
                                      "%s: cache mount %s names pack %s, which is not one of the "
                                      "image's own layers (another repository's blob?)",
                                      what, key, ds);
        }
    }
    json_object_foreach(entries, key, v)
    {
        json_t *layer = json_object_get(v, "layer");
        const char *ds = json_string_value(json_object_get(layer, "digest"));
        if (layer == NULL)
            continue; /* a step that made no layer */
        if (ds == NULL || layer_of(layers, ds) < 0)
            return kiln_error_set(err, 0,
                                  "%s: cache entry %.80s names layer %s, which is not one of the "
                                  "image's own layers (another repository's blob?)",
                                  what, key, ds ? ds : "(none)");
    }
    json_object_foreach(saved, key, v)
    {
        if (!size_ok(v, INT64_MAX))
            return kiln_error_set(err, 0, "%s: %s of %s is not a time", what,
                                  KILN_REGCACHE_SAVED_KEY, key);
    }
    return 0;
}

/* ---- gc */

/* Push's blob source: the two documents made here, from memory; any other blob must be in
 * the registry already (a push asks only for what the destination lacks). */
typedef struct memsrc {
    kiln_digest_t d[2];
    const char *body[2];
    size_t len[2];
    const char *ref;
} memsrc_t;

static int memsrc_open(void *ctx, const kiln_digest_t *d, int *fd, uint64_t *size,
                       kiln_error_t *err)
{
    memsrc_t *m = ctx;
    char ds[KILN_DIGEST_STR_MAX];
    for (int i = 0; i < 2; i++) {
        if (!kiln_digest_equal(&m->d[i], d))
            continue;
        *fd = memfd_create("kiln-regcache", MFD_CLOEXEC);
        if (*fd < 0 || kiln_fs_write_all(*fd, m->body[i], m->len[i], err) < 0 ||
            lseek(*fd, 0, SEEK_SET) < 0) {
            if (*fd >= 0)
                close(*fd);
            return kiln_error_set(err, errno, "a memory file for the rewritten cache image");
        }
        *size = m->len[i];
        return 0;
    }
    return kiln_error_set(err, 0,
                          "blob %s of %s is no longer in the registry (its own garbage "
                          "collection removed it?): the cache image cannot be rewritten",
                          kiln_digest_str(d, ds), m->ref);
}

/* The image rewritten without the evicted ids (mounts and saved as they are now): layers
 * the cache entries name and packs a kept id names, in their order; *dropped counts the
 * packs left out. */
static json_t *rewrite_manifest(const json_t *man, const json_t *mounts, const json_t *entries,
                                size_t *dropped)
{
    json_t *out = json_deep_copy(man), *layers = json_array(), *l;
    size_t i;

    *dropped = 0;
    json_array_foreach(json_object_get(man, "layers"), i, l)
    {
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        const char *ds = json_string_value(json_object_get(l, "digest"));
        bool keep = true;
        if (mt && strcmp(mt, KILN_CM_PACK_MEDIA_TYPE) == 0) {
            const char *key;
            json_t *m;
            keep = false;
            json_object_foreach((json_t *)mounts, key, m)
            {
                size_t k;
                json_t *b;
                json_array_foreach(json_object_get(m, "blobs"), k, b)
                {
                    if (strcmp(json_string_value(json_array_get(b, 0)), ds) == 0)
                        keep = true;
                }
            }
            (void)entries; /* cache entries name layers, never packs */
        }
        if (keep)
            json_array_append(layers, l);
        else
            (*dropped)++;
    }
    json_object_set_new(out, "layers", layers);
    return out;
}

int kiln_regcache_gc(kiln_registry_t *r, const char *ref, uint64_t max, int dry_run,
                     kiln_regcache_gc_stats_t *st, kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL, *cbody = NULL, *nman = NULL, *ncfg = NULL, *again = NULL;
    char mt[256], mt2[256];
    kiln_digest_t md, md2, cd;
    size_t len = 0, clen = 0, nlen = 0, nclen = 0;
    json_t *man = NULL, *cfg = NULL, *nm = NULL, *mounts, *saved;
    kiln_descriptor_t top = {0};
    int ret = -1;

    memset(st, 0, sizeof(*st));
    st->old_deleted = -1;
    if (max == 0)
        max = KILN_REGCACHE_DEFAULT_MAX;
    if (kiln_registry_get_manifest(r, ref, &body, &len, mt, &md, err) < 0 ||
        kiln_image_load_json(body, len, KILN_IMAGE_MANIFEST_MAX, ref, &man, err) < 0)
        goto out;
    if (json_object_get(man, "manifests") == NULL) {
        const json_t *c = json_object_get(man, "config");
        const char *cds = json_string_value(json_object_get(c, "digest"));
        if (cds == NULL || kiln_digest_parse(cds, &cd, err) < 0 ||
            !size_ok(json_object_get(c, "size"), KILN_IMAGE_CONFIG_MAX)) {
            kiln_error_set(err, 0,
                           "%s: the manifest's config has no digest or a size "
                           "outside 0 to %u bytes",
                           ref, KILN_IMAGE_CONFIG_MAX);
            goto out;
        }
        if (kiln_registry_get_blob(r, ref, &cd, KILN_IMAGE_CONFIG_MAX, &cbody, &clen, err) < 0 ||
            kiln_image_load_json(cbody, clen, KILN_IMAGE_CONFIG_MAX, ref, &cfg, err) < 0)
            goto out;
    }
    if (kiln_regcache_check(ref, man, cfg, err) < 0)
        goto out;
    if (json_object_get(cfg, KILN_REGCACHE_ENTRIES_KEY) == NULL) {
        kiln_error_set(err, 0, "%s: not a kiln cache image (its config has no %s)", ref,
                       KILN_REGCACHE_ENTRIES_KEY);
        goto out;
    }
    mounts = json_object_get(cfg, KILN_REGCACHE_MOUNTS_KEY);
    if (mounts == NULL)
        json_object_set_new(cfg, KILN_REGCACHE_MOUNTS_KEY, mounts = json_object());
    saved = json_object_get(cfg, KILN_REGCACHE_SAVED_KEY);
    if (saved == NULL)
        json_object_set_new(cfg, KILN_REGCACHE_SAVED_KEY, saved = json_object());
    st->ids = json_object_size(mounts);
    st->before = kiln_regcache_mounts_bytes(mounts);
    st->evicted = kiln_regcache_evict(mounts, saved, max, &st->after);
    nm = rewrite_manifest(man, mounts, json_object_get(cfg, KILN_REGCACHE_ENTRIES_KEY),
                          &st->packs_dropped);
    if ((st->evicted == 0 && st->packs_dropped == 0) || dry_run) {
        ret = 0;
        goto out;
    }
    {
        /* the config and manifest anew; the old documents' other members kept */
        json_t *c = json_object_get(nm, "config");
        ncfg = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
        nclen = strlen(ncfg);
        kiln_digest_bytes(ncfg, nclen, &cd);
        {
            char ds[KILN_DIGEST_STR_MAX];
            json_object_set_new(c, "digest", json_string(kiln_digest_str(&cd, ds)));
        }
        json_object_set_new(c, "size", json_integer((json_int_t)nclen));
        nman = json_dumps(nm, JSON_COMPACT | JSON_SORT_KEYS);
        nlen = strlen(nman);
    }
    snprintf(top.media_type, sizeof(top.media_type), "%s", mt);
    kiln_digest_bytes(nman, nlen, &top.digest);
    top.size = nlen;
    {
        /* the new documents pushed by digest first (untagged: no reader of the tag sees them),
         * so that only two requests remain between the check below and the tag's move */
        memsrc_t ms = {
            .d = {top.digest, cd}, .body = {nman, ncfg}, .len = {nlen, nclen}, .ref = ref};
        kiln_blob_source_t src = {.open = memsrc_open, .ctx = &ms};
        kiln_reference_t pr = {0};
        char ds[KILN_DIGEST_STR_MAX];
        if (kiln_reference_parse(ref, &pr, err) < 0)
            goto out;
        _cleanup_free_ char *by_digest = kiln_xasprintf("%s/%s@%s", pr.registry, pr.repository,
                                                        kiln_digest_str(&top.digest, ds));
        kiln_reference_free(&pr);
        const char *refs[1] = {by_digest};
        if (kiln_registry_push(r, &src, &top, refs, 1, NULL, NULL, err) < 0)
            goto out;
    }
    /* a save since the read would be lost: nothing written then. The distribution API has no
     * conditional manifest PUT (no If-Match on PUT /v2/NAME/manifests/TAG: a tag's PUT always
     * replaces it), so a save whose PUT lands between this GET and the PUT below is replaced
     * by the collected image: that save's new ids are lost (the next build saves them
     * again); the image left is always one complete document (docs/remote-cache.md) */
    if (kiln_registry_get_manifest(r, ref, &again, &len, mt2, &md2, err) < 0)
        goto out;
    if (!kiln_digest_equal(&md, &md2)) {
        kiln_error_set(err, 0,
                       "%s changed while it was collected (a build saved to it): nothing "
                       "written; run kiln cache gc again",
                       ref);
        goto out;
    }
    if (kiln_registry_put_manifest(r, ref, nman, nlen, mt, err) < 0)
        goto out;
    st->rewritten = 1;
    st->old_deleted = kiln_registry_delete_manifest(r, ref, &md, err);
    if (st->old_deleted < 0)
        goto out;
    ret = 0;
out:
    json_decref(man);
    json_decref(cfg);
    json_decref(nm);
    kiln_descriptor_clear(&top);
    if (ret < 0 && err && strstr(err->msg, ref) == NULL)
        kiln_error_prefix(err, "kiln cache gc %s", ref);
    return ret;
}
