/* kiln — base image layers unpacked once into a shared lower-dir cache. */
#include "sandbox/rootfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/layout.h"
#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Unpacks one layer blob of the layout (or, layout_dir NULL, of the store) into
 * cache_dir/<hex> unless there. */
static int ensure_layer(const char *layout_dir, kiln_store_t *store, const kiln_descriptor_t *d,
                        const char *cache_dir, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *dest = kiln_xasprintf("%s/%s", cache_dir, d->digest.hex);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -1;
    kiln_unpack_opts_t opts;
    struct stat st;
    uint64_t size;

    if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
        *out = steal_pointer(&dest);
        return 0;
    }
    if (kiln_fs_mkdtemp(cache_dir, ".unpack-", &tmp, err) < 0)
        return -1;
    if (chmod(tmp, 0755) < 0) {
        kiln_error_set(err, errno, "chmod %s", tmp);
        goto fail;
    }
    if ((layout_dir ? kiln_layout_open_blob(layout_dir, &d->digest, &fd, &size, err)
                    : kiln_store_open_blob(store, &d->digest, &fd, &size, err)) < 0)
        goto fail;
    kiln_unpack_opts_init(&opts);
    opts.overlay_form = 1;
    opts.overlay_user_xattr = 1;
    opts.chown = 1;
    opts.expect_digest = &d->digest;
    if (kiln_layer_unpack(fd, tmp, &opts, NULL, err) < 0) {
        kiln_error_prefix(err, "unpacking layer sha256:%s", d->digest.hex);
        goto fail;
    }
    if (rename(tmp, dest) < 0) {
        /* Someone else unpacked it meanwhile: theirs is as good. */
        if ((errno == ENOTEMPTY || errno == EEXIST) && stat(dest, &st) == 0) {
            kiln_fs_rm_rf(tmp, NULL);
            *out = steal_pointer(&dest);
            return 0;
        }
        kiln_error_set(err, errno, "renaming %s to %s", tmp, dest);
        goto fail;
    }
    *out = steal_pointer(&dest);
    return 0;
fail:
    kiln_fs_rm_rf(tmp, NULL);
    return -1;
}

int kiln_rootfs_from_layout(const char *layout_dir, const char *tag, const char *cache_dir,
                            char ***lowers, size_t *n, kiln_error_t *err)
{
    kiln_layout_image_t *img = NULL;
    char **v = NULL;
    size_t count;
    int ret = -1;

    if (kiln_fs_mkdir_p(cache_dir, 0755, err) < 0)
        return -1;
    if (kiln_layout_resolve(layout_dir, tag, &img, err) < 0)
        return -1;
    count = img->manifest->n_layers;
    if (count == 0) {
        kiln_error_set(err, EINVAL, "image %s%s%s has no layers", layout_dir, tag ? ":" : "",
                       tag ? tag : "");
        goto out;
    }
    v = kiln_xzalloc((count + 1) * sizeof(*v));
    for (size_t i = 0; i < count; i++) {
        /* Manifest order is bottom-most first; overlay wants top-most first. */
        if (ensure_layer(layout_dir, NULL, &img->manifest->layers[i], cache_dir, &v[count - 1 - i],
                         err) < 0)
            goto out;
    }
    *lowers = steal_pointer(&v);
    *n = count;
    ret = 0;
out:
    for (size_t i = 0; v != NULL && i < count; i++)
        free(v[i]);
    free(v);
    kiln_layout_image_free(img);
    return ret;
}

int kiln_rootfs_from_store(kiln_store_t *store, const kiln_manifest_t *m, const char *cache_dir,
                           char ***lowers, size_t *n, kiln_error_t *err)
{
    size_t count = m->n_layers;
    char **v;

    if (kiln_fs_mkdir_p(cache_dir, 0755, err) < 0)
        return -1;
    if (count == 0)
        return kiln_error_set(err, EINVAL, "the image has no layers");
    v = kiln_xzalloc((count + 1) * sizeof(*v));
    for (size_t i = 0; i < count; i++) {
        /* manifest order is bottom-most first; overlay wants top-most first */
        if (ensure_layer(NULL, store, &m->layers[i], cache_dir, &v[count - 1 - i], err) < 0) {
            for (size_t k = 0; k < count; k++)
                free(v[k]);
            free(v);
            return -1;
        }
    }
    *lowers = v;
    *n = count;
    return 0;
}
