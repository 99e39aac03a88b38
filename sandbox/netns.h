/* kiln — empty network namespaces reused by the --network none steps of one build.
 *
 * Creating a network namespace costs a step ~0.25 ms of kiln's CPU in clone (loopback,
 * sysctl tables, the per-namespace protocol state) and its teardown more in a kernel
 * worker. The steps of one build belong to one tenant, so a build keeps a few namespaces
 * and gives each sandboxed --network none step one of them, alone, for its whole run.
 *
 * Why a step cannot leave anything in one for the next (docs/security.md, "Network
 * namespaces reused across steps"): the namespace is made and owned by kiln (host root,
 * the initial user namespace), so a step — root only of its own user namespace — holds no
 * capability over it: it cannot change its interfaces, addresses, routes, firewall or
 * sysctls (/proc/sys is also read-only in a step). What it can make are sockets, and
 * they live in the kernel as long as a process (or a TIME_WAIT/orphan state) holds them:
 * before the next step runs in it (every process of the last one gone), kiln reads the
 * namespace's socket counts (its /proc/net/sockstat, kept open from when kiln made it)
 * and reuses it only when no socket of any family and no TIME_WAIT entry is left;
 * anything else, and the namespace is dropped and the step gets a new one. TCP metrics are not
 * saved (tcp_no_metrics_save), so no connection leaves a cached route metric either.
 *
 * A step with CAP_NET_ADMIN or CAP_NET_RAW (RUN --security=insecure), any other network
 * mode or isolation gets its own namespace as before. */
#ifndef KILN_SANDBOX_NETNS_H
#define KILN_SANDBOX_NETNS_H

#include "utils/error.h"

typedef struct kiln_netns_pool kiln_netns_pool_t;

/* An empty pool (no namespace is made before a step needs one). Never NULL. */
kiln_netns_pool_t *kiln_netns_pool_new(void);

/* Closes the namespaces the pool keeps (the kernel frees them). NULL is ignored. */
void kiln_netns_pool_free(kiln_netns_pool_t *pool);

/* A clean namespace for one step, alone: an idle one of the pool that holds no socket
 * and no TIME_WAIT entry (one that does is dropped), or one made now (loopback up, ping
 * sockets open to the step ids, low ports open, no TCP metrics saved). Returns its slot
 * (>= 0, for kiln_netns_give) and sets *ns_fd, or -1 with err set. */
int kiln_netns_take(kiln_netns_pool_t *pool, int *ns_fd, kiln_error_t *err);

/* Hands a slot back once every process of its step is gone. */
void kiln_netns_give(kiln_netns_pool_t *pool, int slot);

/* Moves the calling thread (only) into the namespace ns_fd, so that a child it clones
 * starts there; *host_fd keeps the thread's own namespace for kiln_netns_leave. Returns
 * 0, or -1 with errno set. */
int kiln_netns_enter(int ns_fd, int *host_fd);

/* Moves the calling thread back into host_fd (from kiln_netns_enter) and closes it.
 * Aborts the process if it cannot: the thread would go on working in an empty network. */
void kiln_netns_leave(int host_fd);

#endif
