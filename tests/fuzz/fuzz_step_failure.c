/* libFuzzer target: job/explain over arbitrary failure messages (the engine's
 * wording with a step's own output in it) and a plan whose commands come from
 * the input's first line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/plan.h"
#include "job/explain.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t cl = nl ? (size_t)(nl - (const char *)data) : 0;
    char *cmd = kiln_xstrndup((const char *)data, cl);
    char *msg = kiln_xstrndup((const char *)data + (nl ? cl + 1 : 0), size - (nl ? cl + 1 : 0));
    kiln_plan_t *p = kiln_plan_new();
    char *t;

    kiln_plan_set(&p->provider, "node");
    kiln_plan_set(&p->build, cmd);
    kiln_plan_set(&p->install, "npm ci");
    kiln_plan_why(p, KILN_WHY_BUILD, "kiln.json \"build\"");
    t = kiln_explain_step_failure(p, NULL, msg);
    free(t);
    kiln_plan_free(p);
    free(msg);
    free(cmd);
    return 0;
}
