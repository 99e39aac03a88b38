/* libFuzzer target: a layer stream (gzip, zstd or plain tar) from outside.
 * The tar copier of `kiln import` and the unpacker must never crash, and the
 * unpacker must never create anything outside its rootfs (checked by a
 * sentinel directory next to the rootfs that must stay empty). */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/digest.h"
#include "oci/layer_write.h"
#include "oci/unpack.h"
#include "utils/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memfd holding the input, positioned at 0. */
static int input_fd(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-layer", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    kiln_error_t err = {0};
    if (kiln_fs_write_all(fd, data, size, &err) < 0 || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    return fd;
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int empty = 1;
    if (d == NULL)
        return 1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    char base[] = "/tmp/kiln-fuzz-tar-XXXXXX";

    /* 1. the tar copier into a hash-only sink */
    int fd = input_fd(data, size);
    kiln_sha256_t h;
    if (kiln_sha256_init(&h, &err) < 0)
        abort();
    kiln_sink_t sink = kiln_sha256_sink(&h);
    kiln_layer_opts_t o;
    kiln_layer_opts_init(&o);
    o.compression = KILN_COMPRESSION_NONE;
    o.threaded = 0;
    kiln_layer_writer_t *w = NULL;
    if (kiln_layer_writer_new(&o, &sink, &w, &err) == 0) {
        kiln_layer_info_t info;
        if (kiln_layer_writer_add_tar(w, fd, &err) == 0)
            kiln_layer_writer_finish(w, &info, &err);
        kiln_layer_writer_free(w);
    }
    kiln_sha256_dispose(&h);
    close(fd);

    /* 2. the unpacker into base/root, with base/outside as the sentinel */
    if (mkdtemp(base) == NULL)
        abort();
    char root[64], outside[64];
    snprintf(root, sizeof(root), "%s/root", base);
    snprintf(outside, sizeof(outside), "%s/outside", base);
    if (mkdir(root, 0755) < 0 || mkdir(outside, 0755) < 0)
        abort();
    fd = input_fd(data, size);
    kiln_unpack_opts_t uo;
    kiln_unpack_opts_init(&uo);
    uo.chown = 0;
    kiln_layer_unpack(fd, root, &uo, NULL, &err);
    close(fd);
    if (!dir_is_empty(outside) || access("/kiln-fuzz-escape", F_OK) == 0)
        abort();
    kiln_fs_rm_rf(base, NULL);
    return 0;
}
