/* kiln — the egress filter of a step's nat network (seccomp user
 * notification on slirp4netns, a supervisor thread checking destinations). */
#include "sandbox/egress.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#if defined(__x86_64__)
#define EGRESS_ARCH AUDIT_ARCH_X86_64
#define EGRESS_X32_BIT 0x40000000u
#elif defined(__aarch64__)
#define EGRESS_ARCH AUDIT_ARCH_AARCH64
#endif

#define ARG_LO(i) ((uint32_t)offsetof(struct seccomp_data, args[i]))
#define ARG_HI(i) ((uint32_t)offsetof(struct seccomp_data, args[i]) + 4)

/* Most messages of one sendmmsg that are checked (the kernel's UIO_MAXIOV). */
#define MAX_MMSG 1024

#ifdef EGRESS_ARCH
static struct sock_filter filter_prog[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, EGRESS_ARCH, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef EGRESS_X32_BIT
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, EGRESS_X32_BIT, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#endif
    /* jump targets: +6 from connect is the USER_NOTIF return below */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 6, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendmsg, 5, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendmmsg, 4, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendto, 4, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    /* sendto: a NULL destination (args[4], both halves zero) is a plain send */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(4)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(4)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};
static const struct sock_fprog filter = {
    .len = sizeof(filter_prog) / sizeof(filter_prog[0]),
    .filter = filter_prog,
};
#endif

const struct sock_fprog *kiln_egress_filter(void)
{
#ifdef EGRESS_ARCH
    return &filter;
#else
    return NULL;
#endif
}

int kiln_egress_install_and_hand(int hand_fd)
{
    const struct sock_fprog *f = kiln_egress_filter();
    int fd = -ENOSYS;
    char c;

    if (f != NULL) {
        fd =
            (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, f);
        if (fd < 0)
            fd = -errno;
    }
    /* write and read are not filtered (a plain send would not be either) */
    if (write(hand_fd, &fd, sizeof(fd)) != (ssize_t)sizeof(fd))
        return -EPIPE;
    if (fd < 0)
        return fd;
    /* the parent holds it now: this process must not answer its own calls */
    if (read(hand_fd, &c, 1) != 1 || close(fd) < 0)
        return -EPIPE;
    return 0;
}

int kiln_egress_take(pid_t child, int hand_fd, int *listener, kiln_error_t *err)
{
    struct pollfd p = {.fd = hand_fd, .events = POLLIN};
    _cleanup_close_ int pidfd = -1;
    int num = -1, fd;
    char c = 'T';

    if (poll(&p, 1, 10000) != 1 || read(hand_fd, &num, sizeof(num)) != (ssize_t)sizeof(num))
        return kiln_error_set(err, EPIPE, "the egress filter's process did not report");
    if (num < 0)
        return kiln_error_set(err, -num,
                              "installing the egress filter (seccomp user notification)");
    pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    if (pidfd < 0)
        return kiln_error_set(err, errno, "pidfd_open for the egress filter");
    fd = (int)syscall(SYS_pidfd_getfd, pidfd, num, 0);
    if (fd < 0)
        return kiln_error_set(err, errno, "taking the egress filter's listener (pidfd_getfd)");
    if (write(hand_fd, &c, 1) != 1) {
        close(fd);
        return kiln_error_set(err, errno, "the egress filter's process went away");
    }
    *listener = fd;
    return 0;
}

/* --- reading what the trapped call sends to ----------------------------- */

/* Reads len bytes at addr of the trapped process into buf; false if not
 * all of it is there. */
static bool peek(int mem_fd, uint64_t addr, void *buf, size_t len)
{
    return pread(mem_fd, buf, len, (off_t)addr) == (ssize_t)len;
}

