/* libFuzzer target: .dockerignore parsing and matching. The first line of
 * the input is used as a path to match, the rest as the ignore file. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/dockerfile/dockerignore.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t pl = nl ? (size_t)(nl - (const char *)data) : size;
    char *path = kiln_xstrndup((const char *)data, pl);
    kiln_dockerignore_t *di = NULL;
    kiln_error_t err = {0};

    if (kiln_dockerignore_parse((const char *)data + pl, size - pl, &di, &err) == 0) {
        (void)kiln_dockerignore_excluded(di, path);
        (void)kiln_dockerignore_may_reinclude(di, path);
        (void)kiln_dockerignore_excluded(di, "a/b/c.txt");
        kiln_dockerignore_free(di);
    }
    free(path);
    return 0;
}
