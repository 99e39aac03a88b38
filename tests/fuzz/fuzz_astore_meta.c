/* libFuzzer target: oci/additional_store's chain metadata check (a chain's JSON against the two
 * layers asked for): never crashes; accepts only a document naming exactly those layers, and
 * the one it accepts is accepted again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/additional_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_astore_layer_t l[2];
    kiln_error_t err = {0};

    kiln_digest_bytes("blob0", 5, &l[0].digest);
    kiln_digest_bytes("diff0", 5, &l[0].diff_id);
    kiln_digest_bytes("blob1", 5, &l[1].digest);
    kiln_digest_bytes("diff1", 5, &l[1].diff_id);
    if (kiln_astore_meta_check((const char *)data, size, l, 2, "fuzz.json", &err) == 0 &&
        kiln_astore_meta_check((const char *)data, size, l, 1, "fuzz.json", &err) == 0)
        abort(); /* two layers' metadata cannot also be one layer's */
    return 0;
}
