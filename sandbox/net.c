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

/* Adds one IPv4 route of type RTN_PROHIBIT for addr/len through netlink. */
static int add_prohibit(int nl, const char *addr, unsigned char len, unsigned seq,
                        kiln_error_t *err)
{
    struct {
        struct nlmsghdr nh;
        struct rtmsg rt;
        char attrs[64];
    } req;
    struct rtattr *rta;
    struct in_addr dst;
    char buf[512];
    ssize_t n;

    memset(&req, 0, sizeof(req));
    inet_pton(AF_INET, addr, &dst);
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
    req.nh.nlmsg_type = RTM_NEWROUTE;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    req.nh.nlmsg_seq = seq;
    req.rt.rtm_family = AF_INET;
    req.rt.rtm_dst_len = len;
    req.rt.rtm_table = RT_TABLE_MAIN;
    req.rt.rtm_protocol = RTPROT_STATIC;
    req.rt.rtm_scope = RT_SCOPE_UNIVERSE;
    req.rt.rtm_type = RTN_PROHIBIT;
    rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
    rta->rta_type = RTA_DST;
    rta->rta_len = RTA_LENGTH(sizeof(dst));
    memcpy(RTA_DATA(rta), &dst, sizeof(dst));
    req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);

    if (send(nl, &req, req.nh.nlmsg_len, 0) < 0)
        return kiln_error_set(err, errno, "netlink: adding route %s/%u", addr, len);
    n = recv(nl, buf, sizeof(buf), 0);
    if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)))
        return kiln_error_set(err, n < 0 ? errno : EPROTO, "netlink: no answer for route %s/%u",
                              addr, len);
    {
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (h->nlmsg_type == NLMSG_ERROR && e->error != 0)
            return kiln_error_set(err, -e->error, "netlink: adding route %s/%u", addr, len);
    }
    return 0;
}

int kiln_net_block_routes(kiln_error_t *err)
{
    _cleanup_close_ int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};

    if (nl < 0)
        return kiln_error_set(err, errno, "netlink socket");
    if (bind(nl, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return kiln_error_set(err, errno, "netlink bind");
    if (add_prohibit(nl, "169.254.0.0", 16, 1, err) < 0 ||
        add_prohibit(nl, "10.0.2.2", 32, 2, err) < 0)
        return -1;
    return 0;
}

int kiln_net_slirp_start(pid_t pid, kiln_slirp_t *out, kiln_error_t *err)
{
    int ready[2] = {-1, -1}, ex[2] = {-1, -1};
    char pidstr[16], readyarg[32], exitarg[32];
    pid_t sp;
    char c;
    struct pollfd pfd;
    int r;

    if (pipe2(ready, O_CLOEXEC) < 0)
        return kiln_error_set(err, errno, "pipe for slirp4netns");
    if (pipe2(ex, O_CLOEXEC) < 0) {
        close(ready[0]);
        close(ready[1]);
        return kiln_error_set(err, errno, "pipe for slirp4netns");
    }
    snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
    snprintf(readyarg, sizeof(readyarg), "--ready-fd=%d", 3);
    snprintf(exitarg, sizeof(exitarg), "--exit-fd=%d", 4);
    sp = fork();
    if (sp < 0) {
        r = errno;
        close(ready[0]);
        close(ready[1]);
        close(ex[0]);
        close(ex[1]);
        return kiln_error_set(err, r, "fork for slirp4netns");
    }
    if (sp == 0) {
        int devnull = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* fds 3 and 4 are the ready and exit pipes; everything else closes. */
        if (dup2(ready[1], 900) < 0 || dup2(ex[0], 901) < 0 || dup2(900, 3) < 0 || dup2(901, 4) < 0)
            _exit(127);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        close_range(5, ~0U, 0);
        execlp("slirp4netns", "slirp4netns", "--configure", "--mtu=65520",
               "--disable-host-loopback", readyarg, exitarg, pidstr, "tap0", (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    close(ex[0]);
    pfd.fd = ready[0];
    pfd.events = POLLIN;
    r = poll(&pfd, 1, 30000);
    if (r <= 0 || read(ready[0], &c, 1) != 1) {
        close(ready[0]);
        close(ex[1]);
        kill(sp, SIGKILL);
        waitpid(sp, NULL, 0);
        return kiln_error_set(err, r == 0 ? ETIMEDOUT : 0,
                              "slirp4netns did not configure the step's network");
    }
    close(ready[0]);
    out->pid = sp;
    out->exit_fd = ex[1];
    return 0;
}

void kiln_net_slirp_stop(kiln_slirp_t *s)
{
    if (s->pid <= 0)
        return;
    if (s->exit_fd >= 0)
        close(s->exit_fd);
    s->exit_fd = -1;
    /* It exits when the exit fd closes; make sure of it. */
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        usleep(2000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}
