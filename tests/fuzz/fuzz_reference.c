/* libFuzzer target: the image reference parser must never crash, and what it
 * accepts must format back into something it accepts again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/reference.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_reference_t r = {0}, r2 = {0};
    kiln_error_t err = {0};
    char *s = malloc(size + 1);
    char *f;

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (kiln_reference_parse(s, &r, &err) == 0) {
        f = kiln_reference_format(&r);
        if (kiln_reference_parse(f, &r2, &err) != 0 || strcmp(r.repository, r2.repository) != 0)
            abort();
        free(f);
        kiln_reference_free(&r2);
        kiln_reference_free(&r);
    }
    free(s);
    return 0;
}
