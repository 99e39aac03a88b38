/* libFuzzer target: handlers/node_pm's packageManager parser (corepack's NAME@VERSION+HASH)
 * and the release lines of a pnpm-lock.yaml and a Berry yarn.lock. The input is the
 * field's value, then the lockfile text (one string each way). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/node_pm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    kiln_node_pm_field_t f;
    kiln_error_t err = {0};

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (kiln_node_pm_parse(s, &f, &err) > 0)
        kiln_node_pm_field_release(&f);
    (void)kiln_node_pm_pnpm_line(s);
    (void)kiln_node_pm_berry_line(s);
    free(s);
    return 0;
}
