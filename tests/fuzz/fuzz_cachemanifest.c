/* libFuzzer target: engine/cachemanifest's decoder (a remote cache mount manifest is written
 * by another worker, or anyone with the bucket): what decodes encodes and decodes again to the
 * same bytes, every path of it passes the path check, every range lies in its blob. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cachemanifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_cm_t m = {0}, back = {0};
    kiln_error_t err = {0};
    char *a, *b;
    size_t al, bl;

    if (kiln_cm_decode((const char *)data, size, 1u << 30, "fuzz", &m, &err) < 0)
        return 0;
    for (size_t i = 0; i < m.n; i++) {
        if (kiln_cm_check_path(m.e[i].path, &err) < 0)
            abort();
        for (size_t k = 0; k < m.e[i].n_segs; k++)
            if (m.e[i].segs[k].blob >= m.nb ||
                m.e[i].segs[k].off + m.e[i].segs[k].len > m.blobs[m.e[i].segs[k].blob].size)
                abort();
    }
    a = kiln_cm_encode(&m, &al);
    if (kiln_cm_decode(a, al, 1u << 30, "fuzz", &back, &err) < 0)
        abort();
    b = kiln_cm_encode(&back, &bl);
    if (al != bl || memcmp(a, b, al) != 0)
        abort();
    free(a);
    free(b);
    kiln_cm_clear(&m);
    kiln_cm_clear(&back);
    return 0;
}
