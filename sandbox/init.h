/* kiln — the processes inside a step (internal to sandbox/).
 *
 * The first process of a step ("init") is pid 1 of the step's pid namespace
 * (in sandbox isolation). It waits for kiln's go-ahead, sets up the root,
 * forks the step's command, reaps every zombie, and when the command ends
 * kills whatever the command left behind, then reports the command's wait
 * status. It dies with kiln (PR_SET_PDEATHSIG), which takes the whole pid
 * namespace with it. */
#ifndef KILN_SANDBOX_INIT_H
#define KILN_SANDBOX_INIT_H

#include <sys/types.h>

#include "sandbox/sandbox.h"
#include "utils/netpolicy.h"

typedef struct kiln_sandbox_plan {
    const kiln_step_t *step;
    kiln_isolation_t isolation; /* sandbox, chroot or none (never auto) */
    int have_mntns;             /* the init runs in its own mount namespace */
    int have_netns;
    int pooled_netns; /* the netns is kiln's, already set up (sandbox/netns.h) */
    int have_pidns;
    int unshare_cgroupns; /* cloned without one (sandbox/spawn.h): made after kiln's go */
    const char *rundir;   /* where init mounts a private tmpfs for l0.., rw, root */
    const char *root;     /* host path the root is mounted on: rundir/root */
    char *etc_text[3];    /* resolv.conf, hosts, hostname (see kiln_mounts_overlay) */
    const char *const *envp;
    pid_t parent;
    int sync_fd;   /* SOCK_SEQPACKET to kiln: go + overlay fd in, "ok"/error out */
    int status_fd; /* the command's wait status goes out here */
    int out_fd, err_fd, in_fd;
    int close_fds[8]; /* kiln's ends, closed in the child; -1 = unused */
    int cgroup_fd;    /* the step's cgroup v2 dir to start init in, or -1 */
    int memory_by_rlimit, pids_by_rlimit;
    const kiln_netpolicy_t *nat_policy; /* nat: what the prohibit routes leave open */
} kiln_sandbox_plan_t;

/* The body of the step's init process. Never returns. */
__attribute__((noreturn)) void kiln_sandbox_init_main(const kiln_sandbox_plan_t *plan);

#endif
