/* kiln — the file exporters: type=local (the image's filesystem as a directory) and type=tar
 * (the same as one uncompressed tarball, buildx's type=tar). The filesystem is the layers
 * unpacked in order by the layer reader, which writes links as links and never follows one. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/exporters.h"
#include "oci/layer_write.h"
#include "oci/sink.h"
#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_export_filesystem(const kiln_export_image_t *img, const char *dest, kiln_error_t *err)
{
    if (kiln_fs_mkdir_p(dest, 0755, err) < 0)
        return -1;
    for (size_t i = 0; i < img->n_layers; i++) {
        _cleanup_close_ int fd = -1;
        kiln_unpack_opts_t o;
        kiln_unpack_opts_init(&o);
        if (kiln_store_open_blob(img->store, &img->layers[i].digest, &fd, NULL, err) < 0 ||
            kiln_layer_unpack(fd, dest, &o, NULL, err) < 0)
            return kiln_error_prefix(err, "exporting to %s", dest);
    }
    return 0;
}

int kiln_export_filesystem_tmp(const kiln_export_image_t *img, const char *tmp_dir,
                               const char *prefix, char **dir, kiln_error_t *err)
{
    if (kiln_fs_mkdir_p(tmp_dir, 0711, err) < 0 || kiln_fs_mkdtemp(tmp_dir, prefix, dir, err) < 0)
        return -1;
    if (kiln_export_filesystem(img, *dir, err) < 0) {
        kiln_fs_rm_rf(*dir, NULL);
        free(*dir);
        *dir = NULL;
        return -1;
    }
    return 0;
}

static int local_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                     const kiln_export_opts_t *o, kiln_error_t *err)
{
    const char *dest = kiln_export_opts_get(o, "dest");

    if (dest == NULL)
        return kiln_export_unsupported(o, err);
    if (kiln_export_filesystem(img, dest, err) < 0)
        return -1;
    kiln_export_report(ctx, &(kiln_export_result_t){.type = "local", .location = dest});
    return 0;
}

/* The filesystem as one uncompressed tarball at dest, written to a temp file beside it and
 * renamed into place, so dest is whole or absent. */
static int tar_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                   const kiln_export_opts_t *o, kiln_error_t *err)
{
    const char *dest = kiln_export_opts_get(o, "dest");
    _cleanup_free_ char *dir = NULL, *tmp = NULL, *parent = NULL;
    _cleanup_close_ int fd = -1;
    kiln_layer_opts_t lo;
    kiln_layer_info_t info = {0};
    kiln_sink_t sink;
    char *slash;
    int ret;

    if (dest == NULL)
        return kiln_export_unsupported(o, err);
    tmp = kiln_xasprintf("%s.tmp-XXXXXX", dest);
    parent = kiln_xstrdup(dest);
    slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (kiln_fs_mkdir_p(parent, 0755, err) < 0)
            return -1;
    }
    if (kiln_export_filesystem_tmp(img, ctx->tmp_dir, "tar-", &dir, err) < 0)
        return -1;
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        kiln_fs_rm_rf(dir, NULL);
        return kiln_error_set(err, errno, "create temp file for %s", dest);
    }
    kiln_layer_opts_init(&lo);
    lo.compression = KILN_COMPRESSION_NONE;
    sink = kiln_sink_fd(&fd);
    ret = kiln_layer_write_dir(dir, &lo, &sink, &info, err);
    if (ret == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, dest) < 0))
        ret = kiln_error_set(err, errno, "write %s", dest);
    if (ret < 0)
        unlink(tmp);
    kiln_fs_rm_rf(dir, NULL);
    if (ret < 0)
        return kiln_error_prefix(err, "--output type=tar,dest=%s", dest);
    kiln_export_report(
        ctx, &(kiln_export_result_t){.type = "tar", .location = dest, .bytes = info.size});
    return 0;
}

static const char *const dest_keys[] = {"dest", NULL};

const kiln_exporter_t kiln_exporter_local = {
    .name = "local", .file = 1, .keys = dest_keys, .run = local_run};
const kiln_exporter_t kiln_exporter_tar = {
    .name = "tar", .file = 1, .keys = dest_keys, .run = tar_run};
