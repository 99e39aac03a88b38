/* kiln — loopback, nat blocking routes (netlink) and slirp4netns. */
#include "sandbox/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "utils/cleanup.h"

int kiln_net_loopback_up(kiln_error_t *err)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;

    if (s < 0)
        return kiln_error_set(err, errno, "socket for loopback");
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return kiln_error_set(err, errno, "reading flags of lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return kiln_error_set(err, errno, "bringing lo up");
    return 0;
}

/* Adds one route of type RTN_PROHIBIT for cidr ("10.0.0.0/8", "fc00::/7")
 * through netlink. */
static int add_prohibit(int nl, const char *cidr, unsigned seq, kiln_error_t *err)
{
    struct {
        struct nlmsghdr nh;
        struct rtmsg rt;
        char attrs[64];
    } req;
    struct rtattr *rta;
    unsigned char dst[16];
    char addr[INET6_ADDRSTRLEN], buf[512];
    const char *slash = strchr(cidr, '/');
    size_t alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
    int family = strchr(cidr, ':') ? AF_INET6 : AF_INET;
    size_t dlen = family == AF_INET ? 4 : 16;
    ssize_t n;

    if (alen >= sizeof(addr))
        return kiln_error_set(err, EINVAL, "route %s", cidr);
    memcpy(addr, cidr, alen);
    addr[alen] = '\0';
    if (inet_pton(family, addr, dst) != 1)
        return kiln_error_set(err, EINVAL, "route %s", cidr);
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
    req.nh.nlmsg_type = RTM_NEWROUTE;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    req.nh.nlmsg_seq = seq;
    req.rt.rtm_family = (unsigned char)family;
    req.rt.rtm_dst_len = (unsigned char)(slash ? strtoul(slash + 1, NULL, 10) : dlen * 8);
    req.rt.rtm_table = RT_TABLE_MAIN;
    req.rt.rtm_protocol = RTPROT_STATIC;
    req.rt.rtm_scope = RT_SCOPE_UNIVERSE;
    req.rt.rtm_type = RTN_PROHIBIT;
    rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
    rta->rta_type = RTA_DST;
    rta->rta_len = (unsigned short)RTA_LENGTH(dlen);
    memcpy(RTA_DATA(rta), dst, dlen);
    req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);

    if (send(nl, &req, req.nh.nlmsg_len, 0) < 0)
        return kiln_error_set(err, errno, "netlink: adding route %s", cidr);
    n = recv(nl, buf, sizeof(buf), 0);
    if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)))
        return kiln_error_set(err, n < 0 ? errno : EPROTO, "netlink: no answer for route %s", cidr);
    {
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (h->nlmsg_type == NLMSG_ERROR && e->error != 0)
            return kiln_error_set(err, -e->error, "netlink: adding route %s", cidr);
    }
    return 0;
}

int kiln_net_nat_policy(const char *const *allow, size_t n_allow, kiln_netpolicy_t **out,
                        kiln_error_t *err)
{
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);

    for (size_t i = 0; i < n_allow; i++) {
        if (kiln_netpolicy_allow(p, allow[i], err) < 0) {
            kiln_netpolicy_free(p);
            return -1;
        }
    }
    *out = p;
    return 0;
}

/* The non-public ranges a nat step gets prohibit routes for, unless the
 * allowlist opens part of one (the exact check in the egress filter then
 * decides). 10.0.2.0/24 is slirp's own link and stays routed (more specific). */
static const char *const blocked_ranges[] = {
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "0.0.0.0/8",  "240.0.0.0/4",   "fc00::/7",       "fe80::/10",
};

/* Never opened, whatever the allowlist says. */
static const char *const metadata_hosts[] = {
    "169.254.169.254/32",
    "169.254.170.2/32",
    "169.254.170.23/32",
    "fd00:ec2::254/128",
};

