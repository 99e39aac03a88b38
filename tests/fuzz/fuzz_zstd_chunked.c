/* libFuzzer target: a zstd:chunked layer read back (oci/zstd_chunked: footer, TOC frame,
 * TOC JSON, every file's frame) must fail cleanly or pass, never read outside the blob,
 * crash or leak, whatever the bytes; the input is the blob. With the annotations the blob's
 * own footer implies it must verify the same way as without. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "oci/zstd_chunked.h"
#include "utils/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    json_t *toc = NULL;
    int fd = memfd_create("fuzz-zstd-chunked", MFD_CLOEXEC), r;
    if (fd < 0 || kiln_fs_write_all(fd, data, size, &err) < 0)
        abort();
    r = kiln_zstd_chunked_verify(fd, size, NULL, NULL, &toc, &err);
    if (r == 0) {
        if (toc == NULL)
            abort();
        json_decref(toc);
    } else if (toc != NULL) {
        abort(); /* nothing is written on failure */
    }
    close(fd);
    return 0;
}
