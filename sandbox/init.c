/* kiln — the step's init (pid 1 of its pid namespace) and the command. */
#include "sandbox/init.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/idmap.h"
#include "sandbox/mounts.h"
#include "sandbox/net.h"
#include "sandbox/seccomp.h"
#include "utils/error.h"

/* Raw id changes: this process was cloned without libc's fork handling, so
 * libc's setxid (which signals every thread it knows of) must not run. */
static int raw_setresuid(uid_t u)
{
    return (int)syscall(SYS_setresuid, u, u, u);
}

static int raw_setresgid(gid_t g)
{
    return (int)syscall(SYS_setresgid, g, g, g);
}

static int raw_setgroups0(void)
{
    return (int)syscall(SYS_setgroups, 0, NULL);
}

static void send_error(int fd, const kiln_error_t *err)
{
    char msg[KILN_ERROR_MSG_MAX + 1];
    size_t n = strnlen(err->msg, KILN_ERROR_MSG_MAX);

    msg[0] = 'E';
    memcpy(msg + 1, err->msg, n);
    if (send(fd, msg, n + 1, MSG_NOSIGNAL) < 0) {
        /* kiln is gone: nothing to tell. */
    }
}

/* Receives kiln's go-ahead and the trees of the root (fds[], up to max).
 * Returns the number of fds received, -1 when kiln aborts or goes away. */
static int recv_go(int fd, int *fds, int max)
{
    char c = 0;
    char cbuf[CMSG_SPACE(sizeof(int) * (KILN_IDMAP_MAX_LOWERS + 1 + KILN_SANDBOX_MAX_MOUNTS))];
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm;
    int n = 0;

    if (recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) != 1 || c != 'G')
        return -1;
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (k > max)
                return -1;
            memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)k);
            n = k;
        }
    }
    return n;
}

static int set_limit(int res, uint64_t v)
{
    struct rlimit rl = {.rlim_cur = v, .rlim_max = v};
    return setrlimit(res, &rl);
}

/* mkdir -p of an absolute path inside the (already entered) root. */
static void make_cwd(const char *cwd)
{
    char buf[4096];
    size_t n = strlen(cwd);

    if (n == 0 || n >= sizeof(buf))
        return;
    memcpy(buf, cwd, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

/* The capabilities the step's command keeps: the step's set (Docker's by default), without
 * mknod and chroot where no user namespace holds the step. */
static uint64_t command_caps(const kiln_sandbox_plan_t *plan)
{
    uint64_t caps = plan->step->caps ? plan->step->caps : KILN_CAPS_DEFAULT;

    if (plan->isolation != KILN_ISOLATION_SANDBOX)
        caps &= ~((1ull << 27) | (1ull << 18)); /* no mknod, no chroot without a userns */
    return caps;
}

/* execvp with the PATH of envp (the step's, as execvp with the step's environ would use):
 * kiln's own environ is never changed, as this process shares kiln's memory until its exec
 * (sandbox/spawn.h). Returns the errno of the failure (EACCES when a candidate was found but
 * refused, as execvp). */
static int exec_path(const char *file, char *const *argv, char *const *envp)
{
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    char buf[4096];
    size_t flen = strlen(file);
    int seen_eacces = 0;

    if (strchr(file, '/') != NULL) {
        execve(file, argv, envp);
        return errno;
    }
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0)
            path = envp[i] + 5;
    if (flen == 0)
        return ENOENT;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        if (dlen + 1 + flen < sizeof(buf)) {
            /* an empty entry is the working directory, as execvp reads it */
            memcpy(buf, dlen ? p : ".", dlen ? dlen : 1);
            dlen = dlen ? dlen : 1;
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, file, flen + 1);
            execve(buf, argv, envp);
            if (errno == EACCES)
                seen_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV &&
                     errno != ETIMEDOUT)
                return errno;
        }
        if (end == NULL)
            break;
        p = end;
    }
    return seen_eacces ? EACCES : ENOENT;
}

