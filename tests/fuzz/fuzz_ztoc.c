/* libFuzzer target: a zTOC (SOCI flatbuffers) read back from a registry, checked against a
 * layer, and the tar stream walker of the TOC. The input is LEN (4 bytes, little endian),
 * a gzip layer of LEN bytes, then the zTOC; an input whose LEN does not fit is a zTOC
 * whole. Decoding must never read outside the input; a zTOC that decodes must encode and
 * decode again to the same entries, and verifying it against the layer (hostile
 * checkpoints: bits, windows, offsets) must fail cleanly or pass, never crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "oci/ztoc.h"
#include "oci/ztoc_tar.h"
#include "utils/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memfd holding the layer bytes. */
static int layer_fd(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    int fd = memfd_create("fuzz-ztoc-layer", MFD_CLOEXEC);
    if (fd < 0 || kiln_fs_write_all(fd, data, size, &err) < 0)
        abort();
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    kiln_ztoc_t *z = NULL, *z2 = NULL;
    kiln_ztoc_tar_t tar = {0};
    const uint8_t *layer = NULL, *zt = data;
    size_t layer_len = 0, zt_len = size;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (size >= 4) {
        uint32_t n = (uint32_t)data[0] | ((uint32_t)data[1] << 8) | ((uint32_t)data[2] << 16) |
                     ((uint32_t)data[3] << 24);
        if (n <= size - 4) {
            layer = data + 4;
            layer_len = n;
            zt = data + 4 + n;
            zt_len = size - 4 - n;
        }
    }
    if (kiln_ztoc_decode(zt, zt_len, &z, &err) == 0) {
        if (kiln_ztoc_encode(z, &buf, &len, &err) < 0 ||
            kiln_ztoc_decode(buf, len, &z2, &err) < 0 || z2->n_files != z->n_files)
            abort();
        for (size_t i = 0; i < z->n_files; i++)
            if (kiln_ztoc_file_compare(&z->files[i], &z2->files[i], &err) < 0)
                abort();
        if (layer != NULL) {
            int fd = layer_fd(layer, layer_len);
            (void)kiln_ztoc_verify(z, fd, layer_len, NULL, &err);
            close(fd);
        }
        free(buf);
        kiln_ztoc_free(z2);
        kiln_ztoc_free(z);
    }
    /* the same bytes as a tar stream, fed in two pieces */
    if (kiln_ztoc_tar_feed(&tar, data, size / 2, &err) == 0 &&
        kiln_ztoc_tar_feed(&tar, data + size / 2, size - size / 2, &err) == 0)
        (void)kiln_ztoc_tar_finish(&tar, &err);
    kiln_ztoc_tar_clear(&tar);
    return 0;
}