/* Checks one destination (addr, len) of the trapped process. */
static int check_dest(int mem_fd, uint64_t addr, uint64_t len, const kiln_netpolicy_t *policy,
                      kiln_error_t *why)
{
    struct sockaddr_storage ss;
    size_t n = len > sizeof(ss) ? sizeof(ss) : (size_t)len;

    if (n < sizeof(sa_family_t)) /* the kernel refuses it (EINVAL) */
        return 0;
    memset(&ss, 0, sizeof(ss));
    if (!peek(mem_fd, addr, &ss, n)) {
        kiln_error_set(why, EFAULT, "a destination address that kiln cannot read");
        return EACCES;
    }
    switch (ss.ss_family) {
    case AF_UNSPEC:  /* connect(AF_UNSPEC) dissolves an association */
    case AF_UNIX:    /* slirp's own local sockets, not the network */
    case AF_NETLINK: /* slirp4netns --configure sets up the step's tap0 */
        return 0;
    case AF_INET:
    case AF_INET6:
        return kiln_netpolicy_check(policy, (struct sockaddr *)&ss, (socklen_t)n, why) < 0
                   ? ENETUNREACH
                   : 0;
    default:
        kiln_error_set(why, EAFNOSUPPORT, "address family %d", (int)ss.ss_family);
        return EACCES;
    }
}

/* Checks the destination of one struct msghdr at addr (none: connected). */
static int check_msghdr(int mem_fd, uint64_t addr, const kiln_netpolicy_t *policy,
                        kiln_error_t *why)
{
    struct msghdr mh;
    if (!peek(mem_fd, addr, &mh, sizeof(mh))) {
        kiln_error_set(why, EFAULT, "a message header that kiln cannot read");
        return EACCES;
    }
    if (mh.msg_name == NULL)
        return 0;
    return check_dest(mem_fd, (uint64_t)(uintptr_t)mh.msg_name, mh.msg_namelen, policy, why);
}

int kiln_egress_decide(int mem_fd, const struct seccomp_notif *n, const kiln_netpolicy_t *policy,
                       kiln_error_t *why)
{
    const __u64 *a = n->data.args;
    uint64_t vlen;
    int r;

    switch (n->data.nr) {
    case __NR_connect:
        return check_dest(mem_fd, a[1], a[2], policy, why);
    case __NR_sendto:
        return a[4] == 0 ? 0 : check_dest(mem_fd, a[4], a[5], policy, why);
    case __NR_sendmsg:
        return check_msghdr(mem_fd, a[1], policy, why);
    case __NR_sendmmsg:
        vlen = a[2] > MAX_MMSG ? MAX_MMSG : a[2];
        for (uint64_t i = 0; i < vlen; i++)
            if ((r = check_msghdr(mem_fd, a[1] + i * sizeof(struct mmsghdr), policy, why)) != 0)
                return r;
        return 0;
    default:
        kiln_error_set(why, ENOSYS, "system call %d", (int)n->data.nr);
        return EACCES;
    }
}

/* --- the supervisor ----------------------------------------------------- */

struct kiln_egress {
    pthread_t thread;
    int listener;
    int stop[2]; /* a byte on stop[1] ends the thread */
    int log_fd;
    kiln_netpolicy_t *policy;
    int mem_fd; /* /proc/<mem_pid>/mem, kept while the same process traps */
    pid_t mem_pid;
    unsigned logged;
    char last[KILN_ERROR_MSG_MAX];
};

/* /proc/PID/mem of the trapped process, checked to still be the one that
 * trapped (notification id valid) after opening; -1 if it is gone. */
static int mem_of(kiln_egress_t *e, const struct seccomp_notif *n)
{
    char path[64];

    if (e->mem_fd >= 0 && e->mem_pid == (pid_t)n->pid)
        return e->mem_fd;
    if (e->mem_fd >= 0)
        close(e->mem_fd);
    snprintf(path, sizeof(path), "/proc/%u/mem", n->pid);
    e->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
    e->mem_pid = (pid_t)n->pid;
    if (e->mem_fd < 0 || ioctl(e->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &n->id) < 0)
        return -1;
    return e->mem_fd;
}

/* Drops the ": <strerror>" kiln_error_set appended to why's message: the
 * step already sees the errno, the log line names the address and policy. */
static void drop_strerror(kiln_error_t *why)
{
    const char *s = why->code ? strerrordesc_np(why->code) : NULL;
    size_t n = strlen(why->msg), m = s ? strlen(s) : 0;

    if (s != NULL && n > m + 2 && strcmp(why->msg + n - m, s) == 0 &&
        memcmp(why->msg + n - m - 2, ": ", 2) == 0)
        why->msg[n - m - 2] = '\0';
}

