/* libFuzzer target: the docker-archive and OCI archive readers on arbitrary
 * tar input must never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "oci/docker_archive.h"
#include "oci/layout.h"
#include "utils/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_docker_archive_image_t *img = NULL;
    kiln_layout_image_t *li = NULL;
    char path[64];
    int fd = memfd_create("kiln-fuzz-archive", MFD_CLOEXEC);

    if (fd < 0)
        return 0;
    if (kiln_fs_write_all(fd, data, size, NULL) == 0) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (kiln_docker_archive_read(path, 0, NULL, &img, NULL) == 0)
            kiln_docker_archive_image_free(img);
        if (kiln_layout_resolve(path, NULL, &li, NULL) == 0)
            kiln_layout_image_free(li);
    }
    close(fd);
    return 0;
}
