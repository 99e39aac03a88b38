/* Unit tests for sandbox/egress: the decision on a trapped call (read from
 * this process's own memory), and the filter with its supervisor on a real
 * child (in a network namespace of its own: nothing can leave it). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/egress.h"
#include "sandbox/net.h"
#include "utils/cleanup.h"
#include "utils/error.h"
#include "utils/netpolicy.h"

static void v4(struct sockaddr_in *s, const char *addr, unsigned port)
{
    memset(s, 0, sizeof(*s));
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, addr, &s->sin_addr), 1);
}

/* A notification as the kernel would fill it for nr(args...). */
static struct seccomp_notif notif(int nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                                  uint64_t a4, uint64_t a5)
{
    struct seccomp_notif n;
    memset(&n, 0, sizeof(n));
    n.pid = (uint32_t)getpid();
    n.data.nr = nr;
    n.data.args[0] = a0;
    n.data.args[1] = a1;
    n.data.args[2] = a2;
    n.data.args[3] = a3;
    n.data.args[4] = a4;
    n.data.args[5] = a5;
    return n;
}

#define P(x) ((uint64_t)(uintptr_t)(x))

static void test_decide(void **state)
{
    _cleanup_close_ int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);
    kiln_error_t why = {0};
    struct sockaddr_in pub, priv, lo, meta;
    struct sockaddr_in6 ula;
    struct sockaddr_storage unix_sa = {.ss_family = AF_UNIX}, packet = {.ss_family = 17};
    struct seccomp_notif n;
    struct msghdr mh = {0};
    struct mmsghdr mm[2];
    (void)state;

    assert_true(mem >= 0);
    v4(&pub, "203.0.113.5", 443);
    v4(&priv, "10.203.0.1", 8080);
    v4(&lo, "127.0.0.1", 8080);
    v4(&meta, "169.254.169.254", 80);
    memset(&ula, 0, sizeof(ula));
    ula.sin6_family = AF_INET6;
    ula.sin6_port = htons(80);
    inet_pton(AF_INET6, "fd00:ec2::254", &ula.sin6_addr);

    n = notif(__NR_connect, 3, P(&pub), sizeof(pub), 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), 0);
    n = notif(__NR_connect, 3, P(&priv), sizeof(priv), 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), ENETUNREACH);
    assert_non_null(strstr(why.msg, "10.203.0.1 port 8080"));
    assert_non_null(strstr(why.msg, "--allow-address 10.203.0.1/32"));
    n = notif(__NR_connect, 3, P(&ula), sizeof(ula), 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), ENETUNREACH);
    assert_non_null(strstr(why.msg, "fd00:ec2::254"));
    assert_non_null(strstr(why.msg, "never allowed"));
    /* slirp's local sockets pass, other families do not */
    n = notif(__NR_connect, 3, P(&unix_sa), sizeof(unix_sa), 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), 0);
    n = notif(__NR_connect, 3, P(&packet), sizeof(packet), 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), EACCES);
    /* an address kiln cannot read is refused */
    n = notif(__NR_connect, 3, 8, sizeof(pub), 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), EACCES);

    /* sendto: the destination is args[4]; NULL is a plain send */
    n = notif(__NR_sendto, 3, P("x"), 1, 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), 0);
    n = notif(__NR_sendto, 3, P("x"), 1, 0, P(&meta), sizeof(meta));
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), ENETUNREACH);
    assert_non_null(strstr(why.msg, "169.254.169.254"));

    /* sendmsg: msg_name, or none on a connected socket */
    n = notif(__NR_sendmsg, 3, P(&mh), 0, 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), 0);
    mh.msg_name = &lo;
    mh.msg_namelen = sizeof(lo);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), ENETUNREACH);
    assert_non_null(strstr(why.msg, "loopback"));

    /* sendmmsg: one refused message refuses the call */
    memset(mm, 0, sizeof(mm));
    mm[0].msg_hdr.msg_name = &pub;
    mm[0].msg_hdr.msg_namelen = sizeof(pub);
    mm[1].msg_hdr.msg_name = &priv;
    mm[1].msg_hdr.msg_namelen = sizeof(priv);
    n = notif(__NR_sendmmsg, 3, P(mm), 1, 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), 0);
    n = notif(__NR_sendmmsg, 3, P(mm), 2, 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), ENETUNREACH);
    assert_non_null(strstr(why.msg, "10.203.0.1"));

    /* the operator's allowlist opens exactly what it names */
    assert_int_equal(kiln_netpolicy_allow(p, "10.203.0.0/24:8080", &why), 0);
    n = notif(__NR_connect, 3, P(&priv), sizeof(priv), 0, 0, 0);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), 0);
    priv.sin_port = htons(22);
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), ENETUNREACH);
    assert_int_equal(kiln_netpolicy_allow(p, "169.254.0.0/16", &why), 0);
    n = notif(__NR_sendto, 3, P("x"), 1, 0, P(&meta), sizeof(meta));
    assert_int_equal(kiln_egress_decide(mem, &n, p, &why), ENETUNREACH);
    kiln_netpolicy_free(p);
}

