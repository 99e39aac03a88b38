/* kiln — the registry exporter: type=registry (and buildx's type=image with push=true) pushes
 * the image to its name= and every -t name through one registry client per build, whose
 * addresses are those of ctx->policy (a tenant's push may name any registry: as for FROM). */
#include <string.h>

#include "export/exporters.h"
#include "oci/soci.h"
#include "oci/ztoc.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

#define MAX_REFS 256 /* as many as kiln build takes -t names */

/* Registry progress while pushing: adds up the blobs actually uploaded (not those the
 * registry had or mounted). Events come one at a time (the client's lock). */
static void count_pushed(void *ud, const kiln_registry_event_t *ev)
{
    if (ev->kind == KILN_REGISTRY_EV_BLOB_DONE)
        *(uint64_t *)ud += ev->size;
}

/* The registry client of this build's outputs, opened by the first push. */
static int open_registry(kiln_export_ctx_t *ctx, kiln_error_t *err)
{
    kiln_registry_opts_t ro;

    if (ctx->registry)
        return 0;
    kiln_registry_opts_init(&ro);
    ro.insecure = ctx->insecure;
    if (ctx->registry_config)
        ro.config_file = ctx->registry_config;
    ro.progress = count_pushed;
    ro.progress_ud = &ctx->pushed;
    ro.policy = ctx->policy;
    return kiln_registry_new(&ro, &ctx->registry, err);
}

/* soci-min-layer-size= / soci-span-size=: a byte size ("10MiB"), or def when absent. */
static int soci_size(const kiln_export_opts_t *o, const char *key, int64_t def, int64_t *out,
                     kiln_error_t *err)
{
    const char *v = kiln_export_opts_get(o, key);
    uint64_t n;

    *out = def;
    if (v == NULL)
        return 0;
    if (kiln_size_parse(v, &n, err) < 0 || n > (uint64_t)1 << 40)
        return kiln_error_set(err, 0, "--output: %s=%s is not a byte size (e.g. 10MiB)", key, v);
    *out = (int64_t)n;
    return 0;
}

/* The SOCI options of an output (soci=, soci-min-layer-size=, soci-span-size=). */
static int soci_opts(const kiln_export_ctx_t *ctx, const kiln_export_opts_t *o, int *on,
                     kiln_soci_opts_t *so, kiln_error_t *err)
{
    if (kiln_export_opts_get_bool(o, "soci", ctx ? ctx->soci : 0, on, err) < 0 ||
        soci_size(o, "soci-min-layer-size",
                  ctx && ctx->has_soci_min_layer ? ctx->soci_min_layer : -1, &so->min_layer,
                  err) < 0 ||
        soci_size(o, "soci-span-size", 0, &so->span, err) < 0)
        return -1;
    if (so->span && so->span < KILN_ZTOC_MIN_SPAN)
        return kiln_error_set(err, 0, "--output: soci-span-size is below %d KiB",
                              KILN_ZTOC_MIN_SPAN / 1024);
    so->build_tool = "kiln " KILN_VERSION;
    return 0;
}

static int registry_validate(const kiln_export_opts_t *o, kiln_error_t *err)
{
    kiln_soci_opts_t so = {0};
    int on;
    return soci_opts(NULL, o, &on, &so, err);
}

static int registry_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                        const kiln_export_opts_t *o, kiln_error_t *err)
{
    const kiln_descriptor_t *top = img->manifest;
    kiln_soci_opts_t so = {0};
    kiln_soci_result_t sr = {0};
    _cleanup_free_ char *note = NULL;
    int soci = 0;
    const char *name = kiln_export_opts_get(o, "name");
    const char *refs[MAX_REFS + 1];
    kiln_blob_source_t src = kiln_registry_source_store(img->store);
    char ds[KILN_DIGEST_STR_MAX];
    size_t n = 0;
    int push = 0, ecr_create = 0;

    /* buildx's type=image without push=true: the image stays in the store */
    if (strcmp(o->type, "image") == 0 &&
        (kiln_export_opts_get_bool(o, "push", 0, &push, err) < 0 || !push))
        return kiln_error_is_set(err) ? -1 : 0;
    if (kiln_export_opts_get_bool(o, "ecr-create-repository", ctx->ecr_create, &ecr_create, err) <
        0)
        return -1;
    /* as buildx: the output's name= is where it goes; the -t names only when it has none
     * (a -t name is never pushed to a registry the output did not ask for) */
    if (name)
        refs[n++] = name;
    for (size_t k = 0; (name == NULL || ctx->tags_with_name) && k < img->n_tags && n < MAX_REFS;
         k++)
        refs[n++] = img->tags[k];
    if (n == 0)
        return kiln_error_set(err, 0, "--push / type=registry needs a name (-t NAME)");
    if (soci_opts(ctx, o, &soci, &so, err) < 0)
        return -1;
    if (soci) { /* the SOCI-enabled image (an index) is what gets pushed */
        if (kiln_soci_convert(img->store, img->manifest, &so, &sr, err) < 0)
            return -1;
        top = &sr.top;
        note =
            sr.ztocs
                ? kiln_xasprintf(
                      "SOCI index v2 with %zu zTOC%s (%zu layer%s below the "
                      "%lld-byte threshold)",
                      sr.ztocs, sr.ztocs == 1 ? "" : "s", sr.skipped, sr.skipped == 1 ? "" : "s",
                      (long long)(so.min_layer >= 0 ? so.min_layer : KILN_SOCI_DEFAULT_MIN_LAYER))
                : kiln_xasprintf(
                      "no SOCI index: every layer is below the %lld-byte "
                      "threshold (soci-min-layer-size)",
                      (long long)(so.min_layer >= 0 ? so.min_layer : KILN_SOCI_DEFAULT_MIN_LAYER));
    }
    if (open_registry(ctx, err) < 0)
        return -1;
    if (ecr_create && ctx->ecr_create_fn && ctx->ecr_create_fn(refs, n, err) < 0)
        return -1;
    if (kiln_registry_push(ctx->registry, &src, top, refs, n, NULL, NULL, err) < 0) {
        kiln_descriptor_clear(&sr.top);
        return -1;
    }
    kiln_digest_str(&top->digest, ds);
    kiln_descriptor_clear(&sr.top);
    for (size_t k = 0; k < n; k++)
        kiln_export_report(
            ctx, &(kiln_export_result_t){
                     .type = "registry", .location = refs[k], .digest = ds, .note = note});
    return 0;
}

static const char *const push_keys[] = {
    "name", "push", "ecr-create-repository", "soci", "soci-min-layer-size", "soci-span-size", NULL};

const kiln_exporter_t kiln_exporter_registry = {
    .name = "registry", .keys = push_keys, .validate = registry_validate, .run = registry_run};
const kiln_exporter_t kiln_exporter_image = {
    .name = "image", .keys = push_keys, .validate = registry_validate, .run = registry_run};
