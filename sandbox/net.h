/* kiln — a step's network: loopback, the blocking routes of nat mode and
 * the slirp4netns user-mode stack that gives a step outbound access.
 *
 * nat mode: slirp4netns --disable-host-loopback (the host's 127.0.0.1 is not
 * reachable through 10.0.2.2), plus routes installed inside the step's net
 * namespace before the step starts that make 169.254.0.0/16 (instance
 * metadata, task credentials) and 10.0.2.2 unreachable. The step has no
 * CAP_NET_ADMIN (cannot remove them) and cannot open packet sockets (cannot
 * route around them). */
#ifndef KILN_SANDBOX_NET_H
#define KILN_SANDBOX_NET_H

#include <sys/types.h>

#include "utils/error.h"

/* The resolver a nat step uses (slirp's DNS forwarder). */
#define KILN_NET_NAT_DNS "10.0.2.3"

/* Brings "lo" up in the calling process's net namespace. */
int kiln_net_loopback_up(kiln_error_t *err);

/* Adds the nat mode's prohibit routes in the calling process's net namespace. */
int kiln_net_block_routes(kiln_error_t *err);

typedef struct kiln_slirp {
    pid_t pid;
    int exit_fd; /* closing it stops slirp4netns */
} kiln_slirp_t;

/* Starts slirp4netns for the net namespace of `pid` and waits until it has
 * configured tap0 there. */
int kiln_net_slirp_start(pid_t pid, kiln_slirp_t *out, kiln_error_t *err);

/* Stops slirp4netns and reaps it. */
void kiln_net_slirp_stop(kiln_slirp_t *s);

#endif
