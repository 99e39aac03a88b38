/* kiln — the image file exporters: type=oci (an OCI image layout directory, or its tarball
 * with tar=true) and type=docker (a `docker load` archive), both through oci/. */
#include "export/exporters.h"
#include "oci/docker_archive.h"
#include "oci/layout.h"

static int oci_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                   const kiln_export_opts_t *o, kiln_error_t *err)
{
    const char *dest = kiln_export_opts_get(o, "dest");
    char ds[KILN_DIGEST_STR_MAX];
    int tar = 0;

    if (dest == NULL)
        return kiln_export_unsupported(o, err);
    if (kiln_export_opts_get_bool(o, "tar", 0, &tar, err) < 0 ||
        kiln_layout_write(img->store, dest, tar, img->manifest, img->n_tags ? img->tags[0] : NULL,
                          err) < 0)
        return -1;
    kiln_digest_str(&img->manifest->digest, ds);
    kiln_export_report(ctx, &(kiln_export_result_t){.type = "oci", .location = dest, .digest = ds});
    return 0;
}

static int docker_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                      const kiln_export_opts_t *o, kiln_error_t *err)
{
    const char *dest = kiln_export_opts_get(o, "dest");
    char ds[KILN_DIGEST_STR_MAX];

    if (dest == NULL)
        return kiln_export_unsupported(o, err);
    if (kiln_docker_archive_write(img->store, dest, img->manifest, img->tags, err) < 0)
        return -1;
    kiln_digest_str(&img->manifest->digest, ds);
    kiln_export_report(ctx,
                       &(kiln_export_result_t){.type = "docker", .location = dest, .digest = ds});
    return 0;
}

static const char *const oci_keys[] = {"dest", "tar", NULL};
static const char *const docker_keys[] = {"dest", NULL};

const kiln_exporter_t kiln_exporter_oci = {
    .name = "oci", .file = 1, .keys = oci_keys, .run = oci_run};
const kiln_exporter_t kiln_exporter_docker = {
    .name = "docker", .file = 1, .keys = docker_keys, .run = docker_run};
