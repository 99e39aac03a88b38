/* kiln — kiln_sandbox_run: starts a step's init in its namespaces, hands it
 * the root, streams its output, enforces the timeout and collects its status. */
#include "sandbox/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/cgroup.h"
#include "sandbox/idmap.h"
#include "sandbox/init.h"
#include "sandbox/mounts.h"
#include "sandbox/net.h"
#include "sandbox/netns.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define LINE_MAX_BYTES (64 * 1024)
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void kiln_step_init(kiln_step_t *step)
{
    memset(step, 0, sizeof(*step));
    step->network = KILN_NET_NAT;
    step->seccomp = KILN_SECCOMP_DEFAULT;
    step->caps = KILN_CAPS_DEFAULT;
    step->isolation = KILN_ISOLATION_AUTO;
    step->cwd = "/";
    step->stdin_fd = -1;
}

static const char *const iso_names[] = {"auto", "sandbox", "chroot", "none"};
static const char *const net_names[] = {"nat", "none", "host"};

const char *kiln_isolation_name(kiln_isolation_t iso)
{
    return (unsigned)iso < 4 ? iso_names[iso] : "?";
}

int kiln_isolation_parse(const char *s, kiln_isolation_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, iso_names[i]) == 0) {
            *out = (kiln_isolation_t)i;
            return 0;
        }
    }
    return -1;
}

const char *kiln_net_mode_name(kiln_net_mode_t m)
{
    return (unsigned)m < 3 ? net_names[m] : "?";
}

int kiln_net_mode_parse(const char *s, kiln_net_mode_t *out)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, net_names[i]) == 0) {
            *out = (kiln_net_mode_t)i;
            return 0;
        }
    }
    return -1;
}

#define RUN_DIR "/run/kiln"

/* `auto` says once per process what it stands for. */
static int auto_logged;

int kiln_sandbox_sweep_dir(const char *dir, const char *prefix)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    size_t plen = strlen(prefix);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid;
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        pid = strtol(e->d_name + plen, &end, 10);
        if (end == e->d_name + plen || *end != '-' || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
            continue;
        if (kiln_fs_rm_rf_at(dirfd(d), e->d_name, NULL) == 0)
            n++;
    }
    return n;
}

int kiln_sandbox_sweep(kiln_error_t *err)
{
    int n = kiln_cgroup_sweep(err);
    /* Step dirs of earlier versions, which kept a step's /etc files there. */
    return (n < 0 ? 0 : n) + kiln_sandbox_sweep_dir(RUN_DIR, "step-");
}

/* --- output ----------------------------------------------------------- */

typedef struct stream {
    int fd;
    kiln_log_stream_t kind;
    char *buf;
    size_t len;
} stream_t;

