/* kiln server — fair scheduling of the local queue across tenants: the next build to
 * start belongs to the tenant after the one served last (tenants in name order, round
 * robin) among those with queued builds and fewer running than their max_concurrent. One
 * tenant's many queued builds thus never hold back another tenant's build by more than one
 * turn of each tenant. Pure: the worker pool gathers the counts (db.h) and keeps `last`. */
#ifndef KILN_SERVER_SCHED_H
#define KILN_SERVER_SCHED_H

#include <stddef.h>
#include <stdint.h>

typedef struct kiln_sched_tenant {
    const char *name;
    int64_t queued;         /* builds waiting to start */
    int64_t running;        /* builds started and not finished */
    int64_t max_concurrent; /* most running at once; 0 = unbounded */
} kiln_sched_tenant_t;

/* The index in t[0..n) of the tenant whose build starts next: the first one after `last`
 * (NULL or "": from the start) in name order, wrapping around, that has a queued build and
 * room under its max_concurrent. -1 when no tenant may start a build. */
int kiln_sched_pick(const kiln_sched_tenant_t *t, size_t n, const char *last);

#endif