static void test_filter_program(void **state)
{
    const struct sock_fprog *f = kiln_egress_filter();
    int rets = 0;
    (void)state;
    assert_non_null(f);
    assert_true(f->len > 8);
    /* its last instruction allows: anything not trapped goes through */
    assert_int_equal(f->filter[f->len - 1].code, BPF_RET | BPF_K);
    assert_int_equal(f->filter[f->len - 1].k, SECCOMP_RET_ALLOW);
    for (unsigned i = 0; i < f->len; i++)
        if (f->filter[i].code == (BPF_RET | BPF_K) && f->filter[i].k == SECCOMP_RET_USER_NOTIF)
            rets++;
    assert_int_equal(rets, 2);
}

/* What the child under the filter does; returns the number of the first
 * check that failed, 0 when all passed. hand is its end of the handoff
 * socket, go says when the supervisor has been stopped. */
static int child_checks(int hand)
{
    struct sockaddr_in allowed, other, priv;
    struct iovec iov = {.iov_base = "m", .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct mmsghdr mm[2];
    char buf[8];
    int r, s, c, tcp;

    v4(&allowed, "127.0.0.1", 5555);
    v4(&other, "127.0.0.1", 5556);
    v4(&priv, "10.203.0.1", 80);
    r = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r < 0 || s < 0 || c < 0 || tcp < 0 || bind(r, (struct sockaddr *)&allowed, sizeof(allowed)))
        return 1;
    if (kiln_egress_install_and_hand(hand) < 0)
        return 2;
    /* 3: an allowlisted destination gets the datagram */
    if (sendto(s, "a", 1, 0, (struct sockaddr *)&allowed, sizeof(allowed)) != 1 ||
        recv(r, buf, sizeof(buf), 0) != 1 || buf[0] != 'a')
        return 3;
    /* 4: another port of the same address is refused, nothing arrives */
    if (sendto(s, "b", 1, 0, (struct sockaddr *)&other, sizeof(other)) != -1 ||
        errno != ENETUNREACH)
        return 4;
    /* 5: a private address is refused at connect (logged) */
    if (connect(tcp, (struct sockaddr *)&priv, sizeof(priv)) != -1 || errno != ENETUNREACH)
        return 5;
    /* 6: sendmsg to a refused destination */
    mh.msg_name = &other;
    mh.msg_namelen = sizeof(other);
    if (sendmsg(s, &mh, 0) != -1 || errno != ENETUNREACH)
        return 6;
    /* 7: sendmmsg with one refused message sends nothing */
    memset(mm, 0, sizeof(mm));
    mm[0].msg_hdr = mh;
    mm[0].msg_hdr.msg_name = &allowed;
    mm[1].msg_hdr = mh;
    if (sendmmsg(s, mm, 2, 0) != -1 || errno != ENETUNREACH ||
        recv(r, buf, sizeof(buf), MSG_DONTWAIT) != -1)
        return 7;
    /* 8: a connected socket's plain send */
    if (connect(c, (struct sockaddr *)&allowed, sizeof(allowed)) < 0 || send(c, "c", 1, 0) != 1 ||
        recv(r, buf, sizeof(buf), 0) != 1 || buf[0] != 'c')
        return 8;
    /* 9: with the supervisor gone, trapped calls fail (ENOSYS) while a plain
     * send, never trapped, still works */
    if (write(hand, "s", 1) != 1 || read(hand, buf, 1) != 1)
        return 9;
    if (sendto(s, "d", 1, 0, (struct sockaddr *)&allowed, sizeof(allowed)) != -1 || errno != ENOSYS)
        return 10;
    if (send(c, "e", 1, 0) != 1 || recv(r, buf, sizeof(buf), 0) != 1 || buf[0] != 'e')
        return 11;
    return 0;
}