static void emit(const kiln_step_t *step, kiln_log_stream_t kind, const char *p, size_t n)
{
    struct timespec ts;

    if (step->log == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    step->log(step->log_opaque, kind, &ts, p, n);
}

static void sys_log(const kiln_step_t *step, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sys_log(const kiln_step_t *step, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    if (step->log == NULL)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    emit(step, KILN_LOG_SYSTEM, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Reads what is available on s, emitting whole lines. Returns 0 at EOF. */
static int pump(const kiln_step_t *step, stream_t *s)
{
    char tmp[16384];
    ssize_t n = read(s->fd, tmp, sizeof(tmp));

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0) {
        if (s->len)
            emit(step, s->kind, s->buf, s->len);
        s->len = 0;
        return 0;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (tmp[i] == '\n') {
            emit(step, s->kind, s->buf, s->len);
            s->len = 0;
            continue;
        }
        if (s->len == LINE_MAX_BYTES) {
            emit(step, s->kind, s->buf, s->len);
            s->len = 0;
        }
        s->buf[s->len++] = tmp[i];
    }
    return 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct run run_t;
static void kill_step(run_t *r);
static void take_ready(run_t *r);

/* Everything a run holds, released in one place. */
struct run {
    const kiln_step_t *step;
    int out[2], errs[2], status[2], sync[2];
    int in_fd, userns_fd, cg_fd;
    int trees[KILN_IDMAP_MAX_LOWERS + 1 + KILN_SANDBOX_MAX_MOUNTS];
    size_t n_trees;
    pid_t init;
    pid_t cmd; /* the command (host pid), for process-group kills without a pid ns */
    int ready; /* init: 0 not yet heard, 1 ready, -1 setup failed (setup_err) */
    kiln_error_t setup_err;
    int have_pidns; /* killing init kills everything */
    kiln_cgroup_t cg;
    kiln_slirp_t slirp;
    kiln_netpolicy_t *nat_policy;
    int netlog[2];  /* the egress supervisor's refusals (nat) */
    int netns_slot; /* the step's namespace of step->netns_pool, or -1 */
};

/* The step's writes under a disk limit: the trees it may write (its upper dir or rw_root
 * copy, and its cache and writable bind mounts' sources), less what they held before it,
 * measured every DISK_CHECK_MS, less often when a walk is slow. */
typedef struct disk_watch {
    const char *paths[1 + KILN_SANDBOX_MAX_MOUNTS];
    size_t n;      /* 0: no disk limit */
    uint64_t base; /* the trees' size before the step */
    uint64_t next_ms, interval_ms;
    int exceeded;
    kiln_error_t why; /* a walk that failed (the step is stopped: unmeasured is not under) */
} disk_watch_t;

#define DISK_CHECK_MS 500
#define DISK_MAX_DEPTH 128

/* Measures the step's writes; 1 when they are over the limit or cannot be measured. */
static int disk_over(const kiln_step_t *step, disk_watch_t *dw)
{
    uint64_t used = 0, t0 = now_ms(), spent;

    for (size_t i = 0; i < dw->n; i++) {
        uint64_t one = 0;
        if (kiln_fs_usage_at(AT_FDCWD, dw->paths[i], DISK_MAX_DEPTH, dw->base + step->limits.disk,
                             &one, &dw->why) < 0)
            return 1;
        used += one;
    }
    spent = now_ms() - t0;
    dw->interval_ms = spent * 10 > DISK_CHECK_MS ? spent * 10 : DISK_CHECK_MS;
    return used > dw->base + step->limits.disk;
}

/* Streams both outputs until they close, killing the step at the deadline.
 * init's ready message (or setup error) is taken on the way, so that kiln
 * does not wake up just for it. */
static void pump_all(const kiln_step_t *step, stream_t *out, stream_t *errs, stream_t *net,
                     struct run *run, int *timed_out, disk_watch_t *dw)
{
    uint64_t deadline = step->limits.timeout_ms ? now_ms() + step->limits.timeout_ms : 0;
    int open_out = 1, open_err = 1, open_net = net->fd >= 0;

    while (open_out || open_err) {
        struct pollfd p[4] = {{.fd = open_out ? out->fd : -1, .events = POLLIN},
                              {.fd = open_err ? errs->fd : -1, .events = POLLIN},
                              {.fd = run->ready == 0 ? run->sync[0] : -1, .events = POLLIN},
                              {.fd = open_net ? net->fd : -1, .events = POLLIN}};
        int wait = -1, r;
        if (deadline && !*timed_out) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                kill_step(run);
                *timed_out = 1;
                continue;
            }
            wait = (int)(deadline - now);
        }
        if (dw->n && !dw->exceeded && !*timed_out) {
            uint64_t now = now_ms();
            if (now >= dw->next_ms) {
                if (disk_over(step, dw)) {
                    kill_step(run);
                    dw->exceeded = 1;
                    continue;
                }
                now = now_ms();
                dw->next_ms = now + dw->interval_ms;
            }
            if (wait < 0 || dw->next_ms - now < (uint64_t)wait)
                wait = (int)(dw->next_ms - now);
        }
        r = poll(p, 4, wait);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (p[2].revents)
            take_ready(run);
        if (p[0].revents && !pump(step, out))
            open_out = 0;
        if (p[1].revents && !pump(step, errs))
            open_err = 0;
        if (p[3].revents && !pump(step, net))
            open_net = 0;
    }
    if (run->ready == 0)
        take_ready(run);
}

/* --- the run ---------------------------------------------------------- */

static int send_go(int fd, const int *fds, size_t n)
{
    char c = 'G';
    char cbuf[CMSG_SPACE(sizeof(int) * (KILN_IDMAP_MAX_LOWERS + 1 + KILN_SANDBOX_MAX_MOUNTS))];
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (n > 0) {
        struct cmsghdr *cm;
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* Reads init's "K" + the command's pid (ready: run->ready = 1) or its error
 * message (run->ready = -1, run->setup_err filled). */
static void take_ready(struct run *run)
{
    char msg[KILN_ERROR_MSG_MAX + 2];
    ssize_t n = recv(run->sync[0], msg, sizeof(msg) - 1, 0);

    if (n == 1 + (ssize_t)sizeof(pid_t) && msg[0] == 'K') {
        memcpy(&run->cmd, msg + 1, sizeof(pid_t));
        run->ready = 1;
        return;
    }
    run->ready = -1;
    if (n > 1 && msg[0] == 'E') {
        msg[n] = '\0';
        kiln_error_set(&run->setup_err, 0, "setting up the step: %s", msg + 1);
    } else {
        kiln_error_set(&run->setup_err, n < 0 ? errno : 0, "the step's init died during setup");
    }
}

/* The step's /etc/hosts, /etc/hostname and /etc/resolv.conf for its
 * network mode. Its init writes them into its own tmpfs: a step leaves no
 * file on the host's disks (on a filesystem mounted with `discard`, each
 * file or directory removed is a synchronous trip to the disk). */
static void etc_texts(const kiln_step_t *step, kiln_sandbox_plan_t *plan)
{
    const char *host = step->hostname ? step->hostname : "kiln";
    size_t len;

    /* In the order of kiln_mounts_overlay: resolv.conf, hosts, hostname. */
    if (step->network == KILN_NET_NAT)
        plan->etc_text[0] = kiln_xstrdup("nameserver " KILN_NET_NAT_DNS "\n");
    else if (step->network != KILN_NET_HOST ||
             kiln_fs_read_file("/etc/resolv.conf", KILN_MOUNTS_ETC_MAX, &plan->etc_text[0], &len,
                               NULL) < 0)
        plan->etc_text[0] = kiln_xstrdup("");
    plan->etc_text[1] = kiln_xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                                       "ip6-loopback\n127.0.1.1\t%s\n",
                                       host);
    for (size_t i = 0; i < step->n_extra_hosts; i++) {
        char *more = kiln_xasprintf("%s%s", plan->etc_text[1], step->extra_hosts[i]);
        free(plan->etc_text[1]);
        plan->etc_text[1] = more;
    }
    plan->etc_text[2] = kiln_xasprintf("%s\n", host);
}

/* Says in the step log which mechanism enforces the memory and pids limits
 * (a cgroup of which version, or the rlimit fallback and why). */
static void log_limits(const kiln_step_t *step, const kiln_cgroup_t *cg)
{
    const char *mem = kiln_cgroup_mechanism(cg, 0), *pids = kiln_cgroup_mechanism(cg, 1);
    char m[128] = "", p[128] = "", track[4200] = "";

    if (step->limits.memory == 0 && step->limits.pids == 0)
        return;
    if (step->limits.memory)
        snprintf(m, sizeof(m), "memory %llu bytes by %s", (unsigned long long)step->limits.memory,
                 mem ? mem : "RLIMIT_AS (address space, not resident memory)");
    if (step->limits.pids)
        snprintf(p, sizeof(p), "%spids %llu by %s", m[0] ? ", " : "",
                 (unsigned long long)step->limits.pids,
                 pids ? pids : "RLIMIT_NPROC (counts every process of the host uid)");
    if (cg->v2)
        snprintf(track, sizeof(track), "; step processes tracked in cgroup v2 %s", cg->dirs[2]);
    sys_log(step, "limits: %s%s%s%s%s%s", m, p, track, cg->why_not[0] ? " (no cgroup for " : "",
            cg->why_not, cg->why_not[0] ? ")" : "");
}

static void close_pair(int p[2])
{
    for (int i = 0; i < 2; i++) {
        if (p[i] >= 0)
            close(p[i]);
        p[i] = -1;
    }
}

/* Kills the step: init (and with it its pid namespace), else the
 * command's process group too. */
static void kill_step(run_t *r)
{
    if (!r->have_pidns && r->cmd > 0)
        kill(-r->cmd, SIGKILL);
    if (r->init > 0)
        kill(r->init, SIGKILL);
}

static void run_release(run_t *r)
{
    if (!r->have_pidns && r->cmd > 0)
        kill(-r->cmd, SIGKILL);
    if (r->init > 0) {
        kill(r->init, SIGKILL);
        waitpid(r->init, NULL, 0);
        r->init = 0;
    }
    if (r->netns_slot >= 0)
        kiln_netns_give(r->step->netns_pool, r->netns_slot);
    r->netns_slot = -1;
    kiln_net_slirp_stop(&r->slirp);
    kiln_netpolicy_free(r->nat_policy);
    r->nat_policy = NULL;
    close_pair(r->netlog);
    kiln_cgroup_destroy(&r->cg);
    close_pair(r->out);
    close_pair(r->errs);
    close_pair(r->status);
    close_pair(r->sync);
    if (r->in_fd >= 0)
        close(r->in_fd);
    if (r->userns_fd >= 0)
        close(r->userns_fd);
    if (r->cg_fd >= 0)
        close(r->cg_fd);
    for (size_t i = 0; i < r->n_trees; i++)
        close(r->trees[i]);
    r->n_trees = 0;
    r->in_fd = r->userns_fd = r->cg_fd = -1;
}

struct kiln_sandbox_reap {
    run_t r;
};

void kiln_sandbox_reap(struct kiln_sandbox_reap *reap)
{
    if (reap == NULL)
        return;
    run_release(&reap->r);
    free(reap);
}

/* Parent side after clone: ids, cgroup, root, network, go. */
static int start_init(const kiln_step_t *step, run_t *r, kiln_isolation_t iso, unsigned long flags,
                      kiln_error_t *err)
{
    int n;

    if (flags & CLONE_NEWUSER) {
        char p[64];
        if (kiln_idmap_write(r->init, KILN_SANDBOX_ID_BASE, KILN_SANDBOX_ID_COUNT, err) < 0)
            return -1;
        snprintf(p, sizeof(p), "/proc/%d/ns/user", (int)r->init);
        r->userns_fd = open(p, O_RDONLY | O_CLOEXEC);
        if (r->userns_fd < 0)
            return kiln_error_set(err, errno, "opening %s", p);
    }
    if (kiln_cgroup_add(&r->cg, r->init, err) < 0)
        return -1;
    if (flags & CLONE_NEWNS) {
        if (kiln_idmap_trees(step, r->userns_fd, r->trees, err) < 0)
            return -1;
        r->n_trees = step->rw_root ? 1 : step->n_lowers + (step->upper ? 1 : 0);
        n = kiln_idmap_mounts(step, r->userns_fd, r->trees + r->n_trees, err);
        if (n < 0)
            return -1;
        r->n_trees += (size_t)n;
    }
    if ((flags & CLONE_NEWNET) && step->network == KILN_NET_NAT) {
        int log_fd = r->netlog[1];
        r->netlog[1] = -1; /* taken over */
        if (kiln_net_slirp_start(r->init, r->nat_policy, log_fd, &r->slirp, err) < 0)
            return -1;
    }
    if (send_go(r->sync[0], r->trees, r->n_trees) < 0)
        return kiln_error_set(err, errno, "starting the step's init");
    (void)iso;
    return 0;
}

int kiln_sandbox_run(const kiln_step_t *step, kiln_step_result_t *res, kiln_error_t *err)
{
    run_t r = {.out = {-1, -1},
               .errs = {-1, -1},
               .status = {-1, -1},
               .sync = {-1, -1},
               .in_fd = -1,
               .userns_fd = -1,
               .cg_fd = -1,
               .netlog = {-1, -1},
               .netns_slot = -1,
               .step = step};
    kiln_sandbox_plan_t plan;
    kiln_isolation_t iso = step->isolation;
    static const char *const default_env[] = {DEFAULT_PATH, "HOME=/root", NULL};
    _cleanup_free_ char *obuf = NULL, *ebuf = NULL, *nbuf = NULL;
    stream_t so, se, sn;
    disk_watch_t dw = {0};
    unsigned long flags;
    int status = 0, got_status = 0, timed_out = 0, ret = -1, auto_pending = 0, defer = 0;

    if (step->argv == NULL || step->argv[0] == NULL)
        return kiln_error_set(err, EINVAL, "a step needs a command");
    if (iso == KILN_ISOLATION_AUTO) {
        /* `auto` is the sandbox, or an error saying what is missing: chroot
         * runs steps as real root, so only the operator may pick it. */
        iso = KILN_ISOLATION_SANDBOX;
        auto_pending = 1;
    }
    if (iso != KILN_ISOLATION_NONE && !step->rw_root &&
        (step->n_lowers == 0 || !step->upper != !step->work))
        return kiln_error_set(err, EINVAL,
                              "a step needs lower dirs, and upper and work dirs "
                              "both or neither");
    if (iso == KILN_ISOLATION_CHROOT)
        sys_log(step,
                "isolation chroot: no user namespace; the step runs as host uid %u "
                "with reduced capabilities",
                (unsigned)step->uid);
    if (iso == KILN_ISOLATION_NONE)
        sys_log(step, "isolation none: the step runs in kiln's own root, unconfined");
    else if (step->seccomp == KILN_SECCOMP_UNCONFINED || step->caps == KILN_CAPS_ALL)
        sys_log(step, "security insecure:%s%s",
                step->caps == KILN_CAPS_ALL ? " every capability" : "",
                step->seccomp == KILN_SECCOMP_UNCONFINED ? " no seccomp filter" : "");
    if (iso != KILN_ISOLATION_NONE &&
        kiln_seccomp_prepare(step->seccomp, iso != KILN_ISOLATION_SANDBOX, err) < 0)
        return -1;
    if (step->limits.disk && (step->upper || step->rw_root)) {
        /* what the step's root holds before it runs is not its writes */
        dw.paths[dw.n++] = step->upper ? step->upper : step->rw_root;
        for (size_t i = 0; i < step->n_mounts && i < KILN_SANDBOX_MAX_MOUNTS; i++)
            if (step->mounts[i].type == KILN_MOUNT_CACHE ||
                (step->mounts[i].type == KILN_MOUNT_BIND && !step->mounts[i].readonly))
                dw.paths[dw.n++] = step->mounts[i].src;
        for (size_t i = 0; i < dw.n; i++) {
            uint64_t one = 0;
            if (kiln_fs_usage_at(AT_FDCWD, dw.paths[i], DISK_MAX_DEPTH, 0, &one, err) < 0)
                return kiln_error_prefix(err, "disk limit");
            dw.base += one;
        }
        dw.next_ms = now_ms() + DISK_CHECK_MS;
        dw.interval_ms = DISK_CHECK_MS;
    }

    /* The step's mount points and its /etc files live on a tmpfs its init
     * mounts over RUN_DIR/mnt in its own namespace: no host directory is
     * ever a mount point of a step (removing one would detach mounts,
     * slowly), and a step creates nothing on the host's disk. */
    if (kiln_fs_mkdir_p(RUN_DIR "/mnt", 0711, err) < 0)
        return -1;
    memset(&plan, 0, sizeof(plan));
    etc_texts(step, &plan);
    if (step->network == KILN_NET_NAT) {
        if (kiln_net_nat_policy(step->allow_addresses, step->n_allow_addresses, &r.nat_policy,
                                err) < 0 ||
            (pipe2(r.netlog, O_CLOEXEC) < 0 &&
             kiln_error_set(err, errno, "pipe for the step's network log") < 0))
            goto out;
        plan.nat_policy = r.nat_policy;
    }
    if (kiln_cgroup_create(&r.cg, step->limits.memory, step->limits.pids, err) < 0)
        goto out;
    log_limits(step, &r.cg);
    if (pipe2(r.out, O_CLOEXEC) < 0 || pipe2(r.errs, O_CLOEXEC) < 0 ||
        pipe2(r.status, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r.sync) < 0) {
        kiln_error_set(err, errno, "creating the step's pipes");
        goto out;
    }
    r.in_fd = step->stdin_fd >= 0 ? fcntl(step->stdin_fd, F_DUPFD_CLOEXEC, 3)
                                  : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (r.in_fd < 0) {
        kiln_error_set(err, errno, "opening the step's stdin");
        goto out;
    }

    plan.step = step;
    plan.isolation = iso;
    plan.rundir = RUN_DIR "/mnt";
    plan.root = RUN_DIR "/mnt/root";
    plan.envp = step->env ? step->env : default_env;
    plan.parent = getpid();
    plan.sync_fd = r.sync[1];
    plan.status_fd = r.status[1];
    plan.out_fd = r.out[1];
    plan.err_fd = r.errs[1];
    plan.in_fd = r.in_fd;
    for (size_t i = 0; i < sizeof(plan.close_fds) / sizeof(plan.close_fds[0]); i++)
        plan.close_fds[i] = -1;
    plan.close_fds[0] = r.out[0];
    plan.close_fds[1] = r.errs[0];
    plan.close_fds[2] = r.status[0];
    plan.close_fds[3] = r.sync[0];
    plan.close_fds[5] = r.netlog[0];
    plan.close_fds[6] = r.netlog[1];
    plan.cgroup_fd = -1;
    if (r.cg.v2) {
        r.cg_fd = open(r.cg.dirs[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        plan.cgroup_fd = plan.close_fds[4] = r.cg_fd;
    }
    plan.memory_by_rlimit = !r.cg.has_memory;
    plan.pids_by_rlimit = !r.cg.has_pids;

    flags = kiln_spawn_ns_flags(iso, step->network);
    r.init = kiln_spawn_init(&plan, flags, &r.netns_slot);
    if (r.init < 0 && iso == KILN_ISOLATION_SANDBOX && kiln_spawn_ns_refused(errno)) {
        kiln_error_set(err, errno,
                       "user namespaces are unavailable on this host (clone of the step's "
                       "namespaces refused): isolation %s needs them; `--isolation chroot` "
                       "runs steps without them, as real root (fewer capabilities, a stricter "
                       "seccomp filter), for hosts where the builds are trusted",
                       auto_pending ? "auto" : "sandbox");
        goto out;
    }
    if (r.init < 0 && iso == KILN_ISOLATION_CHROOT && kiln_spawn_ns_refused(errno) &&
        step->rw_root) {
        /* No namespaces at all (e.g. a container without CAP_SYS_ADMIN):
         * chroot into the step's own copy, process-group kill. */
        sys_log(step, "isolation chroot without namespaces: the step shares the host's "
                      "network, pid namespace and /proc-less view; processes are tracked "
                      "by process group and subreaper only");
        flags = 0;
        plan.root = step->rw_root;
        r.init = kiln_spawn_init(&plan, flags, &r.netns_slot);
    }
    if (auto_pending && r.init > 0 && !__atomic_exchange_n(&auto_logged, 1, __ATOMIC_RELAXED))
        sys_log(step, "isolation: %s (auto)", kiln_isolation_name(iso));
    if (r.init < 0 && iso == KILN_ISOLATION_CHROOT) {
        kiln_error_set(err, errno,
                       "chroot isolation without mount namespaces needs a writable copy of "
                       "the rootfs (rw_root, --differ walk)");
        goto out;
    }
    if (r.init < 0) {
        kiln_error_set(err, errno, "starting the step (clone with namespaces)");
        goto out;
    }

    close(r.out[1]);
    close(r.errs[1]);
    close(r.status[1]);
    close(r.sync[1]);
    close(r.in_fd);
    r.out[1] = r.errs[1] = r.status[1] = r.sync[1] = r.in_fd = -1;

    if (start_init(step, &r, iso, flags, err) < 0) {
        kiln_error_prefix(err, "step %s", step->argv[0]);
        goto out;
    }
    obuf = kiln_xmalloc(LINE_MAX_BYTES);
    ebuf = kiln_xmalloc(LINE_MAX_BYTES);
    nbuf = kiln_xmalloc(LINE_MAX_BYTES);
    so = (stream_t){.fd = r.out[0], .kind = KILN_LOG_STDOUT, .buf = obuf};
    se = (stream_t){.fd = r.errs[0], .kind = KILN_LOG_STDERR, .buf = ebuf};
    sn = (stream_t){.fd = r.netlog[0], .kind = KILN_LOG_SYSTEM, .buf = nbuf};
    r.have_pidns = plan.have_pidns;
    pump_all(step, &so, &se, &sn, &r, &timed_out, &dw);
    if (r.ready < 0 && !timed_out) {
        if (err)
            *err = r.setup_err;
        kiln_error_prefix(err, "step %s", step->argv[0]);
        goto out;
    }

    if (!timed_out && !dw.exceeded) {
        /* The outputs close when the command and all it started are gone;
         * init then reports. Bounded by the timeout like the rest. */
        struct pollfd p = {.fd = r.status[0], .events = POLLIN};
        int wait = step->limits.timeout_ms ? (int)step->limits.timeout_ms : -1;
        if (poll(&p, 1, wait) == 1 && read(r.status[0], &status, sizeof(status)) == sizeof(status))
            got_status = 1;
        else if (step->limits.timeout_ms)
            timed_out = 1;
    }
    kill_step(&r);
    /* with a pid namespace, init reported after reaping every other process of the step */
    defer = step->defer_reap && r.have_pidns && got_status && step->network != KILN_NET_NAT;
    if (!defer) {
        waitpid(r.init, NULL, 0);
        r.init = 0;
    }
    /* the egress supervisor's last refusals: its pipe closes when it ends
     * (and kiln's own end when no slirp4netns took it: no net namespace) */
    kiln_net_slirp_stop(&r.slirp);
    if (r.netlog[1] >= 0) {
        close(r.netlog[1]);
        r.netlog[1] = -1;
    }
    while (sn.fd >= 0 && pump(step, &sn))
        ;

    memset(res, 0, sizeof(*res));
    res->isolation = iso;
    res->timed_out = timed_out;
    res->oom_killed = kiln_cgroup_oom_killed(&r.cg);
    /* a burst of writes between two checks is caught here: the step's changes are never
     * kept above the limit */
    if (dw.n && !dw.exceeded && disk_over(step, &dw))
        dw.exceeded = 1;
    res->disk_exceeded = dw.exceeded;
    if (got_status && WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else {
        res->signal = got_status && WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
        res->exit_code = 128 + res->signal;
    }
    if (timed_out)
        sys_log(step, "step killed: timeout of %llu ms reached",
                (unsigned long long)step->limits.timeout_ms);
    if (res->oom_killed)
        sys_log(step, "step killed: out of memory (limit %llu bytes)",
                (unsigned long long)step->limits.memory);
    if (dw.exceeded)
        sys_log(step, "step stopped: it wrote more than its disk limit of %llu bytes%s%s",
                (unsigned long long)step->limits.disk, dw.why.msg[0] ? ": " : "", dw.why.msg);
    ret = 0;
out:
    if (ret == 0 && defer) {
        res->reap = kiln_xmalloc(sizeof(*res->reap));
        res->reap->r = r; /* released by kiln_sandbox_reap */
    } else {
        run_release(&r);
    }
    for (size_t i = 0; i < 3; i++)
        free(plan.etc_text[i]);
    if (iso != KILN_ISOLATION_NONE && (step->upper || step->rw_root))
        kiln_mounts_clean_upper(step);
    return ret;
}
