/* libFuzzer target: a zTOC (SOCI flatbuffers) read back from a registry, and the tar
 * stream walker of the TOC. Decoding must never read outside the input; a zTOC that
 * decodes must encode and decode again to the same entries. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "oci/ztoc.h"
#include "oci/ztoc_tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    kiln_ztoc_t *z = NULL, *z2 = NULL;
    kiln_ztoc_tar_t tar = {0};
    uint8_t *buf = NULL;
    size_t len = 0;

    if (kiln_ztoc_decode(data, size, &z, &err) == 0) {
        if (kiln_ztoc_encode(z, &buf, &len, &err) < 0 ||
            kiln_ztoc_decode(buf, len, &z2, &err) < 0 || z2->n_files != z->n_files)
            abort();
        for (size_t i = 0; i < z->n_files; i++)
            if (kiln_ztoc_file_compare(&z->files[i], &z2->files[i], &err) < 0)
                abort();
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
