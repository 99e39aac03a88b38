/* kiln — SOCI index manifest v2: an image converted into a SOCI-enabled image in the
 * store, and such an image read back and checked (see soci.h). */
#include "oci/soci.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/ztoc.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define KILN_SOCI_THREADS 2

static int is_gzip_layer(const char *mt)
{
    return strcmp(mt, KILN_MT_OCI_LAYER_GZIP) == 0 || strcmp(mt, KILN_MT_DOCKER_LAYER_GZIP) == 0;
}

/* Reads and parses a manifest of the store. */
static int read_manifest(kiln_store_t *s, const kiln_digest_t *d, kiln_manifest_t **m,
                         kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    size_t len;
    char ds[KILN_DIGEST_STR_MAX];

    if (kiln_store_read_blob(s, d, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0 ||
        kiln_image_parse_manifest(body, len, m, err) < 0)
        return kiln_error_prefix(err, "manifest %s", kiln_digest_str(d, ds));
    return 0;
}

/* The platform of an image from its config: {"architecture","os"[,"variant"]}. */
static json_t *config_platform(kiln_store_t *s, const kiln_descriptor_t *cfg, kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    _cleanup_json_ json_t *c = NULL;
    size_t len;
    json_t *p;
    const char *v;

    if (kiln_store_read_blob(s, &cfg->digest, KILN_IMAGE_CONFIG_MAX, &body, &len, err) < 0 ||
        kiln_image_parse_config(body, len, &c, err) < 0)
        return NULL;
    p = json_pack("{s:s,s:s}", "architecture", kiln_json_get_string(c, "architecture"), "os",
                  kiln_json_get_string(c, "os"));
    if ((v = kiln_json_get_string(c, "variant")) != NULL)
        json_object_set_new(p, "variant", json_string(v));
    return p;
}

/* Builds, encodes and stores the zTOC of one layer; fills its descriptor. */
static int ztoc_layer(kiln_store_t *s, const kiln_descriptor_t *layer, int64_t span,
                      const char *tool, json_t **desc, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ uint8_t *buf = NULL;
    kiln_ztoc_t *z = NULL;
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX], ls[KILN_DIGEST_STR_MAX];
    uint64_t size;
    size_t len;

    kiln_digest_str(&layer->digest, ls);
    if (kiln_store_open_blob(s, &layer->digest, &fd, &size, err) < 0)
        return -1;
    if (kiln_ztoc_build(fd, size, span, tool, &z, err) < 0)
        return kiln_error_prefix(err, "SOCI zTOC of layer %s", ls);
    if (kiln_ztoc_encode(z, &buf, &len, err) < 0) {
        kiln_ztoc_free(z);
        return -1;
    }
    kiln_ztoc_free(z);
    if (kiln_store_put_bytes(s, buf, len, &d, err) < 0)
        return -1;
    *desc = json_pack("{s:s,s:s,s:I,s:{s:s,s:s}}", "mediaType", KILN_SOCI_ZTOC_MEDIA_TYPE, "digest",
                      kiln_digest_str(&d, ds), "size", (json_int_t)len, "annotations",
                      KILN_SOCI_ANN_LAYER_DIGEST, ls, KILN_SOCI_ANN_LAYER_MEDIA_TYPE,
                      layer->media_type);
    return 0;
}

/* The zTOCs of several layers built at once (each is one inflate pass, CPU-bound). */
typedef struct ztoc_pool {
    pthread_mutex_t lock;
    kiln_store_t *s;
    const kiln_descriptor_t *const *layers; /* the layers to index */
    json_t **descs;                         /* their zTOC descriptors, in layer order */
    size_t n, next;
    int64_t span;
    const char *tool;
    int failed;
    kiln_error_t err; /* the first failure */
} ztoc_pool_t;

