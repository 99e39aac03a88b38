/* libFuzzer target: plan JSON parse → serialise → parse must agree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    kiln_plan_t *p = NULL, *q = NULL;
    char *a = NULL, *b = NULL;

    if (kiln_plan_from_json((const char *)data, size, &p, &err) < 0)
        return 0;
    if (kiln_plan_to_json(p, &a, &err) == 0 && kiln_plan_from_json(a, strlen(a), &q, &err) == 0 &&
        kiln_plan_to_json(q, &b, &err) == 0 && strcmp(a, b) != 0)
        abort();
    free(a);
    free(b);
    kiln_plan_free(p);
    kiln_plan_free(q);
    return 0;
}
