/* kiln — the egress filter of a step's nat network.
 *
 * A nat step's packets leave the machine through slirp4netns, which runs in
 * the host's network namespace and opens a host socket for each of the
 * step's TCP connections and UDP/ICMP flows. Routes inside the step's
 * namespace only unroute; the drop happens here, where the host sockets are
 * made: slirp4netns runs under a seccomp filter installed in its forked
 * child before exec, which sends `connect`, `sendto` with a destination
 * (args[4] != NULL; `send` on a connected socket stays in BPF as allowed, so
 * bulk traffic is not slowed), `sendmsg` and `sendmmsg` to user notification
 * (SECCOMP_FILTER_FLAG_NEW_LISTENER). A supervisor thread in kiln reads each
 * destination from /proc/PID/mem, checks it with the address policy
 * (utils/netpolicy.h: public addresses, the operator's allowlist, the host's
 * resolvers on port 53) and lets the call continue or fails it with
 * ENETUNREACH (slirp then answers the step with an ICMP unreachable).
 *
 * Time of check to time of use: the kernel re-reads the sockaddr after
 * CONTINUE, so a process that could rewrite its own memory between the
 * check and the call could pass. Here the process is slirp4netns, trusted
 * code that copies the destination from the step's packet into its own
 * stack before the call; the step cannot write slirp's memory. An attacker
 * has to exploit slirp4netns first, and then has its (root) privileges
 * anyway. The filter also fails io_uring_setup (a ring's IORING_OP_CONNECT
 * would pass it) and kills other syscall ABIs (x32, i386), which slirp never
 * uses. */
#ifndef KILN_SANDBOX_EGRESS_H
#define KILN_SANDBOX_EGRESS_H

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/socket.h>

#include "utils/error.h"
#include "utils/netpolicy.h"

/* Most refusals one step logs (then one line says more were dropped). */
#define KILN_EGRESS_MAX_LOG 50

typedef struct kiln_egress kiln_egress_t;

/* The BPF program of the filter (static; the caller must not free it). */
const struct sock_fprog *kiln_egress_filter(void);

/* In a forked child about to exec slirp4netns: installs the filter and
 * hands its listener to the parent over hand_fd (the fd number, or -errno),
 * then waits for the parent's byte saying it has taken it. The listener is
 * close-on-exec: the filtered program never holds it. Allocates nothing.
 * Returns 0 or -errno. */
int kiln_egress_install_and_hand(int hand_fd);

/* The parent's side: takes the child's listener (pidfd_getfd) as told over
 * hand_fd (waiting at most 10 s) and lets the child go on. */
int kiln_egress_take(pid_t child, int hand_fd, int *listener, kiln_error_t *err);

/* Decides one trapped call of the process whose memory mem_fd is
 * (/proc/PID/mem): 0 to let it continue, else the errno to fail it with,
 * why filled naming the address, its class and the --allow-address that
 * would open it. A destination that cannot be read is refused. */
int kiln_egress_decide(int mem_fd, const struct seccomp_notif *n, const kiln_netpolicy_t *policy,
                       kiln_error_t *why);

/* Starts the supervisor thread on listener (taken over, closed by
 * kiln_egress_stop) with a copy of policy. Each refusal is written as one
 * line ("network: refused …\n") to log_fd (non-blocking; may be -1; taken
 * over). The thread ends when the filtered processes are gone or at stop. */
int kiln_egress_start(int listener, const kiln_netpolicy_t *policy, int log_fd, kiln_egress_t **out,
                      kiln_error_t *err);

/* Stops the thread and frees e (NULL is fine). */
void kiln_egress_stop(kiln_egress_t *e);

#endif
