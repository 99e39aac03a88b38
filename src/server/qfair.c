/* kiln worker — fair scheduling of the SQS job queue across tenants (see qfair.h): the
 * message of a received batch to start, and the pure parts of max_concurrent leases. */
#include "src/server/qfair.h"

#include <string.h>

#include <jansson.h>

#include "src/server/sched.h"
#include "src/server/tenant.h"
#include "utils/mem.h"

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

char *kiln_qfair_lease_prefix(const char *done_url, const char *id, const char *tenant)
{
    size_t n, m = strlen("done/") + (id ? strlen(id) : 0);

    if (done_url == NULL || id == NULL)
        return NULL;
    n = strlen(done_url);
    if (n <= m || strncmp(done_url + n - m, "done/", 5) != 0 ||
        strcmp(done_url + n - m + 5, id) != 0)
        return NULL;
    return kiln_xasprintf("%.*srunning/%s/", (int)(n - m), done_url, name_of(tenant));
}

char *kiln_qfair_lease_text(double expires, const char *worker)
{
    json_t *o = json_pack("{s:f,s:s}", "expires", expires, "worker", worker ? worker : "");
    char *text = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    return text ? text : kiln_xstrdup("{}");
}

int kiln_qfair_lease_live(const char *text, double now)
{
    json_t *o = json_loads(text ? text : "", 0, NULL);
    json_t *e = json_object_get(o, "expires");
    int live = json_is_number(e) && json_number_value(e) > now;

    json_decref(o);
    return live;
}