/* Becomes the step's command. Never returns. */
__attribute__((noreturn)) static void exec_command(const kiln_sandbox_plan_t *plan)
{
    const kiln_step_t *step = plan->step;
    const kiln_limits_t *lim = &step->limits;
    /* under a disk limit no file may be larger than it (the walk may miss a fast one) */
    uint64_t fsize =
        lim->disk && (!lim->file_size || lim->disk < lim->file_size) ? lim->disk : lim->file_size;
    uint64_t caps = command_caps(plan);
    int strict = plan->isolation != KILN_ISOLATION_SANDBOX;
    const char *what = "setting up";
    int r = 0;

    setsid();
    if (dup2(plan->in_fd, 0) < 0 || dup2(plan->out_fd, 1) < 0 || dup2(plan->err_fd, 2) < 0)
        _exit(126);
    close_range(3, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);

    set_limit(RLIMIT_CORE, 0);
    if (lim->cpu_secs && set_limit(RLIMIT_CPU, lim->cpu_secs) < 0)
        what = "RLIMIT_CPU", r = -errno;
    if (!r && fsize && set_limit(RLIMIT_FSIZE, fsize) < 0)
        what = "RLIMIT_FSIZE", r = -errno;
    if (!r && lim->nofile && set_limit(RLIMIT_NOFILE, lim->nofile) < 0)
        what = "RLIMIT_NOFILE", r = -errno;
    if (!r && lim->memory && plan->memory_by_rlimit && set_limit(RLIMIT_AS, lim->memory) < 0)
        what = "RLIMIT_AS", r = -errno;
    if (!r && lim->pids && plan->pids_by_rlimit && set_limit(RLIMIT_NPROC, lim->pids) < 0)
        what = "RLIMIT_NPROC", r = -errno;
    for (size_t i = 0; !r && i < step->n_ulimits; i++) {
        const kiln_ulimit_t *u = &step->ulimits[i];
        struct rlimit rl = {
            .rlim_cur = u->soft == KILN_ULIMIT_UNLIMITED ? RLIM_INFINITY : (rlim_t)u->soft,
            .rlim_max = u->hard == KILN_ULIMIT_UNLIMITED ? RLIM_INFINITY : (rlim_t)u->hard};
        if (setrlimit(u->resource, &rl) < 0)
            what = "--ulimit", r = -errno;
    }
    /* the bounding set was lowered by init, before its setup (kiln_sandbox_init_main) */
    if (!r && plan->isolation != KILN_ISOLATION_NONE && (r = kiln_caps_restrict(caps)) < 0)
        what = "restricting capabilities";
    if (!r && (raw_setgroups0() < 0 && errno != EPERM))
        what = "setgroups", r = -errno;
    if (!r && raw_setresgid(step->gid) < 0)
        what = "setresgid", r = -errno;
    if (!r && raw_setresuid(step->uid) < 0)
        what = "setresuid", r = -errno;
    if (!r && step->cwd && chdir(step->cwd) < 0)
        what = "chdir to the working directory", r = -errno;
    if (!r && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        what = "no_new_privs", r = -errno;
    if (!r && plan->isolation != KILN_ISOLATION_NONE &&
        (r = kiln_seccomp_install(step->seccomp, strict)) < 0)
        what = "installing the seccomp filter";
    if (r < 0) {
        dprintf(2, "kiln: step: %s: %s\n", what, strerror(-r));
        _exit(126);
    }
    /* Without a pid namespace nothing else ends the command with kiln
     * (set after the id change, which clears it). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    r = exec_path(step->argv[0], (char *const *)step->argv, (char *const *)plan->envp);
    dprintf(2, "kiln: step: cannot run %s: %s\n", step->argv[0], strerror(r));
    _exit(r == ENOENT ? 127 : 126);
}

/* Lets every group of the step open ICMP datagram sockets in its own network
 * namespace (the sysctl is per netns), so `ping` works without CAP_NET_RAW,
 * as Docker and Podman do. The range is read in the writer's user namespace:
 * only the ids mapped there are valid. Best effort: a host whose /proc/sys
 * is read-only only loses ping. */
static void open_ping_range(kiln_isolation_t iso)
{
    char range[32];
    int fd = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY | O_CLOEXEC);
    int n = snprintf(range, sizeof(range), "0 %u",
                     iso == KILN_ISOLATION_SANDBOX ? KILN_SANDBOX_ID_COUNT - 1 : 2147483647u);

    if (fd < 0)
        return;
    if (write(fd, range, (size_t)n) != n) {
        /* no ping without CAP_NET_RAW: nothing else depends on it */
    }
    close(fd);
}

/* Sets up the root and network from inside the namespaces. */
static int setup(const kiln_sandbox_plan_t *plan, const int *fds, int n_fds, kiln_error_t *err)
{
    const kiln_step_t *step = plan->step;
    const char *host = step->hostname ? step->hostname : "kiln";

    if (plan->isolation == KILN_ISOLATION_NONE)
        return 0;
    if (plan->isolation == KILN_ISOLATION_SANDBOX) {
        /* Become root of the new user namespace (host KILN_SANDBOX_ID_BASE):
         * until now we were host root, unmapped here. */
        char c;
        if (raw_setresgid(0) < 0 || raw_setgroups0() < 0 || raw_setresuid(0) < 0)
            return kiln_error_set(err, errno, "becoming root of the step's user namespace");
        /* Changing ids cleared the parent-death signal and made us dumpable
         * again: set both again, then make sure kiln did not die meanwhile. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        prctl(PR_SET_DUMPABLE, 0);
        if (recv(plan->sync_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
            _exit(1);
    }
    if (plan->have_mntns) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            return kiln_error_set(err, errno, "making the step's mounts private");
        int n_trees = step->rw_root ? 1 : (int)step->n_lowers + (step->upper ? 1 : 0);
        char etc_dir[256];
        if (n_fds < n_trees)
            return kiln_error_set(err, EPROTO, "got %d trees for %zu lowers", n_fds,
                                  step->n_lowers);
        if (kiln_mounts_overlay(step, plan->rundir, (const char *const *)plan->etc_text, fds,
                                plan->isolation == KILN_ISOLATION_SANDBOX, err) < 0)
            return -1;
        snprintf(etc_dir, sizeof(etc_dir), "%s/etc", plan->rundir);
        if (kiln_mounts_setup(step, plan->root, etc_dir, fds + n_trees, (size_t)(n_fds - n_trees),
                              err) < 0)
            return -1;
    }
    if (plan->have_netns && !plan->pooled_netns && step->network != KILN_NET_HOST) {
        if (kiln_net_loopback_up(err) < 0)
            return -1;
        if (step->network == KILN_NET_NAT && kiln_net_block_routes(plan->nat_policy, err) < 0)
            return -1;
        open_ping_range(plan->isolation);
    }
    if (plan->isolation == KILN_ISOLATION_SANDBOX && sethostname(host, strlen(host)) < 0)
        return kiln_error_set(err, errno, "sethostname %s", host);
    if (kiln_mounts_enter(plan->root, !plan->have_mntns, err) < 0)
        return -1;
    if (step->cwd && step->cwd[0] == '/')
        make_cwd(step->cwd);
    return 0;
}

/* Starts the command. vfork: no copy of kiln's page tables for a process
 * that only sets itself up and execs (exec_command touches nothing of ours
 * but its own stack, errno and environ), and no atfork handlers (they take
 * locks, malloc's, that a thread of kiln may have held when init was
 * cloned). Returns the pid or -1. */
static pid_t spawn_command(const kiln_sandbox_plan_t *plan)
{
    pid_t pid = vfork();

    if (pid == 0)
        exec_command(plan);
    return pid;
}

/* Without a pid namespace: kills every child of ours (orphans re-parented
 * to us as subreaper, daemons included), found through /proc. No libc
 * directory streams: they allocate, and malloc's lock may be held by a
 * thread of kiln that was running when this process was cloned. */
static void kill_children(int proc_fd)
{
    char buf[8192];
    int dfd = proc_fd >= 0 ? openat(proc_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    pid_t self = getpid();
    long n;

    if (dfd < 0)
        return;
    while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < n;) {
            struct linux_dirent64 {
                uint64_t d_ino;
                int64_t d_off;
                unsigned short d_reclen;
                unsigned char d_type;
                char d_name[];
            } *e = (void *)(buf + off);
            char path[64], st[512];
            long ppid;
            ssize_t k;
            int fd;
            char *rp;
            off += e->d_reclen;
            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            snprintf(path, sizeof(path), "%s/stat", e->d_name);
            fd = openat(proc_fd, path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            k = read(fd, st, sizeof(st) - 1);
            close(fd);
            if (k <= 0)
                continue;
            st[k] = '\0';
            rp = strrchr(st, ')');
            if (rp == NULL || sscanf(rp + 2, "%*c %ld", &ppid) != 1)
                continue;
            if (ppid == self)
                kill((pid_t)strtol(e->d_name, NULL, 10), SIGKILL);
        }
    }
    close(dfd);
}

void kiln_sandbox_init_main(const kiln_sandbox_plan_t *plan)
{
    kiln_error_t err = {0};
    int fds[KILN_IDMAP_MAX_LOWERS + 1 + KILN_SANDBOX_MAX_MOUNTS], n_fds, status = 0, proc_fd = -1,
                                                                         bset = 0;
    pid_t cmd, w;

    /* Dies with kiln (if kiln died before this line, recv_go fails). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Nothing in the step may open /proc/1/{exe,root,mem} of kiln's process. */
    prctl(PR_SET_DUMPABLE, 0);
    for (size_t i = 0; i < sizeof(plan->close_fds) / sizeof(plan->close_fds[0]); i++) {
        if (plan->close_fds[i] >= 0)
            close(plan->close_fds[i]);
    }
    if (getpid() != 1) {
        /* No pid namespace: we track orphans as subreaper, through the
         * host's /proc (opened before any chroot; the command never gets it). */
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    /* The command's bounding set, lowered here while kiln writes the id maps (one credential
     * change per capability): init keeps its own effective set for the setup, and the
     * command inherits the bounding set; nothing init execs could regain a dropped one. */
    if (plan->isolation != KILN_ISOLATION_NONE)
        bset = kiln_caps_drop_bounding(command_caps(plan));
    n_fds = recv_go(plan->sync_fd, fds, KILN_IDMAP_MAX_LOWERS + 1 + KILN_SANDBOX_MAX_MOUNTS);
    if (n_fds < 0)
        _exit(1);
    /* kiln has moved us into the step's cgroup: the step's view of cgroups is rooted there */
    if (plan->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0) {
        kiln_error_set(&err, errno, "making the step's cgroup namespace");
        send_error(plan->sync_fd, &err);
        _exit(1);
    }
    if (bset < 0) {
        kiln_error_set(&err, -bset, "lowering the step's capability bounding set");
        send_error(plan->sync_fd, &err);
        _exit(1);
    }
    if (setup(plan, fds, n_fds, &err) < 0) {
        send_error(plan->sync_fd, &err);
        _exit(1);
    }
    for (int i = 0; i < n_fds; i++)
        close(fds[i]);

    cmd = spawn_command(plan);
    if (cmd < 0) {
        kiln_error_set(&err, errno, "fork of the step command");
        send_error(plan->sync_fd, &err);
        _exit(1);
    }
    {
        char msg[1 + sizeof(pid_t)] = {'K'};
        memcpy(msg + 1, &cmd, sizeof(pid_t));
        if (send(plan->sync_fd, msg, sizeof(msg), MSG_NOSIGNAL) < 0)
            _exit(1);
    }
    close(plan->out_fd);
    close(plan->err_fd);
    close(plan->in_fd);

    /* Reap everything; when the command ends, kill what it left behind. In
     * chroot isolation without a pid namespace, its process group. */
    for (int done = 0;;) {
        int st;
        if (done && getpid() != 1)
            kill_children(proc_fd);
        w = waitpid(-1, &st, __WALL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (w == cmd) {
            status = st;
            done = 1;
            if (getpid() == 1)
                kill(-1, SIGKILL);
            else
                kill(-cmd, SIGKILL);
        }
    }
    if (write(plan->status_fd, &status, sizeof(status)) != sizeof(status))
        _exit(1);
    _exit(0);
}
