/* kiln — garbage collection of a remote build cache in S3 (see remote_gc.h).
 *
 * One collection: list <base>/ (every page), read every manifest listed (mounts/ID.json and
 * layers.json) and the marks of the previous collections (gc.json: blob hex -> the time a
 * collection first found it unnamed), then for each listed blob no manifest names:
 * younger than the grace period: kept; marked at least the grace period ago: deleted; else
 * marked now. The marks of blobs named again or gone are dropped; gc.json is written before
 * any delete. */
#include "engine/remote_gc.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cachemanifest.h"
#include "utils/aws/s3_list.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define MARKS_REL "gc.json"
#define MARKS_MAX (64u << 20)
#define INDEX_MAX (64u << 20)

typedef struct gc_blob {
    char hex[65];
    uint64_t size;
    time_t mtime;
} gc_blob_t;

typedef struct gc_list {
    size_t base_len; /* strlen(base) + 1 for the '/', 0 when base is "" */
    gc_blob_t *blobs;
    size_t nb;
    char **manifests; /* rel keys: mounts/ID.json, layers.json */
    size_t nm;
} gc_list_t;

static bool is_hex64(const char *s)
{
    size_t n = 0;
    while (s[n] && isxdigit((unsigned char)s[n]) && !isupper((unsigned char)s[n]))
        n++;
    return n == 64 && s[n] == '\0';
}

/* Sorts one listed key into blobs and manifests; anything else is left alone. */
static int on_listed(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err)
{
    gc_list_t *l = ud;
    const char *rel = o->key + l->base_len;
    (void)err;
    if (strlen(o->key) < l->base_len)
        return 0;
    if (strncmp(rel, "blobs/sha256/", 13) == 0 && is_hex64(rel + 13)) {
        l->blobs = kiln_xrealloc(l->blobs, (l->nb + 1) * sizeof(*l->blobs));
        memcpy(l->blobs[l->nb].hex, rel + 13, 65);
        l->blobs[l->nb].size = o->size;
        l->blobs[l->nb].mtime = o->last_modified;
        l->nb++;
    } else if (strcmp(rel, "layers.json") == 0 ||
               (strncmp(rel, "mounts/", 7) == 0 && strchr(rel + 7, '/') == NULL &&
                strlen(rel) > 12 && strcmp(rel + strlen(rel) - 5, ".json") == 0)) {
        l->manifests = kiln_xrealloc(l->manifests, (l->nm + 1) * sizeof(char *));
        l->manifests[l->nm++] = kiln_xstrdup(rel);
    }
    return 0;
}

/* Adds "sha256:<hex>" s to the named set (other strings ignored). */
static void name_digest(json_t *named, const char *s)
{
    if (s && strncmp(s, "sha256:", 7) == 0 && is_hex64(s + 7))
        json_object_set_new(named, s + 7, json_true());
}

/* The blobs a manifest (cache mount: "blobs": [[digest, size], ...]) or a layer index
 * ("layers": [{"digest": ...}, ...]) names, into named. -1 when it is neither. */
static int names_of(const char *body, size_t len, json_t *named)
{
    json_t *doc = json_loadb(body, len, 0, NULL), *v;
    json_t *blobs = json_object_get(doc, "blobs"), *layers = json_object_get(doc, "layers");
    size_t i;
    if (!json_is_array(blobs) && !json_is_array(layers)) {
        json_decref(doc);
        return -1;
    }
    json_array_foreach(blobs, i, v) name_digest(named, json_string_value(json_array_get(v, 0)));
    json_array_foreach(layers, i, v)
        name_digest(named, json_string_value(json_object_get(v, "digest")));
    json_decref(doc);
    return 0;
}

static void list_clear(gc_list_t *l)
{
    free(l->blobs);
    for (size_t i = 0; i < l->nm; i++)
        free(l->manifests[i]);
    free(l->manifests);
}

/* Reads the marks (gc.json); a missing or unreadable file is no marks (it can only delay a
 * deletion). */
static json_t *read_marks(kiln_rstore_t *rs, kiln_http_t *http)
{
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    json_t *doc, *marks;
    if (kiln_rstore_get(rs, http, MARKS_REL, MARKS_MAX, &body, &len, NULL) <= 0)
        return json_object();
    doc = json_loadb(body, len, 0, NULL);
    marks = json_object_get(doc, "kiln.gc.v1");
    marks = json_is_object(marks) ? json_incref(marks) : json_object();
    json_decref(doc);
    return marks;
}

