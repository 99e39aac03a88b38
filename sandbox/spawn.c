/* kiln — a step's init started: its namespaces, the clone (a fork, or CLONE_VM from a
 * spawner thread: sandbox/spawn.h says why and what that asks), and the probe of user
 * namespaces. */
#include "sandbox/spawn.h"

#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/netns.h"

/* The init's stack, inside the spawner thread's own (which is made this much larger): the
 * init's setup and the command's until its exec use some tens of KiB. */
#define INIT_STACK (256 * 1024)

/* clone(2) without libc's fork handling. With cgroup_fd >= 0 (a cgroup v2
 * dir), the child starts in that cgroup (clone3 CLONE_INTO_CGROUP, Linux
 * 5.7): nothing of it runs or is charged outside, and its cgroup namespace
 * is rooted there. Falls back to plain clone where clone3 refuses. */
static pid_t raw_clone(unsigned long flags, int cgroup_fd)
{
    if (cgroup_fd >= 0) {
        struct clone_args a;
        pid_t pid;
        memset(&a, 0, sizeof(a));
        a.flags = flags | CLONE_INTO_CGROUP;
        a.exit_signal = SIGCHLD;
        a.cgroup = (uint64_t)cgroup_fd;
        pid = (pid_t)syscall(SYS_clone3, &a, sizeof(a));
        if (pid >= 0)
            return pid;
    }
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

kiln_isolation_t kiln_sandbox_probe(void)
{
    static kiln_isolation_t cached = KILN_ISOLATION_AUTO;
    pid_t pid;
    int st;

    if (cached != KILN_ISOLATION_AUTO)
        return cached;
    pid = raw_clone(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID, -1);
    if (pid == 0)
        _exit(0);
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
        access("/proc/self/ns/user", F_OK) == 0)
        cached = KILN_ISOLATION_SANDBOX;
    else
        cached = KILN_ISOLATION_CHROOT;
    return cached;
}

unsigned long kiln_spawn_ns_flags(kiln_isolation_t iso, kiln_net_mode_t net)
{
    unsigned long f = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

    if (iso == KILN_ISOLATION_NONE)
        return 0;
    if (net != KILN_NET_HOST)
        f |= CLONE_NEWNET;
    if (iso == KILN_ISOLATION_SANDBOX)
        f |= CLONE_NEWUSER | CLONE_NEWCGROUP;
    return f;
}

int kiln_spawn_ns_refused(int e)
{
    return e == EPERM || e == EINVAL || e == ENOSPC || e == EUSERS || e == ENOSYS;
}

/* Whether the step runs in a namespace of its build's pool (sandbox/netns.h): loopback only,
 * in the sandbox, without a capability that counts in a network namespace it does not
 * own (CAP_NET_ADMIN, CAP_NET_RAW: such a step gets its own). */
static int pooled_netns(const kiln_step_t *step, kiln_isolation_t iso, unsigned long flags)
{
    uint64_t caps = step->caps ? step->caps : KILN_CAPS_DEFAULT;

    return step->netns_pool != NULL && iso == KILN_ISOLATION_SANDBOX &&
           step->network == KILN_NET_NONE && (flags & CLONE_NEWNET) &&
           !(caps & ((1ull << 12) | (1ull << 13)));
}

/* What the caller hands the spawner thread: the plan is copied before the clone; pid is
 * written by the kernel (CLONE_PARENT_SETTID) before the init runs, and `done` posted by the
 * init (or by the spawner when the clone fails), after which neither touches this. */
typedef struct spawn_call {
    const kiln_sandbox_plan_t *plan;
    unsigned long flags;
    int netns_fd;  /* a pooled namespace to start the init in, or -1 */
    sigset_t mask; /* the caller's signal mask: the init's and so its command's */
    sem_t done;
    pid_t pid;
    int err;
} spawn_call_t;

/* What the init runs on: its own copy of the plan and of the caller's signal mask. */
typedef struct init_arg {
    kiln_sandbox_plan_t plan;
    sigset_t mask;
    spawn_call_t *call;
} init_arg_t;

/* The init's first code (CLONE_VM): tells the caller its pid is known, then puts every signal
 * back to its default (no handler of kiln's may run in kiln's memory) before the caller's
 * mask lets any through. Never returns. */
static int init_entry(void *arg)
{
    init_arg_t *a = arg;
    struct sigaction dfl;

    sem_post(&a->call->done);
    a->call = NULL;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &a->mask, NULL);
    kiln_sandbox_init_main(&a->plan);
}