static void *ztoc_worker(void *ud)
{
    ztoc_pool_t *p = ud;
    for (;;) {
        kiln_error_t e = {0};
        size_t i;
        pthread_mutex_lock(&p->lock);
        i = p->failed ? p->n : p->next++;
        pthread_mutex_unlock(&p->lock);
        if (i >= p->n)
            return NULL;
        if (ztoc_layer(p->s, p->layers[i], p->span, p->tool, &p->descs[i], &e) < 0) {
            pthread_mutex_lock(&p->lock);
            if (!p->failed) {
                p->failed = 1;
                p->err = e;
            }
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* Builds the zTOCs of p->layers with up to `threads` threads (the caller's included). */
static int ztoc_all(ztoc_pool_t *p, unsigned threads, kiln_error_t *err)
{
    pthread_t th[8];
    unsigned started = 0;

    pthread_mutex_init(&p->lock, NULL);
    for (unsigned i = 1; i < threads && i < p->n && started < 8; i++)
        if (pthread_create(&th[started], NULL, ztoc_worker, p) == 0)
            started++;
    ztoc_worker(p);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p->lock);
    if (p->failed) {
        if (err)
            *err = p->err;
        return -1;
    }
    return 0;
}

/* The descriptor JSON of a stored document plus platform / artifactType / annotations. */
static json_t *index_entry(const kiln_descriptor_t *d, const json_t *platform,
                           const char *artifact_type, const char *ann_key, const char *ann_value)
{
    json_t *j = kiln_descriptor_to_json(d);
    json_object_set(j, "platform", (json_t *)platform);
    if (artifact_type)
        json_object_set_new(j, "artifactType", json_string(artifact_type));
    json_object_set_new(j, "annotations", json_pack("{s:s}", ann_key, ann_value));
    return j;
}

static const char *artifact_type(const kiln_index_t *ix, size_t i);

/* Converts one image manifest: its zTOCs, the SOCI index, the annotated manifest; appends
 * to entries the manifest's index entry (and the SOCI index's), or, without any zTOC, the
 * manifest's own entry unchanged. platform: the entry's (NULL: from the config). */
static int convert_manifest(kiln_store_t *s, const kiln_descriptor_t *manifest,
                            const json_t *platform_in, const kiln_soci_opts_t *o, json_t *entries,
                            kiln_soci_result_t *r, kiln_error_t *err)
{
    kiln_manifest_t *m = NULL;
    _cleanup_json_ json_t *ztocs = json_array(), *platform = NULL, *soci = NULL, *img = NULL;
    int64_t span = o && o->span ? o->span : KILN_ZTOC_DEFAULT_SPAN;
    int64_t min_layer = o && o->min_layer >= 0 ? o->min_layer : KILN_SOCI_DEFAULT_MIN_LAYER;
    const char *tool = o && o->build_tool ? o->build_tool : "kiln";
    _cleanup_free_ const kiln_descriptor_t **todo = NULL;
    ztoc_pool_t pool = {0};
    kiln_descriptor_t soci_d = {0}, img_d = {0};
    kiln_digest_t empty;
    char ds[KILN_DIGEST_STR_MAX], ls[KILN_DIGEST_STR_MAX];
    int rc = -1;

    if (span < KILN_ZTOC_MIN_SPAN)
        return kiln_error_set(err, 0, "SOCI span size %lld is below %d bytes", (long long)span,
                              KILN_ZTOC_MIN_SPAN);
    if (read_manifest(s, &manifest->digest, &m, err) < 0)
        return -1;
    todo = kiln_xzalloc((m->n_layers + 1) * sizeof(*todo));
    pool.descs = kiln_xzalloc((m->n_layers + 1) * sizeof(json_t *));
    for (size_t i = 0; i < m->n_layers; i++) {
        const kiln_descriptor_t *l = &m->layers[i];
        if (l->size < (uint64_t)min_layer) {
            r->skipped++;
            continue;
        }
        kiln_digest_str(&l->digest, ls);
        if (!is_gzip_layer(l->media_type)) {
            int zstd = strstr(l->media_type, "zstd") != NULL;
            kiln_error_set(err, 0,
                           "--soci: layer %zu (%s, %llu bytes) is %s: SOCI indexes gzip layers "
                           "only; build with --compression gzip for lazy loading on Fargate%s",
                           i, ls, (unsigned long long)l->size, zstd ? "zstd" : l->media_type,
                           zstd ? " (or keep zstd without --soci: smaller, fully pulled)" : "");
            goto out;
        }
        todo[pool.n++] = l;
    }
    pool.s = s;
    pool.layers = todo;
    pool.span = span;
    pool.tool = tool;
    /* two at a time: the machines kiln runs builds on have few cores, and each build is
     * one inflate pass */
    if (ztoc_all(&pool, KILN_SOCI_THREADS, err) < 0)
        goto out;
    for (size_t i = 0; i < pool.n; i++) {
        json_array_append_new(ztocs, pool.descs[i]);
        pool.descs[i] = NULL;
    }
    if (pool.n == 0) { /* soci writes no index then either: the image stays as it is */
        json_array_append_new(entries, kiln_descriptor_to_json(manifest));
        rc = 0;
        goto out;
    }
    r->ztocs += pool.n;
    platform = platform_in ? json_deep_copy(platform_in) : config_platform(s, &m->config, err);
    if (platform == NULL)
        goto out;
    if (kiln_store_put_bytes(s, "{}", 2, &empty, err) < 0)
        goto out;
    soci = json_pack("{s:i,s:s,s:{s:s,s:s,s:i},s:O,s:{s:s}}", "schemaVersion", 2, "mediaType",
                     KILN_MT_OCI_MANIFEST, "config", "mediaType", KILN_SOCI_INDEX_V2, "digest",
                     kiln_digest_str(&empty, ds), "size", 2, "layers", ztocs, "annotations",
                     KILN_SOCI_ANN_BUILD_TOOL, tool);
    if (kiln_image_store_put(s, soci, KILN_MT_OCI_MANIFEST, &soci_d, err) < 0)
        goto out;
    /* the image manifest as an OCI manifest (registries reject Docker and OCI documents
     * mixed in one index), annotated with the SOCI index */
    img = json_deep_copy(m->json);
    json_object_set_new(img, "mediaType", json_string(KILN_MT_OCI_MANIFEST));
    if (strcmp(m->config.media_type, KILN_MT_DOCKER_CONFIG) == 0)
        json_object_set_new(json_object_get(img, "config"), "mediaType",
                            json_string(KILN_MT_OCI_CONFIG));
    if (!json_is_object(json_object_get(img, "annotations")))
        json_object_set_new(img, "annotations", json_object());
    json_object_set_new(json_object_get(img, "annotations"), KILN_SOCI_ANN_INDEX_DIGEST,
                        json_string(kiln_digest_str(&soci_d.digest, ds)));
    if (kiln_image_store_put(s, img, KILN_MT_OCI_MANIFEST, &img_d, err) < 0)
        goto out;
    json_array_append_new(entries, index_entry(&img_d, platform, NULL, KILN_SOCI_ANN_INDEX_DIGEST,
                                               kiln_digest_str(&soci_d.digest, ds)));
    json_array_append_new(entries, index_entry(&soci_d, platform, KILN_SOCI_INDEX_V2,
                                               KILN_SOCI_ANN_MANIFEST_DIGEST,
                                               kiln_digest_str(&img_d.digest, ds)));
    r->manifest = img_d.digest;
    r->index = soci_d.digest;
    rc = 0;
out:
    for (size_t i = 0; pool.descs && i < pool.n; i++)
        json_decref(pool.descs[i]);
    free(pool.descs);
    kiln_manifest_free(m);
    return rc;
}

/* 1 when an index entry is an attestation or other non-image manifest (BuildKit's
 * unknown/unknown platform): kept as it is. */
static int not_an_image(const kiln_descriptor_t *d)
{
    const char *os = d->platform ? kiln_json_get_string(d->platform, "os") : NULL;
    return os != NULL && strcmp(os, "unknown") == 0;
}

int kiln_soci_convert(kiln_store_t *s, const kiln_descriptor_t *top, const kiln_soci_opts_t *o,
                      kiln_soci_result_t *out, kiln_error_t *err)
{
    _cleanup_json_ json_t *ix = kiln_image_index_new();
    json_t *entries = json_object_get(ix, "manifests");
    kiln_soci_result_t r = {0};
    kiln_index_t *in = NULL;
    int rc = 0;

    if (strcmp(top->media_type, KILN_MT_OCI_INDEX) != 0 &&
        strcmp(top->media_type, KILN_MT_DOCKER_LIST) != 0) {
        if (convert_manifest(s, top, NULL, o, entries, &r, err) < 0)
            return -1;
    } else {
        _cleanup_free_ char *body = NULL;
        size_t len;
        char ds[KILN_DIGEST_STR_MAX];
        if (kiln_store_read_blob(s, &top->digest, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0 ||
            kiln_image_parse_index(body, len, &in, err) < 0)
            return kiln_error_prefix(err, "index %s", kiln_digest_str(&top->digest, ds));
        if (json_is_object(json_object_get(in->json, "annotations")))
            json_object_set(ix, "annotations", json_object_get(in->json, "annotations"));
        for (size_t i = 0; i < in->n_manifests && rc == 0; i++) {
            const kiln_descriptor_t *d = &in->manifests[i];
            const char *at = artifact_type(in, i);
            if (at && strcmp(at, KILN_SOCI_INDEX_V2) == 0)
                continue; /* an older SOCI index of it: rebuilt below */
            if (not_an_image(d))
                json_array_append_new(entries, kiln_descriptor_to_json(d));
            else
                rc = convert_manifest(s, d, d->platform, o, entries, &r, err);
        }
        kiln_index_free(in);
        if (rc < 0)
            return -1;
    }
    if (r.ztocs == 0) /* no layer reached the threshold: the image goes as it is */
        kiln_descriptor_copy(&r.top, top);
    else if (kiln_image_store_put(s, ix, KILN_MT_OCI_INDEX, &r.top, err) < 0)
        return -1;
    *out = r;
    return 0;
}

/* ---- reading back ---- */

static const char *annotation(const kiln_descriptor_t *d, const char *key)
{
    return d->annotations ? kiln_json_get_string(d->annotations, key) : NULL;
}

static const char *artifact_type(const kiln_index_t *ix, size_t i)
{
    return kiln_json_get_string(json_array_get(json_object_get(ix->json, "manifests"), i),
                                "artifactType");
}

static int same_platform(const json_t *a, const json_t *b)
{
    static const char *const keys[] = {"os", "architecture", "variant"};
    for (size_t k = 0; k < 3; k++) {
        const char *x = a ? kiln_json_get_string(a, keys[k]) : NULL;
        const char *y = b ? kiln_json_get_string(b, keys[k]) : NULL;
        if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0))
            return 0;
    }
    return 1;
}

/* Checks one zTOC descriptor of a SOCI index against the image manifest's layers. */
static int verify_ztoc(kiln_store_t *s, const kiln_descriptor_t *zd, const kiln_manifest_t *im,
                       size_t idx, kiln_soci_verify_stats_t *st, kiln_error_t *err)
{
    const char *ld = annotation(zd, KILN_SOCI_ANN_LAYER_DIGEST);
    const char *lmt = annotation(zd, KILN_SOCI_ANN_LAYER_MEDIA_TYPE);
    _cleanup_free_ char *body = NULL;
    _cleanup_close_ int fd = -1;
    const kiln_descriptor_t *layer = NULL;
    kiln_ztoc_verify_stats_t vs = {0};
    kiln_ztoc_t *z = NULL;
    kiln_digest_t d;
    char zs[KILN_DIGEST_STR_MAX];
    uint64_t size;
    size_t len;

    kiln_digest_str(&zd->digest, zs);
    if (strcmp(zd->media_type, KILN_SOCI_ZTOC_MEDIA_TYPE) != 0)
        return kiln_error_set(err, 0, "zTOC %zu (%s): media type '%s' is not %s", idx, zs,
                              zd->media_type, KILN_SOCI_ZTOC_MEDIA_TYPE);
    if (ld == NULL || kiln_digest_parse(ld, &d, NULL) < 0)
        return kiln_error_set(err, 0,
                              "zTOC %zu (%s): annotation %s is missing or not a "
                              "digest",
                              idx, zs, KILN_SOCI_ANN_LAYER_DIGEST);
    for (size_t i = 0; i < im->n_layers && layer == NULL; i++)
        if (kiln_digest_equal(&im->layers[i].digest, &d))
            layer = &im->layers[i];
    if (layer == NULL)
        return kiln_error_set(err, 0,
                              "zTOC %zu (%s) indexes layer %s, which the image "
                              "does not have",
                              idx, zs, ld);
    if (lmt == NULL || strcmp(lmt, layer->media_type) != 0)
        return kiln_error_set(err, 0,
                              "zTOC %zu (%s): annotation %s is '%s', the layer's "
                              "media type is %s",
                              idx, zs, KILN_SOCI_ANN_LAYER_MEDIA_TYPE, lmt ? lmt : "",
                              layer->media_type);
    if (zd->size > KILN_ZTOC_MAX_BYTES)
        return kiln_error_set(err, 0, "zTOC %zu (%s): %llu bytes (at most %u)", idx, zs,
                              (unsigned long long)zd->size, KILN_ZTOC_MAX_BYTES);
    if (kiln_store_read_blob(s, &zd->digest, KILN_ZTOC_MAX_BYTES, &body, &len, err) < 0)
        return -1;
    if (kiln_ztoc_decode(body, len, &z, err) < 0)
        return kiln_error_prefix(err, "zTOC %zu (%s) of layer %s", idx, zs, ld);
    if (kiln_store_open_blob(s, &layer->digest, &fd, &size, err) < 0 ||
        kiln_ztoc_verify(z, fd, size, &vs, err) < 0) {
        kiln_ztoc_free(z);
        return kiln_error_prefix(err, "zTOC %zu (%s) of layer %s", idx, zs, ld);
    }
    kiln_ztoc_free(z);
    st->ztocs++;
    st->spans += vs.spans;
    st->files += vs.files;
    return 0;
}

/* Checks one SOCI index (entry si of the top index) and its image manifest. */
static int verify_index(kiln_store_t *s, const kiln_index_t *ix, size_t si,
                        kiln_soci_verify_stats_t *st, kiln_error_t *err)
{
    const kiln_descriptor_t *sd = &ix->manifests[si], *id = NULL;
    const char *want = annotation(sd, KILN_SOCI_ANN_MANIFEST_DIGEST);
    kiln_manifest_t *sm = NULL, *im = NULL;
    char ss[KILN_DIGEST_STR_MAX], is[KILN_DIGEST_STR_MAX];
    size_t covered = 0;
    int rc = -1;

    kiln_digest_str(&sd->digest, ss);
    for (size_t i = 0; i < ix->n_manifests && id == NULL; i++) {
        const char *link = annotation(&ix->manifests[i], KILN_SOCI_ANN_INDEX_DIGEST);
        if (i != si && link && strcmp(link, ss) == 0)
            id = &ix->manifests[i];
    }
    if (id == NULL)
        return kiln_error_set(err, 0,
                              "SOCI index %s: no image manifest of the index is "
                              "annotated %s=%s",
                              ss, KILN_SOCI_ANN_INDEX_DIGEST, ss);
    kiln_digest_str(&id->digest, is);
    if (want == NULL || strcmp(want, is) != 0)
        return kiln_error_set(err, 0,
                              "SOCI index %s: annotation %s is '%s', the image "
                              "manifest that names it is %s",
                              ss, KILN_SOCI_ANN_MANIFEST_DIGEST, want ? want : "", is);
    if (!same_platform(sd->platform, id->platform))
        return kiln_error_set(err, 0,
                              "SOCI index %s and image manifest %s are for "
                              "different platforms",
                              ss, is);
    if (read_manifest(s, &sd->digest, &sm, err) < 0 || read_manifest(s, &id->digest, &im, err) < 0)
        goto out;
    if (strcmp(sm->config.media_type, KILN_SOCI_INDEX_V2) != 0) {
        kiln_error_set(err, 0, "SOCI index %s: config media type '%s' is not %s", ss,
                       sm->config.media_type, KILN_SOCI_INDEX_V2);
        goto out;
    }
    {
        const char *inm = kiln_json_get_string(json_object_get(im->json, "annotations"),
                                               KILN_SOCI_ANN_INDEX_DIGEST);
        if (inm == NULL || strcmp(inm, ss) != 0) {
            kiln_error_set(err, 0,
                           "image manifest %s does not carry the annotation "
                           "%s=%s in its own body",
                           is, KILN_SOCI_ANN_INDEX_DIGEST, ss);
            goto out;
        }
    }
    if (sm->n_layers == 0) {
        kiln_error_set(err, 0, "SOCI index %s lists no zTOC", ss);
        goto out;
    }
    for (size_t i = 0; i < sm->n_layers; i++) {
        if (verify_ztoc(s, &sm->layers[i], im, i, st, err) < 0) {
            kiln_error_prefix(err, "SOCI index %s", ss);
            goto out;
        }
        covered++;
    }
    st->layers_without_ztoc += im->n_layers > covered ? im->n_layers - covered : 0;
    st->indexes++;
    rc = 0;
out:
    kiln_manifest_free(sm);
    kiln_manifest_free(im);
    return rc;
}

int kiln_soci_verify(kiln_store_t *s, const kiln_digest_t *top, kiln_soci_verify_stats_t *stats,
                     kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    _cleanup_json_ json_t *doc = NULL;
    kiln_index_t *ix = NULL;
    kiln_soci_verify_stats_t st = {0};
    char ts[KILN_DIGEST_STR_MAX];
    size_t len;
    int rc = 0;

    kiln_digest_str(top, ts);
    if (kiln_store_read_blob(s, top, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0 ||
        kiln_image_load_json(body, len, KILN_IMAGE_MANIFEST_MAX, ts, &doc, err) < 0)
        return -1;
    if (kiln_image_doc_kind(doc) != KILN_DOC_INDEX)
        return kiln_error_set(err, 0,
                              "%s is a single image manifest, not an image index: "
                              "it has no SOCI index v2 (build with --soci)",
                              ts);
    if (kiln_image_parse_index(body, len, &ix, err) < 0)
        return kiln_error_prefix(err, "%s", ts);
    for (size_t i = 0; i < ix->n_manifests && rc == 0; i++) {
        const char *at = artifact_type(ix, i);
        if (at && strcmp(at, KILN_SOCI_INDEX_V2) == 0)
            rc = verify_index(s, ix, i, &st, err);
    }
    kiln_index_free(ix);
    if (rc < 0)
        return -1;
    if (st.indexes == 0)
        return kiln_error_set(err, 0,
                              "image index %s lists no SOCI index (no manifest with "
                              "artifactType %s)",
                              ts, KILN_SOCI_INDEX_V2);
    if (stats)
        *stats = st;
    return 0;
}
