/* kiln — compressed and uncompressed size of a built image (see imagesize.h). */
#include "oci/imagesize.h"

#include "oci/store_lazy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "oci/compress.h"
#include "utils/cleanup.h"

#define USIZE_XATTR "user.kiln.usize"

/* The memo of a blob's uncompressed size, or 0 when there is none. */
static uint64_t memo_get(int fd)
{
    char buf[32];
    ssize_t n = fgetxattr(fd, USIZE_XATTR, buf, sizeof(buf) - 1);
    char *end;
    unsigned long long v;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    v = strtoull(buf, &end, 10);
    return *end == '\0' ? (uint64_t)v : 0;
}

/* Counts the decompressed bytes of the layer blob open at fd. */
static int measure(int fd, const kiln_digest_t *d, uint64_t *out, kiln_error_t *err)
{
    kiln_decompressor_t *dc = NULL;
    static __thread char buf[64 * 1024];
    uint64_t total = 0;
    ssize_t n;

    if (kiln_decompressor_new(fd, NULL, NULL, NULL, NULL, &dc, err) < 0)
        return -1;
    while ((n = kiln_decompressor_read(dc, buf, sizeof(buf), err)) > 0)
        total += (uint64_t)n;
    kiln_decompressor_free(dc);
    if (n < 0) {
        char ds[KILN_DIGEST_STR_MAX];
        kiln_digest_str(d, ds);
        return kiln_error_prefix(err, "measuring layer %s", ds);
    }
    *out = total;
    return 0;
}

/* Keeps usize on the blob open at fd (see memo_get). */
static void memo_set(int fd, uint64_t usize)
{
    char num[32];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)usize);
    (void)fsetxattr(fd, USIZE_XATTR, num, strlen(num), 0);
}

uint64_t kiln_image_size_known(kiln_store_t *store, const kiln_digest_t *d)
{
    _cleanup_close_ int fd = -1;
    kiln_store_lazy_t lz;
    if (kiln_store_lazy_pending(store, d, &lz))
        return lz.usize;
    if (kiln_store_has(store, d, NULL) != 1)
        return 0;
    if (kiln_store_open_blob(store, d, &fd, NULL, NULL) < 0)
        return 0;
    return memo_get(fd);
}

void kiln_image_size_note(kiln_store_t *store, const kiln_digest_t *layer, uint64_t usize)
{
    _cleanup_close_ int fd = -1;
    kiln_store_lazy_t lz;
    /* only on the root's own blob: never fetched for this (a lazy one, also one of the
     * namespace's whose bytes another namespace stored), never written on an additional
     * store's (the operator's) */
    if (usize > 0 && kiln_store_has(store, layer, NULL) == 1 &&
        !kiln_store_in_additional(store, layer) && !kiln_store_lazy_pending(store, layer, &lz) &&
        kiln_store_open_blob(store, layer, &fd, NULL, NULL) == 0)
        memo_set(fd, usize);
}

/* kiln_image_size (measure: a layer of no memo is decompressed) or kiln_image_size_noted. */
static int image_size(kiln_store_t *store, const kiln_descriptor_t *manifest,
                      const kiln_digest_t *config, const kiln_descriptor_t *layers, size_t n_layers,
                      int measure_missing, kiln_image_size_t *out, kiln_error_t *err)
{
    kiln_image_size_t s = {.compressed = manifest ? manifest->size : 0};
    uint64_t csize = 0;

    if (config != NULL && kiln_store_has(store, config, &csize) == 1)
        s.compressed += csize;
    for (size_t i = 0; i < n_layers; i++) {
        _cleanup_close_ int fd = -1;
        kiln_store_lazy_t lz;
        uint64_t usize;
        s.compressed += layers[i].size;
        if (kiln_store_lazy_pending(store, &layers[i].digest, &lz)) {
            /* not downloaded: measuring it would fetch it */
            s.uncompressed += lz.usize;
            s.unmeasured += lz.usize == 0;
            continue;
        }
        if (kiln_store_open_blob(store, &layers[i].digest, &fd, NULL, err) < 0)
            return -1;
        usize = memo_get(fd);
        if (usize == 0 && !measure_missing) {
            s.unmemoized++;
            continue;
        }
        if (usize == 0) {
            if (measure(fd, &layers[i].digest, &usize, err) < 0)
                return -1;
            /* a store on a file system without user xattrs measures again next time */
            memo_set(fd, usize);
        }
        s.uncompressed += usize;
    }
    *out = s;
    return 0;
}

int kiln_image_size(kiln_store_t *store, const kiln_descriptor_t *manifest,
                    const kiln_digest_t *config, const kiln_descriptor_t *layers, size_t n_layers,
                    kiln_image_size_t *out, kiln_error_t *err)
{
    return image_size(store, manifest, config, layers, n_layers, 1, out, err);
}

int kiln_image_size_noted(kiln_store_t *store, const kiln_descriptor_t *manifest,
                          const kiln_digest_t *config, const kiln_descriptor_t *layers,
                          size_t n_layers, kiln_image_size_t *out, kiln_error_t *err)
{
    return image_size(store, manifest, config, layers, n_layers, 0, out, err);
}
