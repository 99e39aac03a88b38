/* kiln — the registry exporter: type=registry (and buildx's type=image with push=true) pushes
 * the image to its name= and every -t name through one registry client per build, whose
 * addresses are those of ctx->policy (a tenant's push may name any registry: as for FROM). */
#include <string.h>

#include "export/exporters.h"

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

static int registry_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                        const kiln_export_opts_t *o, kiln_error_t *err)
{
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
    if (open_registry(ctx, err) < 0)
        return -1;
    if (ecr_create && ctx->ecr_create_fn && ctx->ecr_create_fn(refs, n, err) < 0)
        return -1;
    if (kiln_registry_push(ctx->registry, &src, img->manifest, refs, n, NULL, NULL, err) < 0)
        return -1;
    kiln_digest_str(&img->manifest->digest, ds);
    for (size_t k = 0; k < n; k++)
        kiln_export_report(
            ctx, &(kiln_export_result_t){.type = "registry", .location = refs[k], .digest = ds});
    return 0;
}

static const char *const push_keys[] = {"name", "push", "ecr-create-repository", NULL};

const kiln_exporter_t kiln_exporter_registry = {
    .name = "registry", .keys = push_keys, .run = registry_run};
const kiln_exporter_t kiln_exporter_image = {
    .name = "image", .keys = push_keys, .run = registry_run};