/* The spawner thread (every signal blocked from its start, spawn_vm): clones the init with
 * kiln's memory and CLONE_VFORK on a stack of its own, and so sleeps until the init ends: its
 * thread-local storage is the init's until then, the init's parent-death signal is this
 * thread's end, and the kernel's OOM killer, which kills every process sharing a victim's
 * memory, never picks a vfork child (in_vfork). */
static void *spawner(void *arg)
{
    spawn_call_t *c = arg;
    init_arg_t a = {.plan = *c->plan, .mask = c->mask, .call = c};
    char stack[INIT_STACK] __attribute__((aligned(16)));
    int flags = (int)(c->flags | CLONE_VM | CLONE_VFORK | CLONE_PARENT_SETTID) | SIGCHLD;

    if (c->netns_fd >= 0 && setns(c->netns_fd, CLONE_NEWNET) < 0) {
        c->err = errno;
        sem_post(&c->done);
        return NULL;
    }
    if (clone(init_entry, stack + sizeof(stack), flags, &a, &c->pid) < 0) {
        c->pid = -1;
        c->err = errno;
        sem_post(&c->done);
    }
    return NULL; /* the init has ended: c is not ours to touch */
}

/* Starts the init from a spawner thread (CLONE_VM). Returns its pid, or -1 with errno. */
static pid_t spawn_vm(const kiln_sandbox_plan_t *plan, unsigned long flags, int netns_fd)
{
    spawn_call_t c = {.plan = plan, .flags = flags, .netns_fd = netns_fd, .pid = -1};
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all;
    int e;

    sigfillset(&all);
    if (sem_init(&c.done, 0, 0) < 0)
        return -1;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, INIT_STACK + 256 * 1024);
    /* the thread starts with every signal blocked: none may run a handler on the storage
     * the init uses; the init sets the caller's mask for itself */
    pthread_sigmask(SIG_SETMASK, &all, &c.mask);
    e = pthread_create(&t, &attr, spawner, &c);
    pthread_sigmask(SIG_SETMASK, &c.mask, NULL);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        sem_destroy(&c.done);
        errno = e;
        return -1;
    }
    while (sem_wait(&c.done) < 0 && errno == EINTR)
        ;
    sem_destroy(&c.done);
    errno = c.err;
    return c.pid;
}

pid_t kiln_spawn_init(kiln_sandbox_plan_t *plan, unsigned long flags, int *netns_slot)
{
    const kiln_step_t *step = plan->step;
    const char *no_ns = getenv("KILN_SANDBOX_NO_NAMESPACES");
    unsigned long f = flags & ~(unsigned long)CLONE_NEWCGROUP;
    int ns_fd = -1, e;
    pid_t pid;

    *netns_slot = -1;
    plan->have_mntns = (flags & CLONE_NEWNS) != 0;
    plan->have_netns = (flags & CLONE_NEWNET) != 0;
    plan->have_pidns = (flags & CLONE_NEWPID) != 0;
    plan->pooled_netns = 0;
    plan->unshare_cgroupns = 0;
    if (flags != 0 && no_ns != NULL && strcmp(no_ns, "1") == 0) {
        errno = EPERM;
        return -1;
    }
    if (!(flags & CLONE_NEWUSER)) {
        /* chroot isolation, or none: a fork of kiln, as root of the host */
        pid = raw_clone(flags, plan->cgroup_fd);
        if (pid == 0)
            kiln_sandbox_init_main(plan);
        return pid;
    }
    if (pooled_netns(step, plan->isolation, flags)) {
        kiln_error_t ignored = {0};
        /* none free or none can be made (a read-only /proc/sys): a namespace of its own */
        *netns_slot = kiln_netns_take(step->netns_pool, &ns_fd, &ignored);
        if (*netns_slot < 0)
            ns_fd = -1;
    }
    /* the sandbox: CLONE_VM from a spawner thread, which enters the pooled namespace itself
     * (the caller's stays as it is) */
    plan->unshare_cgroupns = (flags & CLONE_NEWCGROUP) != 0;
    if (ns_fd >= 0) {
        plan->pooled_netns = 1;
        f &= ~(unsigned long)CLONE_NEWNET;
    }
    pid = spawn_vm(plan, f, ns_fd);
    if (pid < 0 && *netns_slot >= 0) {
        e = errno;
        kiln_netns_give(step->netns_pool, *netns_slot);
        *netns_slot = -1;
        errno = e;
    }
    return pid;
}
