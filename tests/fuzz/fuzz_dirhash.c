/* libFuzzer target: utils/dirhash (the h1 of a hostile module zip: names, duplicates,
 * entries outside the module prefix). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "utils/dirhash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    char *h1 = NULL;

    if (kiln_dirhash_zip(data, size, "m@v1/", "m@v1", &h1, &err) == 0)
        free(h1);
    return 0;
}