/* Writes one refusal line (the same refusal twice in a row once). */
static void log_refusal(kiln_egress_t *e, const char *what, const char *msg)
{
    char line[KILN_ERROR_MSG_MAX + 64];
    int len;

    if (e->log_fd < 0 || e->logged > KILN_EGRESS_MAX_LOG || strcmp(e->last, msg) == 0)
        return;
    snprintf(e->last, sizeof(e->last), "%s", msg);
    if (++e->logged > KILN_EGRESS_MAX_LOG)
        len = snprintf(line, sizeof(line), "network: more refusals, not logged\n");
    else
        len = snprintf(line, sizeof(line), "network: refused %s to %s\n", what, msg);
    if (len > (int)sizeof(line) - 1)
        len = (int)sizeof(line) - 1;
    /* non-blocking: a full pipe loses a line, never stalls the step */
    if (write(e->log_fd, line, (size_t)len) < 0)
        return;
}

/* Answers one notification. */
static void handle(kiln_egress_t *e)
{
    struct seccomp_notif n;
    struct seccomp_notif_resp resp;
    kiln_error_t why = {0};
    int mem, r;

    memset(&n, 0, sizeof(n));
    if (ioctl(e->listener, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
        return; /* ENOENT: the caller went away meanwhile */
    memset(&resp, 0, sizeof(resp));
    resp.id = n.id;
    mem = mem_of(e, &n);
    if (mem < 0) {
        r = EACCES;
        kiln_error_set(&why, ESRCH, "an address kiln cannot read");
    } else {
        r = kiln_egress_decide(mem, &n, e->policy, &why);
    }
    /* the process could have died and its pid been reused while reading */
    if (ioctl(e->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &n.id) < 0)
        return;
    if (r == 0) {
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
        resp.error = -r;
        drop_strerror(&why);
        log_refusal(e, n.data.nr == __NR_connect ? "a connection" : "a datagram", why.msg);
    }
    ioctl(e->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

static void *supervise(void *arg)
{
    kiln_egress_t *e = arg;

    for (;;) {
        struct pollfd p[2] = {{.fd = e->listener, .events = POLLIN},
                              {.fd = e->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        if (p[0].revents & POLLIN)
            handle(e);
        else if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
            break; /* no process left under the filter */
    }
    return NULL;
}

int kiln_egress_start(int listener, const kiln_netpolicy_t *policy, int log_fd, kiln_egress_t **out,
                      kiln_error_t *err)
{
    kiln_egress_t *e = kiln_xzalloc(sizeof(*e));
    sigset_t all, old;
    int r;

    e->listener = listener;
    e->log_fd = log_fd;
    e->mem_fd = -1;
    e->policy = kiln_netpolicy_dup(policy);
    if (pipe2(e->stop, O_CLOEXEC) < 0) {
        e->stop[0] = e->stop[1] = -1;
        kiln_error_set(err, errno, "pipe for the egress supervisor");
        goto fail;
    }
    if (log_fd >= 0)
        fcntl(log_fd, F_SETFL, fcntl(log_fd, F_GETFL) | O_NONBLOCK);
    /* the thread takes no signals: they stay with the threads that wait for them */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&e->thread, NULL, supervise, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        kiln_error_set(err, r, "starting the egress supervisor");
        goto fail;
    }
    *out = e;
    return 0;
fail:
    if (e->stop[0] >= 0) {
        close(e->stop[0]);
        close(e->stop[1]);
    }
    kiln_netpolicy_free(e->policy);
    free(e);
    close(listener);
    if (log_fd >= 0)
        close(log_fd);
    return -1;
}

void kiln_egress_stop(kiln_egress_t *e)
{
    char c = 's';

    if (e == NULL)
        return;
    if (write(e->stop[1], &c, 1) < 0) {
        /* cannot happen with an empty pipe; the listener's hangup ends it too */
    }
    pthread_join(e->thread, NULL);
    close(e->stop[0]);
    close(e->stop[1]);
    close(e->listener);
    if (e->mem_fd >= 0)
        close(e->mem_fd);
    if (e->log_fd >= 0)
        close(e->log_fd);
    kiln_netpolicy_free(e->policy);
    free(e);
}