int kiln_rcache_gc(const kiln_rcache_spec_t *spec, const kiln_rcache_gc_opts_t *o,
                   kiln_rcache_gc_stats_t *st, kiln_error_t *err)
{
    kiln_rstore_t *rs = NULL;
    kiln_http_t *http = NULL;
    gc_list_t l = {0};
    json_t *named = json_object(), *marks = NULL, *keep = json_object();
    _cleanup_free_ char *prefix = NULL;
    time_t now = o->now ? o->now : time(NULL);
    gc_blob_t **doomed = NULL;
    size_t nd = 0;
    int ret = -1;

    memset(st, 0, sizeof(*st));
    if (strcmp(spec->type, "s3") != 0) {
        kiln_error_set(err, 0,
                       "only a type=s3 cache is collected by kiln (a registry collects "
                       "the blobs of its cache images itself)");
        goto out;
    }
    if (kiln_rstore_open(spec, o->ns, &rs, err) < 0)
        goto out;
    http = kiln_http_new();
    prefix =
        kiln_rstore_base(rs)[0] ? kiln_xasprintf("%s/", kiln_rstore_base(rs)) : kiln_xstrdup("");
    l.base_len = strlen(prefix);
    if (kiln_s3_list(kiln_rstore_target(rs), http, prefix, on_listed, &l, err) < 0)
        goto out;
    st->blobs = l.nb;
    /* every manifest listed, read after the listing: a blob uploaded later is not listed */
    for (size_t i = 0; i < l.nm; i++) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        int r = kiln_rstore_get(rs, http, l.manifests[i],
                                strcmp(l.manifests[i], "layers.json") == 0 ? INDEX_MAX
                                                                           : KILN_CM_MANIFEST_MAX,
                                &body, &len, err);
        if (r < 0)
            goto out;
        if (r == 0)
            continue; /* deleted since it was listed */
        if (names_of(body, len, named) < 0) {
            kiln_error_set(err, 0,
                           "%s/%s is not a kiln cache manifest: nothing collected (what it "
                           "names is unknown)",
                           kiln_rstore_name(rs), l.manifests[i]);
            goto out;
        }
        st->manifests++;
    }
    marks = read_marks(rs, http);
    for (size_t i = 0; i < l.nb; i++) {
        gc_blob_t *b = &l.blobs[i];
        json_t *m;
        if (json_object_get(named, b->hex)) {
            st->referenced++;
            continue;
        }
        if (b->mtime == 0 || b->mtime > now - o->grace) {
            st->young++;
            continue;
        }
        m = json_object_get(marks, b->hex);
        if (json_is_integer(m) && json_integer_value(m) <= (json_int_t)(now - o->grace)) {
            doomed = kiln_xrealloc(doomed, (nd + 1) * sizeof(*doomed));
            doomed[nd++] = b;
            continue;
        }
        json_object_set_new(
            keep, b->hex,
            json_integer(json_is_integer(m) ? json_integer_value(m) : (json_int_t)now));
        st->marked++;
    }
    if (o->dry_run) {
        st->deleted = nd;
        for (size_t i = 0; i < nd; i++)
            st->deleted_bytes += doomed[i]->size;
        ret = 0;
        goto out;
    }
    {
        json_t *doc = json_pack("{sO}", "kiln.gc.v1", keep);
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        if ((json_object_size(keep) > 0 || json_object_size(marks) > 0) &&
            kiln_rstore_put(rs, http, MARKS_REL, text, strlen(text), err) < 0)
            goto out;
    }
    for (size_t i = 0; i < nd; i++) {
        _cleanup_free_ char *key = kiln_xasprintf("%sblobs/sha256/%s", prefix, doomed[i]->hex);
        if (kiln_s3_delete_object(kiln_rstore_target(rs), http, key, err) < 0)
            goto out;
        st->deleted++;
        st->deleted_bytes += doomed[i]->size;
    }
    ret = 0;
out:
    if (ret < 0 && rs)
        kiln_error_prefix(err, "collecting %s", kiln_rstore_name(rs));
    free(doomed);
    list_clear(&l);
    json_decref(named);
    json_decref(marks);
    json_decref(keep);
    kiln_http_free(http);
    kiln_rstore_free(rs);
    return ret;
}