int kiln_net_block_routes(const kiln_netpolicy_t *policy, kiln_error_t *err)
{
    _cleanup_close_ int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    const char *routes[32];
    size_t n = 0;
    unsigned seq = 1;

    if (nl < 0)
        return kiln_error_set(err, errno, "netlink socket");
    if (bind(nl, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return kiln_error_set(err, errno, "netlink bind");
    for (size_t i = 0; i < sizeof(blocked_ranges) / sizeof(blocked_ranges[0]); i++)
        if (!kiln_netpolicy_opens(policy, blocked_ranges[i]))
            routes[n++] = blocked_ranges[i];
    for (size_t i = 0; i < sizeof(metadata_hosts) / sizeof(metadata_hosts[0]); i++)
        routes[n++] = metadata_hosts[i];
    /* the host's loopback, as slirp shows it to the step */
    if (!kiln_netpolicy_opens(policy, "127.0.0.0/8"))
        routes[n++] = "10.0.2.2/32";
    for (size_t i = 0; i < n; i++) {
        kiln_error_t rerr = {0};
        if (add_prohibit(nl, routes[i], seq++, &rerr) == 0)
            continue;
        /* a kernel without IPv6 (or with it disabled) has no IPv6 to block */
        if (strchr(routes[i], ':') &&
            (rerr.code == EAFNOSUPPORT || rerr.code == EACCES || rerr.code == EOPNOTSUPP))
            continue;
        /* an IPv6 range already taken by a metadata host or the other way round */
        if (rerr.code == EEXIST)
            continue;
        if (err)
            *err = rerr;
        return -1;
    }
    return 0;
}

int kiln_net_slirp_start(pid_t pid, const kiln_netpolicy_t *policy, int log_fd, kiln_slirp_t *out,
                         kiln_error_t *err)
{
    int ready[2] = {-1, -1}, ex[2] = {-1, -1}, hand[2] = {-1, -1}, listener = -1;
    kiln_netpolicy_t *checked = kiln_netpolicy_dup(policy);
    char pidstr[16], readyarg[32], exitarg[32];
    const char *argv[10] = {"slirp4netns", "--configure", "--mtu=65520", readyarg, exitarg};
    size_t argc = 5;
    pid_t sp = -1;
    char c;
    struct pollfd pfd;
    int r;

    out->pid = 0;
    out->exit_fd = -1;
    out->egress = NULL;
    /* slirp forwards the step's DNS (10.0.2.3) to the host's resolvers */
    if (kiln_netpolicy_allow_resolvers(checked, "/etc/resolv.conf", err) < 0)
        goto fail;
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, hand) < 0) {
        kiln_error_set(err, errno, "pipe for slirp4netns");
        goto fail;
    }
    snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
    snprintf(readyarg, sizeof(readyarg), "--ready-fd=%d", 3);
    snprintf(exitarg, sizeof(exitarg), "--exit-fd=%d", 4);
    /* the host's 127.0.0.1 as 10.0.2.2 only when the operator opened loopback */
    if (!kiln_netpolicy_opens(policy, "127.0.0.0/8"))
        argv[argc++] = "--disable-host-loopback";
    argv[argc++] = pidstr;
    argv[argc++] = "tap0";
    argv[argc] = NULL;
    sp = fork();
    if (sp < 0) {
        kiln_error_set(err, errno, "fork for slirp4netns");
        goto fail;
    }
    if (sp == 0) {
        int devnull = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* fds 3 and 4 are the ready and exit pipes, 5 the handoff of the
         * egress filter's listener; everything else closes. */
        if (dup2(ready[1], 900) < 0 || dup2(ex[0], 901) < 0 || dup2(hand[1], 902) < 0 ||
            dup2(900, 3) < 0 || dup2(901, 4) < 0 || dup2(902, 5) < 0)
            _exit(127);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        close_range(6, ~0U, 0);
        if (kiln_egress_install_and_hand(5) < 0)
            _exit(126);
        close(5);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(ready[1]);
    close(ex[0]);
    close(hand[1]);
    ready[1] = ex[0] = hand[1] = -1;
    /* the supervisor runs before slirp configures anything: its calls trap too */
    if (kiln_egress_take(sp, hand[0], &listener, err) < 0 ||
        kiln_egress_start(listener, checked, log_fd, &out->egress, err) < 0) {
        log_fd = -1; /* taken over by kiln_egress_start, even when it fails */
        kiln_error_prefix(err, "slirp4netns");
        goto fail;
    }
    log_fd = -1;
    pfd.fd = ready[0];
    pfd.events = POLLIN;
    r = poll(&pfd, 1, 30000);
    if (r <= 0 || read(ready[0], &c, 1) != 1) {
        kiln_error_set(err, r == 0 ? ETIMEDOUT : 0,
                       "slirp4netns did not configure the step's network");
        goto fail;
    }
    close(ready[0]);
    close(hand[0]);
    kiln_netpolicy_free(checked);
    out->pid = sp;
    out->exit_fd = ex[1];
    return 0;
fail:
    if (sp > 0) {
        kill(sp, SIGKILL);
        waitpid(sp, NULL, 0);
    }
    kiln_egress_stop(out->egress);
    out->egress = NULL;
    for (int i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (ex[i] >= 0)
            close(ex[i]);
        if (hand[i] >= 0)
            close(hand[i]);
    }
    if (log_fd >= 0)
        close(log_fd);
    kiln_netpolicy_free(checked);
    return -1;
}

void kiln_net_slirp_stop(kiln_slirp_t *s)
{
    if (s->pid > 0) {
        if (s->exit_fd >= 0)
            close(s->exit_fd);
        s->exit_fd = -1;
        /* It exits when the exit fd closes; make sure of it. */
        for (int i = 0; i < 100 && s->pid > 0; i++) {
            if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
                s->pid = 0;
            else
                usleep(2000);
        }
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    /* no process is left under the filter: the supervisor can go */
    kiln_egress_stop(s->egress);
    s->egress = NULL;
}
