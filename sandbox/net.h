/* kiln — a step's network: loopback, the blocking routes of nat mode and
 * the slirp4netns user-mode stack that gives a step outbound access.
 *
 * nat mode drops, at the point where the step's traffic gets host sockets,
 * every destination the address policy refuses (sandbox/egress.h: public
 * addresses and the host's resolvers only, plus the operator's
 * `--allow-address` entries). On top of that, for fast failures and defense
 * in depth: slirp4netns runs with --disable-host-loopback (10.0.2.2 is not
 * the host's 127.0.0.1) unless the allowlist opens part of 127.0.0.0/8, and
 * `prohibit` routes inside the step's net namespace unroute the non-public
 * ranges the allowlist does not touch (RFC 1918, CGNAT, link-local, 0/8,
 * 240/4; fc00::/7 and fe80::/10), the metadata addresses always, and
 * 10.0.2.2 when the host's loopback stays closed; 10.0.2.0/24 itself stays
 * routed (10.0.2.3 is slirp's DNS forwarder). slirp4netns runs without
 * --enable-ipv6: a step has no IPv6 route off its link. The step has no
 * CAP_NET_ADMIN (cannot remove the routes) and cannot open packet sockets
 * (cannot route around them). */
#ifndef KILN_SANDBOX_NET_H
#define KILN_SANDBOX_NET_H

#include <sys/types.h>

#include "sandbox/egress.h"
#include "utils/error.h"
#include "utils/netpolicy.h"

/* The resolver a nat step uses (slirp's DNS forwarder). */
#define KILN_NET_NAT_DNS "10.0.2.3"

/* Brings "lo" up in the calling process's net namespace. */
int kiln_net_loopback_up(kiln_error_t *err);

/* The policy of a nat step: public addresses and the allowlist entries.
 * Returns -1 naming a bad entry. (The egress filter adds port 53 of the
 * nameservers in the host's /etc/resolv.conf, where slirp forwards the
 * step's 10.0.2.3: the step itself never needs a route to them.) */
int kiln_net_nat_policy(const char *const *allow, size_t n_allow, kiln_netpolicy_t **out,
                        kiln_error_t *err);

/* Adds the nat mode's prohibit routes for policy in the calling process's
 * net namespace (IPv6 ones only where the kernel has IPv6). */
int kiln_net_block_routes(const kiln_netpolicy_t *policy, kiln_error_t *err);

typedef struct kiln_slirp {
    pid_t pid;
    int exit_fd; /* closing it stops slirp4netns */
    kiln_egress_t *egress;
} kiln_slirp_t;

/* Starts slirp4netns under the egress filter (checked against policy plus
 * the host's resolvers on port 53; one line per refusal to log_fd, taken
 * over, may be -1) for the net namespace of `pid` and waits until it has
 * configured tap0 there. */
int kiln_net_slirp_start(pid_t pid, const kiln_netpolicy_t *policy, int log_fd, kiln_slirp_t *out,
                         kiln_error_t *err);

/* Stops slirp4netns, reaps it and ends its egress supervisor. */
void kiln_net_slirp_stop(kiln_slirp_t *s);

#endif
