/* kiln server — fair scheduling of the local queue across tenants (see sched.h): round robin
 * over the tenants with queued builds and a free slot. */
#include "src/server/sched.h"

#include <string.h>

/* Whether tenant t may start a build now. */
static int runnable(const kiln_sched_tenant_t *t)
{
    return t->name && t->queued > 0 && (t->max_concurrent <= 0 || t->running < t->max_concurrent);
}

int kiln_sched_pick(const kiln_sched_tenant_t *t, size_t n, const char *last)
{
    int after = -1, first = -1; /* the smallest name after last; the smallest of all */

    for (size_t i = 0; i < n; i++) {
        if (!runnable(&t[i]))
            continue;
        if (first < 0 || strcmp(t[i].name, t[first].name) < 0)
            first = (int)i;
        if (last && strcmp(t[i].name, last) > 0 &&
            (after < 0 || strcmp(t[i].name, t[after].name) < 0))
            after = (int)i;
    }
    return after >= 0 ? after : first;
}
