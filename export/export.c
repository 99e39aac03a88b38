/* kiln — the exporter registry: finds the exporter of an output's type, checks an output up
 * front and runs it (see export.h). Each exporter lives in its own file. */
#include "export/export.h"

#include <string.h>

#include "export/exporters.h"
#include "oci/registry.h"
#include "utils/aws/s3.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

static const kiln_exporter_t *const exporters[] = {
    &kiln_exporter_local,    &kiln_exporter_oci,      &kiln_exporter_docker, &kiln_exporter_tar,
    &kiln_exporter_function, &kiln_exporter_registry, &kiln_exporter_image,  &kiln_exporter_s3,
};
const char kiln_exporter_names[] = "local, oci, docker, tar, function, registry, image, s3";

static const char *const bool_keys[] = {"tar",  "push", "ecr-create-repository",
                                        "full", "soci", NULL};

const kiln_exporter_t *kiln_exporter_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(exporters) / sizeof(exporters[0]); i++)
        if (strcmp(exporters[i]->name, name) == 0)
            return exporters[i];
    return NULL;
}

int kiln_export_key_is_bool(const char *key)
{
    for (size_t i = 0; bool_keys[i]; i++)
        if (strcmp(bool_keys[i], key) == 0)
            return 1;
    return 0;
}

/* 1 when spec is an S3 output: its values (cache-control) may hold commas, so it is read by
 * the S3 output parser, not split at every comma. */
static int is_s3_spec(const char *spec)
{
    return strncmp(spec, "type=s3,", 8) == 0 || strcmp(spec, "type=s3") == 0;
}

int kiln_export_parse(const char *spec, kiln_export_opts_t *o, kiln_error_t *err)
{
    if (spec != NULL && is_s3_spec(spec)) {
        kiln_s3_output_t s3 = {0};
        if (kiln_s3_output_parse(spec, &s3, err) < 0)
            return -1;
        *o = (kiln_export_opts_t){.type = kiln_xstrdup("s3"), .spec = kiln_xstrdup(spec)};
        o->kv = kiln_xmalloc(sizeof(*o->kv));
        o->kv[0] =
            (kiln_export_kv_t){.key = kiln_xstrdup("dest"), .value = steal_pointer(&s3.dest)};
        o->n = 1;
        kiln_s3_output_clear(&s3);
        return 0;
    }
    if (kiln_export_opts_parse(spec, o, err) < 0)
        return -1;
    o->spec = kiln_xstrdup(spec);
    return 0;
}

int kiln_export_unsupported(const kiln_export_opts_t *o, kiln_error_t *err)
{
    return kiln_error_set(err, 0, "unsupported output %s (need dest= for oci/docker/local/tar)",
                          o->spec ? o->spec : o->type);
}

/* What writing output o does, as a job's phase (job/stream.h). */
static const char *export_phase(const kiln_export_opts_t *o)
{
    int push = 0;

    if (strcmp(o->type, "registry") == 0 ||
        (strcmp(o->type, "image") == 0 &&
         kiln_export_opts_get_bool(o, "push", 0, &push, NULL) == 0 && push))
        return "pushing";
    return strcmp(o->type, "s3") == 0 ? "uploading" : "exporting";
}

int kiln_export_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img, const char *spec,
                    kiln_error_t *err)
{
    kiln_export_opts_t o = {0};
    const kiln_exporter_t *t;
    int ret;

    if (kiln_export_parse(spec, &o, err) < 0)
        return -1;
    t = kiln_exporter_find(o.type);
    if (t && ctx->phase)
        ctx->phase(ctx->phase_ud, export_phase(&o));
    ret = t ? t->run(ctx, img, &o, err) : kiln_export_unsupported(&o, err);
    kiln_export_opts_free(&o);
    return ret;
}

void kiln_export_report(kiln_export_ctx_t *ctx, const kiln_export_result_t *r)
{
    if (ctx->result)
        ctx->result(ctx->result_ud, r);
}

void kiln_export_ctx_clear(kiln_export_ctx_t *ctx)
{
    if (ctx->registry)
        kiln_registry_free(ctx->registry);
    ctx->registry = NULL;
}
