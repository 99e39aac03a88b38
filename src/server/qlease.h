/* kiln worker — max_concurrent across every worker of a queue: the lease objects of
 * qfair.h in the shared context store, counted before a job starts and after its own lease is
 * written (so of two workers racing for a tenant's last slot at least one sees the other and
 * backs off), renewed by the job's heartbeat, deleted when it ends. */
#ifndef KILN_SERVER_QLEASE_H
#define KILN_SERVER_QLEASE_H

#include "utils/aws/client.h"
#include "utils/error.h"

/* The number of live leases under prefix (qfair.h), not counting the one named own_id (may
 * be NULL), at most cap counted. Lapsed leases found are deleted (best effort). -1 when the
 * store could not be asked. */
int kiln_qlease_count(kiln_aws_t *aws, const char *prefix, const char *own_id, int cap,
                      kiln_error_t *err);

/* Writes (or renews) the lease at url: live for ttl_s seconds from now. */
int kiln_qlease_write(kiln_aws_t *aws, const char *url, int ttl_s, const char *worker,
                      kiln_error_t *err);

#endif
