#include "src/server/qfair.h"

#include <string.h>

#include "src/server/sched.h"
#include "src/server/tenant.h"

static const char *name_of(const char *t)
{
    return t ? t : KILN_TENANT_DEFAULT;
}

int kiln_qfair_pick(const char *const *tenants, const unsigned char *skip, size_t n,
                    const char *last)
{
    kiln_sched_tenant_t t[KILN_QFAIR_BATCH] = {{0}};
    size_t nt = 0, i, k;
    int pick;

    for (i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        for (k = 0; k < nt && strcmp(t[k].name, name_of(tenants[i])) != 0; k++)
            ;
        if (k == nt) {
            if (nt == KILN_QFAIR_BATCH)
                continue; /* more than a batch: the rest waits for the next one */
            t[nt++] = (kiln_sched_tenant_t){.name = name_of(tenants[i])};
        }
        t[k].queued++;
    }
    pick = kiln_sched_pick(t, nt, last);
    if (pick < 0)
        return -1;
    for (i = 0; i < n; i++)
        if (!(skip && skip[i]) && strcmp(name_of(tenants[i]), t[pick].name) == 0)
            return (int)i;
    return -1;
}
