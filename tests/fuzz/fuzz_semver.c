/* libFuzzer target: utils/semver (range parser, version parser, matching).
 * The input's first line is a range, the rest versions one per line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utils/semver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *nl, *versions[16];
    size_t n = 0;
    kiln_error_t err = {0};

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *p = (nl = strchr(text, '\n')) ? nl + 1 : NULL; p && n < 16; p = nl ? nl + 1 : NULL) {
        if (nl)
            *nl = '\0';
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        versions[n++] = p;
    }
    if (kiln_semver_range_check(text, &err) == 0)
        (void)kiln_semver_max_satisfying(text, (const char *const *)versions, n, &err);
    for (size_t i = 0; i < n; i++)
        (void)kiln_semver_satisfies(text, versions[i]);
    free(text);
    return 0;
}
