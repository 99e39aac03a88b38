/* kiln — a build's SBOM and provenance, written beside its file outputs (see attest.h). */
#include "job/attest.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "export/export.h"
#include "export/provenance.h"
#include "export/sbom.h"
#include "job/options.h"
#include "oci/reference.h"
#include "oci/registry.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

void kiln_job_attest_time(const kiln_job_spec_t *s, char buf[32])
{
    time_t t = s->has_source_date_epoch ? (time_t)s->source_date_epoch : time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The build args of the spec and the API's env (both are build arguments) as "K=V". */
static char **all_args(const kiln_job_spec_t *s, size_t *n)
{
    char **a = kiln_job_kv_strv(s->build_args, s->n_build_args);
    char **b = kiln_job_kv_strv(s->env, s->n_env);
    size_t na = 0, nb = 0;

    while (a && a[na])
        na++;
    while (b && b[nb])
        nb++;
    a = kiln_xrealloc(a, (na + nb + 1) * sizeof(char *));
    for (size_t i = 0; i < nb; i++)
        a[na + i] = b[i];
    a[na + nb] = NULL;
    free(b);
    *n = na + nb;
    return a;
}

int kiln_job_attest_make(const kiln_job_attest_in_t *in, kiln_job_attest_t *out, kiln_error_t *err)
{
    const kiln_job_spec_t *s = in->spec;
    char ds[KILN_DIGEST_STR_MAX], now[32];
    const char *name = s->n_tags ? s->tags[0] : "image";

    memset(out, 0, sizeof(*out));
    kiln_digest_str(&in->res->manifest.digest, ds);
    kiln_job_attest_time(s, now);
    if (s->sbom) {
        kiln_sbom_t *sb = kiln_sbom_new();
        if (kiln_sbom_scan_layers(sb, in->store, in->res->layers, in->res->n_layers, err) < 0) {
            kiln_sbom_free(sb);
            return kiln_error_prefix(err, "sbom");
        }
        out->packages = kiln_sbom_count(sb);
        out->sbom = kiln_sbom_spdx(sb, name, ds, now);
        kiln_sbom_free(sb);
    }
    if (s->provenance) {
        size_t n_args = 0;
        _cleanup_(kiln_strv_freep) char **args = all_args(s, &n_args);
        _cleanup_free_ const char **ids = kiln_xmalloc((s->n_secrets + 1) * sizeof(char *));
        _cleanup_(kiln_strv_freep) char **bases =
            kiln_xzalloc((in->res->n_bases + 1) * sizeof(char *));
        for (size_t i = 0; i < s->n_secrets; i++)
            ids[i] = s->secrets[i].id;
        for (size_t i = 0; i < in->res->n_bases; i++)
            bases[i] = kiln_xasprintf("%s@%s", in->res->bases[i].ref, in->res->bases[i].digest);
        kiln_provenance_in_t p = {.name = name,
                                  .digest = ds,
                                  .source = s->source,
                                  .repo = in->repo ? in->repo : s->repo,
                                  .commit = in->commit ? in->commit : s->commit,
                                  .dockerfile = s->dockerfile,
                                  .target = s->target,
                                  .build_args = (const char *const *)args,
                                  .n_build_args = n_args,
                                  .secret_ids = ids,
                                  .n_secret_ids = s->n_secrets,
                                  .base_images = (const char *const *)bases,
                                  .n_base_images = in->res->n_bases,
                                  .invocation_id = in->build_id,
                                  .started = in->started,
                                  .finished = now};
        out->provenance = kiln_provenance_statement(&p);
    }
    return 0;
}

/* Writes doc as path (whole or absent: a temp file renamed, so a link already at path is
 * replaced, never written through). */
static int write_doc(const json_t *doc, const char *path, kiln_error_t *err)
{
    _cleanup_free_ char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    struct stat st;

    if (text == NULL)
        return kiln_error_set(err, 0, "%s: cannot encode", path);
    /* the image's own tree is in a local dest: a directory there is never replaced */
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return kiln_error_set(err, 0,
                              "%s: the image has a directory where the document goes (remove "
                              "it from the image, or use an output of type oci, docker or tar)",
                              path);
    return kiln_fs_write_file_atomic(path, text, strlen(text), 0644, err);
}

int kiln_job_attest_write(const kiln_job_attest_t *a, const char *output, char **written,
                          kiln_error_t *err)
{
    kiln_export_opts_t o = {0};
    const kiln_exporter_t *x;
    const char *dest;
    int inside, ret = -1;

    *written = NULL;
    if (kiln_export_parse(output, &o, err) < 0)
        return -1;
    x = kiln_exporter_find(o.type);
    dest = kiln_export_opts_get(&o, "dest");
    if (x == NULL || !x->file || dest == NULL || strcmp(dest, "-") == 0 ||
        strcmp(o.type, "function") == 0 || (a->sbom == NULL && a->provenance == NULL)) {
        ret = 0;
        goto out;
    }
    inside = strcmp(o.type, "local") == 0;
    {
        _cleanup_free_ char *sp =
            kiln_xasprintf("%s%s%s", dest, inside ? "/" : ".", KILN_ATTEST_SBOM_FILE);
        _cleanup_free_ char *pp =
            kiln_xasprintf("%s%s%s", dest, inside ? "/" : ".", KILN_ATTEST_PROVENANCE_FILE);
        if ((a->sbom && write_doc(a->sbom, sp, err) < 0) ||
            (a->provenance && write_doc(a->provenance, pp, err) < 0))
            goto out;
        if (a->sbom)
            *written = steal_pointer(&sp);
    }
    ret = 0;
out:
    kiln_export_opts_free(&o);
    return ret;
}

#define MT_EMPTY "application/vnd.oci.empty.v1+json"
#define MT_SPDX "application/spdx+json"
#define MT_INTOTO "application/vnd.in-toto+json"

/* One document as an artifact manifest whose subject is the image, put in the store. */
static int put_artifact(kiln_store_t *st, const json_t *doc, const char *type,
                        const kiln_descriptor_t *subject, kiln_descriptor_t *out, kiln_error_t *err)
{
    kiln_descriptor_t empty = {0}, layer = {0};
    json_t *e = json_object(), *m;
    char ds[KILN_DIGEST_STR_MAX];
    int r;

    kiln_digest_str(&subject->digest, ds);
    r = kiln_image_store_put(st, e, MT_EMPTY, &empty, err); /* "{}": OCI's empty blob */
    json_decref(e);
    if (r < 0 || kiln_image_store_put(st, doc, type, &layer, err) < 0)
        return -1;
    m = kiln_image_manifest_new(&empty, &layer, 1, NULL);
    json_object_set_new(m, "artifactType", json_string(type));
    json_object_set_new(m, "subject",
                        json_pack("{s:s, s:s, s:I}", "mediaType", subject->media_type, "digest", ds,
                                  "size", (json_int_t)subject->size));
    r = kiln_image_store_put(st, m, KILN_MT_OCI_MANIFEST, out, err);
    json_decref(m);
    kiln_descriptor_clear(&empty);
    kiln_descriptor_clear(&layer);
    return r;
}

/* 1 when index.manifests lists digest. */
static int index_has(const json_t *index, const char *digest)
{
    size_t i;
    json_t *m;

    json_array_foreach(json_object_get(index, "manifests"), i, m)
    {
        const char *d = kiln_json_get_string(m, "digest");
        if (d && digest && strcmp(d, digest) == 0)
            return 1;
    }
    return 0;
}

/* The referrers already listed at tag (the fallback scheme's index, as another build or tool
 * left it) appended to index, each once, their manifests fetched into the store (verified by
 * digest) so the push can send the whole index again (their blobs are in the repository
 * already: skipped); one the registry no longer has is dropped. Nothing at the tag, or
 * something there that is not an index: nothing kept. The merged list stays within
 * KILN_ATTEST_REFERRERS_MAX: with n_fresh documents of this build to come, the oldest (first
 * listed) are left out as needed (a rebuild of the same image adds a provenance each time).
 * Fails naming the tag when it lists more than the cap, or the registry fails otherwise. */
static int merge_existing(kiln_registry_t *reg, kiln_store_t *store, const char *name,
                          const char *tag, size_t n_fresh, json_t *index, kiln_error_t *err)
{
    size_t skip = 0;
    _cleanup_free_ char *body = NULL;
    _cleanup_json_ json_t *old = NULL;
    char mt[256];
    kiln_digest_t d;
    kiln_error_t gerr = {0};
    size_t len = 0, i;
    json_t *m;

    if (kiln_registry_get_manifest(reg, tag, &body, &len, mt, &d, &gerr) < 0) {
        if (gerr.code == ENOENT)
            return 0;
        *err = gerr;
        return kiln_error_prefix(err, "the referrers index %s", tag);
    }
    old = json_loadb(body, len, 0, NULL);
    if (!json_is_array(json_object_get(old, "manifests")))
        return 0;
    /* each listed referrer costs a fetch: a registry's index is bounded before any */
    if (json_array_size(json_object_get(old, "manifests")) > KILN_ATTEST_REFERRERS_MAX)
        return kiln_error_set(err, 0, "the referrers index %s lists more than %u referrers", tag,
                              KILN_ATTEST_REFERRERS_MAX);
    if (json_array_size(json_object_get(old, "manifests")) + n_fresh > KILN_ATTEST_REFERRERS_MAX)
        skip = json_array_size(json_object_get(old, "manifests")) + n_fresh -
               KILN_ATTEST_REFERRERS_MAX;
    json_array_foreach(json_object_get(old, "manifests"), i, m)
    {
        const char *dg = kiln_json_get_string(m, "digest");
        _cleanup_free_ char *child = NULL, *cbody = NULL;
        char cmt[256];
        kiln_digest_t cd, check;
        size_t clen = 0;
        if (i < skip || dg == NULL || kiln_digest_parse(dg, &cd, NULL) < 0 || index_has(index, dg))
            continue;
        child = kiln_xasprintf("%s@%s", name, dg);
        gerr = (kiln_error_t){0};
        if (kiln_registry_get_manifest(reg, child, &cbody, &clen, cmt, &check, &gerr) < 0) {
            if (gerr.code == ENOENT)
                continue; /* gone from the registry: a dangling entry is dropped */
            *err = gerr;
            return kiln_error_prefix(err, "the referrers index %s", tag);
        }
        if (kiln_store_put_bytes(store, cbody, clen, &check, err) < 0)
            return kiln_error_prefix(err, "the referrers index %s", tag);
        json_array_append(json_object_get(index, "manifests"), m);
    }
    return 0;
}

int kiln_job_attest_push(const kiln_job_attest_t *a, kiln_store_t *store,
                         const kiln_descriptor_t *subject, const char *const *refs, size_t n,
                         const struct kiln_registry_opts *ro, char **tag_ref, kiln_error_t *err)
{
    const json_t *docs[2] = {a->sbom, a->provenance};
    const char *types[2] = {MT_SPDX, MT_INTOTO};
    kiln_registry_t *reg = NULL;
    json_t *fresh = kiln_image_index_new();
    char ds[KILN_DIGEST_STR_MAX];
    int ret = -1;

    *tag_ref = NULL;
    kiln_digest_str(&subject->digest, ds);
    for (int i = 0; i < 2; i++) {
        kiln_descriptor_t m = {0};
        json_t *list = json_object_get(fresh, "manifests");
        if (docs[i] == NULL)
            continue;
        if (put_artifact(store, docs[i], types[i], subject, &m, err) < 0)
            goto out;
        kiln_image_index_add(fresh, &m);
        json_object_set_new(json_array_get(list, json_array_size(list) - 1), "artifactType",
                            json_string(types[i]));
        kiln_descriptor_clear(&m);
    }
    if (kiln_registry_new(ro, &reg, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        kiln_reference_t ref = {0};
        kiln_blob_source_t src = kiln_registry_source_store(store);
        kiln_descriptor_t idx = {0};
        _cleanup_json_ json_t *index = kiln_image_index_new();
        _cleanup_free_ char *name = NULL, *tag = NULL;
        size_t k;
        json_t *m;
        int r;
        if (kiln_reference_parse(refs[i], &ref, err) < 0)
            goto out;
        name = kiln_reference_name(&ref);
        kiln_reference_free(&ref);
        /* the fallback tag scheme: sha256-HEX names the subject's referrers; what is listed
         * there already stays (another document, a signature), this build's added once */
        tag = kiln_xasprintf("%s:sha256-%s", name, strchr(ds, ':') + 1);
        if (merge_existing(reg, store, name, tag,
                           json_array_size(json_object_get(fresh, "manifests")), index, err) < 0)
            goto out;
        json_array_foreach(json_object_get(fresh, "manifests"), k, m)
        {
            if (!index_has(index, kiln_json_get_string(m, "digest")))
                json_array_append(json_object_get(index, "manifests"), m);
        }
        r = kiln_image_store_put(store, index, KILN_MT_OCI_INDEX, &idx, err);
        if (r == 0)
            r = kiln_registry_push(reg, &src, &idx, (const char *const *)&tag, 1, NULL, NULL, err);
        kiln_descriptor_clear(&idx);
        if (r < 0) {
            kiln_error_prefix(err, "attestations of %s", refs[i]);
            goto out;
        }
        free(*tag_ref);
        *tag_ref = steal_pointer(&tag);
    }
    ret = 0;
out:
    kiln_registry_free(reg);
    json_decref(fresh);
    return ret;
}

void kiln_job_attest_clear(kiln_job_attest_t *a)
{
    json_decref(a->sbom);
    json_decref(a->provenance);
    memset(a, 0, sizeof(*a));
}
