/* kiln — the address policy for everything a build makes kiln connect to.
 *
 * Tenant code is hostile: a step's network (nat), an ADD URL, a git remote or
 * submodule, a registry named in FROM must not reach the host, its private
 * networks or the cloud's instance metadata. One policy object says which
 * destinations are allowed; it is checked on the address actually connected
 * to (after DNS, on every redirect), never on a name.
 *
 * Classes (kiln_netpolicy_classify), for IPv4 and IPv6 alike (IPv4-mapped,
 * NAT64, 6to4 and Teredo forms are classified by the IPv4 address they carry):
 *   metadata   169.254.169.254 and the other cloud metadata endpoints, fd00:ec2::254
 *   link-local 169.254.0.0/16, fe80::/10
 *   loopback   127.0.0.0/8, 0.0.0.0/8, ::1, ::
 *   private    10/8, 172.16/12, 192.168/16, fc00::/7
 *   cgnat      100.64.0.0/10
 *   reserved   multicast, 240.0.0.0/4, broadcast, ff00::/8
 *   host       one of this host's own interface addresses
 *   public     everything else (TEST-NET ranges included)
 *
 * KILN_NETPOLICY_PUBLIC allows only public addresses, plus the operator's
 * allowlist (`--allow-address CIDR[:PORT]`). KILN_NETPOLICY_NO_LINK_LOCAL
 * allows everything but link-local and metadata addresses (a registry named
 * by the operator on the command line). Metadata addresses are refused by
 * every policy, allowlist or not; link-local ones can be opened by the
 * allowlist only in the PUBLIC mode. */
#ifndef KILN_UTILS_NETPOLICY_H
#define KILN_UTILS_NETPOLICY_H

#include <stdbool.h>
#include <sys/socket.h>

#include "utils/error.h"

#define KILN_NETPOLICY_MAX_RULES 256

typedef enum kiln_netclass {
    KILN_NETCLASS_PUBLIC = 0,
    KILN_NETCLASS_LOOPBACK,
    KILN_NETCLASS_LINK_LOCAL,
    KILN_NETCLASS_METADATA,
    KILN_NETCLASS_PRIVATE,
    KILN_NETCLASS_CGNAT,
    KILN_NETCLASS_RESERVED,
    KILN_NETCLASS_HOST,
} kiln_netclass_t;

typedef enum kiln_netpolicy_mode {
    KILN_NETPOLICY_PUBLIC = 0,
    KILN_NETPOLICY_NO_LINK_LOCAL,
} kiln_netpolicy_mode_t;

typedef struct kiln_netpolicy kiln_netpolicy_t;

/* A new policy in the given mode with an empty allowlist (never NULL). */
kiln_netpolicy_t *kiln_netpolicy_new(kiln_netpolicy_mode_t mode);

/* A new policy in the given mode with the n allowlist entries of allow;
 * -1 naming the first bad entry (nothing allocated then). */
int kiln_netpolicy_with(kiln_netpolicy_mode_t mode, const char *const *allow, size_t n,
                        kiln_netpolicy_t **out, kiln_error_t *err);

/* A copy of p with its allowlist (never NULL). */
kiln_netpolicy_t *kiln_netpolicy_dup(const kiln_netpolicy_t *p);

void kiln_netpolicy_free(kiln_netpolicy_t *p);

kiln_netpolicy_mode_t kiln_netpolicy_mode(const kiln_netpolicy_t *p);

/* Adds an allowlist entry: `CIDR`, `ADDR`, `CIDR:PORT`, `ADDR:PORT`, IPv6 in
 * brackets when a port follows (`[fd00::1]:443`, `[fd00::/8]:3128`).
 * Returns -1 naming the spec when it is not one of these, or when the list
 * is full (KILN_NETPOLICY_MAX_RULES). */
int kiln_netpolicy_allow(kiln_netpolicy_t *p, const char *spec, kiln_error_t *err);

/* Whether spec parses as an allowlist entry; fills err naming it if not. */
int kiln_netpolicy_validate(const char *spec, kiln_error_t *err);

/* Allows port 53 (UDP and TCP) of each `nameserver` in a resolv.conf (the
 * builder's resolver, which a nat step reaches through slirp's DNS
 * forwarder). A missing file adds nothing. Returns -1 on a read error. */
int kiln_netpolicy_allow_resolvers(kiln_netpolicy_t *p, const char *resolv_conf, kiln_error_t *err);

/* Whether an allowlist entry overlaps the range `cidr` ("10.0.0.0/8",
 * "fc00::/7"), whatever its port: the step's nat network then keeps that
 * range routed and leaves the decision to the exact check. False for a cidr
 * that does not parse. */
bool kiln_netpolicy_opens(const kiln_netpolicy_t *p, const char *cidr);

/* The class of an AF_INET / AF_INET6 address (host addresses are not looked
 * up here: KILN_NETCLASS_HOST is only returned by kiln_netpolicy_check). */
kiln_netclass_t kiln_netpolicy_classify(const struct sockaddr *sa, socklen_t len);

/* A short name of the class for messages ("private network (RFC 1918)"). */
const char *kiln_netclass_name(kiln_netclass_t c);

/* Checks a destination. Returns 0 when p allows it; -1 with a message naming
 * the address, its class and the setting that would allow it. Any family
 * other than AF_INET/AF_INET6 is refused. */
int kiln_netpolicy_check(const kiln_netpolicy_t *p, const struct sockaddr *sa, socklen_t len,
                         kiln_error_t *err);

/* The allowlist entry that would open sa, e.g. "10.1.2.3/32" or "[fd00::1]/128"
 * (for messages). Writes at most size bytes. */
void kiln_netpolicy_suggest(const struct sockaddr *sa, socklen_t len, char *out, size_t size);

#endif
