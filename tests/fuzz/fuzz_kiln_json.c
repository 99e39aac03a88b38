/* libFuzzer target: kiln.json overrides, applied to a plan. */
#include <stddef.h>
#include <stdint.h>

#include "handlers/kiln_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    kiln_overrides_t o;
    kiln_plan_t *p;

    if (kiln_overrides_parse((const char *)data, size, &o, &err) < 0)
        return 0;
    p = kiln_plan_new();
    kiln_overrides_apply(&o, p, &err);
    kiln_plan_free(p);
    kiln_overrides_free(&o);
    return 0;
}