/* Whether this process may make network namespaces (root, and not refused
 * by the machine): the tests that run real traffic need one of their own. */
static bool can_unshare_net(void)
{
    int st = 0;
    pid_t pid;

    if (geteuid() != 0)
        return false;
    pid = fork();
    if (pid == 0)
        _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_supervisor(void **state)
{
    int hand[2], logp[2], listener = -1, st = 0;
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);
    kiln_egress_t *e = NULL;
    kiln_error_t err = {0};
    char log[4096], c;
    ssize_t n;
    pid_t pid;
    (void)state;

    if (!can_unshare_net()) {
        skip();
        return;
    }
    assert_int_equal(kiln_netpolicy_allow(p, "127.0.0.1:5555", &err), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, hand), 0);
    assert_int_equal(pipe2(logp, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kiln_error_t cerr = {0};
        close(hand[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* a network namespace of its own: whatever the filter did, nothing leaves */
        if (unshare(CLONE_NEWNET) < 0 || kiln_net_loopback_up(&cerr) < 0)
            _exit(100);
        _exit(child_checks(hand[1]));
    }
    close(hand[1]);
    assert_int_equal(kiln_egress_take(pid, hand[0], &listener, &err), 0);
    assert_int_equal(kiln_egress_start(listener, p, logp[1], &e, &err), 0);
    kiln_netpolicy_free(p);
    /* the child asks for the stop after its checks with the supervisor */
    if (read(hand[0], &c, 1) == 1) {
        kiln_egress_stop(e);
        e = NULL;
        assert_int_equal(write(hand[0], "k", 1), 1);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    kiln_egress_stop(e);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    n = read(logp[0], log, sizeof(log) - 1);
    assert_true(n > 0);
    log[n] = '\0';
    assert_non_null(strstr(log, "network: refused a connection to 10.203.0.1 port 80"));
    assert_non_null(strstr(log, "--allow-address 10.203.0.1/32"));
    assert_non_null(strstr(log, "network: refused a datagram to 127.0.0.1 port 5556"));
    close(logp[0]);
    close(hand[0]);
}

/* errno of a UDP connect to addr (0 when it connects), in the calling netns. */
static int udp_connect_errno(const char *addr)
{
    struct sockaddr_in sa;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;
    v4(&sa, addr, 53);
    r = connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
    close(s);
    return r;
}

/* The nat routes in a network namespace of a child's own: ranges the
 * allowlist leaves closed are prohibited (EACCES), an opened range and
 * slirp's link are not (no route here: ENETUNREACH, or connected). */
static void test_block_routes(void **state)
{
    pid_t pid;
    int st = 0;
    (void)state;

    if (!can_unshare_net()) {
        skip();
        return;
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kiln_netpolicy_t *p = NULL;
        kiln_error_t err = {0};
        const char *allow[] = {"10.203.0.0/24"};
        static const struct {
            const char *addr;
            int want;
        } cases[] = {
            {"172.16.1.1", EACCES},
            {"192.168.1.1", EACCES},
            {"100.64.0.1", EACCES},
            {"169.254.169.254", EACCES},
            {"10.0.2.2", EACCES},
            /* 10.0.0.0/8 is left routed: the allowlist opens part of it */
            {"10.203.0.1", ENETUNREACH},
            /* public addresses are not touched */
            {"203.0.113.9", ENETUNREACH},
        };
        if (unshare(CLONE_NEWNET) < 0 || kiln_net_loopback_up(&err) < 0)
            _exit(100);
        if (kiln_net_nat_policy(allow, 1, &p, &err) < 0 || kiln_net_block_routes(p, &err) < 0)
            _exit(101);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            if (udp_connect_errno(cases[i].addr) != cases[i].want)
                _exit((int)i + 1);
        kiln_netpolicy_free(p);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_filter_program),
        cmocka_unit_test(test_supervisor),
        cmocka_unit_test(test_block_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
