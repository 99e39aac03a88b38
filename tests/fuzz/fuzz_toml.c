/* libFuzzer target: utils/toml (the whole document into jansson, then dumped). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "utils/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = NULL;
    kiln_error_t err = {0};

    if (kiln_toml_load("fuzz.toml", (const char *)data, size, &doc, &err) == 0) {
        char *s = json_dumps(doc, JSON_COMPACT);
        free(s);
        json_decref(doc);
    }
    return 0;
}
