/* libFuzzer target: the WWW-Authenticate parser must never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/www_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_www_auth_t a = {0};
    kiln_error_t err = {0};
    char *s = malloc(size + 1);

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (kiln_www_auth_parse(s, &a, &err) == 0) {
        if (a.scheme == KILN_WWW_AUTH_BEARER && a.realm == NULL)
            abort();
        kiln_www_auth_free(&a);
    }
    free(s);
    return 0;
}
