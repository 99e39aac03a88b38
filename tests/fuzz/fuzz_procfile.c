/* libFuzzer target: the Procfile parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "handlers/procfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    char *cmd = NULL;

    if (kiln_procfile_get((const char *)data, size, "web", &cmd, &err) > 0)
        free(cmd);
    return 0;
}
