/* kiln — run one build step in isolation.
 *
 * A step is a command run on a root filesystem made of read-only lower dirs
 * (already unpacked, shared between builds) plus a fresh upper dir that
 * receives everything the step changes. After the run, the upper dir is in
 * overlay form (whiteouts = char 0:0, opaque dirs = trusted/user.overlay.opaque)
 * and its owners are as seen inside the step (not shifted), ready for the
 * layer writer.
 *
 * Isolation `sandbox`: user (uid 0 inside = KILN_SANDBOX_ID_BASE on the host),
 * mount, pid, ipc, uts, cgroup and net namespaces; overlayfs over id-mapped
 * lowers; pivot_root; fresh /proc, minimal /dev, read-only /sys; seccomp
 * modelled on Docker's default profile; no_new_privs; Docker's default
 * capability set; rlimits; cgroup memory/pids limits where writable.
 * Isolation `chroot` (hosts without user namespaces; only on explicit request:
 * the step runs as real root): chroot + seccomp + no_new_privs + dropped
 * capabilities + rlimits + process-group kill. `auto` is the sandbox, failing
 * with an error naming `--isolation chroot` where user namespaces are refused.
 * Isolation `none`: runs in the host root (only on explicit request). */
#ifndef KILN_SANDBOX_SANDBOX_H
#define KILN_SANDBOX_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "sandbox/stepopts.h"
#include "utils/error.h"

/* Host ids that uid/gid 0..KILN_SANDBOX_ID_COUNT-1 inside a sandbox map to. */
#define KILN_SANDBOX_ID_BASE 100000u
#define KILN_SANDBOX_ID_COUNT 65536u
/* Most extra mounts one step may have. */
#define KILN_SANDBOX_MAX_MOUNTS 64

typedef enum kiln_net_mode {
    KILN_NET_NAT = 0, /* slirp4netns; public addresses only (sandbox/egress.h) */
    KILN_NET_NONE,    /* loopback only */
    KILN_NET_HOST,    /* the host's network (explicit request only) */
} kiln_net_mode_t;

typedef enum kiln_isolation {
    KILN_ISOLATION_AUTO = 0, /* the sandbox; never falls back to chroot */
    KILN_ISOLATION_SANDBOX,
    KILN_ISOLATION_CHROOT,
    KILN_ISOLATION_NONE,
} kiln_isolation_t;

typedef enum kiln_mount_type {
    KILN_MOUNT_BIND = 0, /* host path src on dst (read-only unless rw) */
    KILN_MOUNT_TMPFS,    /* empty tmpfs on dst */
    KILN_MOUNT_CACHE,    /* persistent host dir src, read-write, kept between builds */
    KILN_MOUNT_SECRET,   /* host file src read-only on dst; never part of the layer */
} kiln_mount_type_t;

typedef struct kiln_mount {
    kiln_mount_type_t type;
    const char *src; /* host path (bind, cache, secret) */
    const char *dst; /* absolute path inside the step */
    int readonly;
    uint64_t size; /* tmpfs size in bytes, 0 = kernel default */
} kiln_mount_t;

/* 0 means "no limit" for every field. */
typedef struct kiln_limits {
    uint64_t memory;     /* bytes (cgroup memory limit, RLIMIT_AS otherwise) */
    uint64_t pids;       /* processes (pids cgroup; RLIMIT_NPROC otherwise) */
    uint64_t cpu_secs;   /* RLIMIT_CPU */
    uint64_t timeout_ms; /* wall clock; the whole step is killed */
    uint64_t file_size;  /* RLIMIT_FSIZE, bytes */
    uint64_t disk;       /* bytes the step may write: the growth of its root (upper dir or
                            rw_root) and of its cache and writable bind mounts' sources,
                            measured every 0.5 s and at the end, the step killed above it
                            (res.disk_exceeded); RLIMIT_FSIZE is at most it, so no single
                            file passes it between checks. tmpfs mounts are memory. */
    uint64_t nofile;     /* RLIMIT_NOFILE */
} kiln_limits_t;

typedef enum kiln_seccomp_profile {
    KILN_SECCOMP_DEFAULT = 0, /* modelled on Docker's default profile */
    KILN_SECCOMP_UNCONFINED,
} kiln_seccomp_profile_t;

typedef enum kiln_log_stream {
    KILN_LOG_STDOUT = 1,
    KILN_LOG_STDERR = 2,
    KILN_LOG_SYSTEM = 3, /* kiln's own notes about the step (isolation chosen, limits, …) */
} kiln_log_stream_t;

/* Receives the step's output one line at a time (without the newline; a
 * line longer than 64 KiB is cut into pieces). `ts` is CLOCK_REALTIME. */
typedef void (*kiln_log_sink_fn)(void *opaque, kiln_log_stream_t stream, const struct timespec *ts,
                                 const char *line, size_t len);

/* Docker's default capability set without CAP_NET_RAW (13), as Podman
 * does, as a bit mask of CAP_* numbers: chown, dac_override, fowner, fsetid,
 * kill, setgid, setuid, setpcap, net_bind_service, sys_chroot, mknod,
 * audit_write, setfcap. `ping` works without it through ICMP datagram
 * sockets (net.ipv4.ping_group_range is opened in the step's netns). */
#define KILN_CAPS_DEFAULT                                                                          \
    ((1ull << 0) | (1ull << 1) | (1ull << 3) | (1ull << 4) | (1ull << 5) | (1ull << 6) |           \
     (1ull << 7) | (1ull << 8) | (1ull << 10) | (1ull << 18) | (1ull << 27) | (1ull << 29) |       \
     (1ull << 31))
/* Every capability (of the step's user namespace): RUN --security=insecure. */
#define KILN_CAPS_ALL (~0ull)

typedef struct kiln_step {
    /* Root filesystem: lowers[0] is the top-most. Each is read-only and may be
     * shared by concurrent steps. */
    const char *const *lowers;
    size_t n_lowers;
    /* Non-zero when the lowers are stored owned in the shifted range
     * (KILN_SANDBOX_ID_BASE + id); otherwise they are id-mapped on the fly. */
    int lowers_shifted;
    /* A fresh empty directory that receives the step's changes (overlay
     * upper form) and a scratch dir next to it on the same filesystem. */
    const char *upper;
    const char *work;
    /* Instead of an overlay (hosts where overlayfs cannot be mounted): a
     * private writable copy of lowers[0] the step runs in directly; its
     * changes are found with the walking differ (sandbox/diff.h). upper and
     * work are then unused. */
    const char *rw_root;

    const char *const *argv; /* argv[0] is looked up in PATH of env */
    const char *const *env;  /* NULL-terminated "K=V"; NULL = a minimal PATH only */
    const char *cwd;         /* inside the step; NULL = "/" */
    uid_t uid;
    gid_t gid;
    const char *hostname; /* NULL = "kiln" */
    const kiln_mount_t *mounts;
    size_t n_mounts;
    kiln_net_mode_t network;
    /* nat: "CIDR[:PORT]" entries (utils/netpolicy.h) that open non-public
     * destinations to the step. Without them a nat step reaches public
     * addresses and the host's resolvers (port 53) only. */
    const char *const *allow_addresses;
    size_t n_allow_addresses;
    kiln_limits_t limits;
    /* --ulimit: set in the step after the limits above (sandbox/stepopts.h), so a nofile
     * given here wins over limits.nofile */
    const kiln_ulimit_t *ulimits;
    size_t n_ulimits;
    /* --add-host: "IP\tHOST\n" lines appended to the step's /etc/hosts */
    const char *const *extra_hosts;
    size_t n_extra_hosts;
    uint64_t shm_size; /* bytes of the /dev/shm tmpfs; 0 = 64 MiB (docker's default) */
    kiln_seccomp_profile_t seccomp;
    uint64_t caps; /* bounding/effective set inside; 0 = KILN_CAPS_DEFAULT */
    kiln_isolation_t isolation;
    int stdin_fd; /* the step's stdin; -1 = /dev/null (kiln_step_init sets -1) */

    /* Non-zero: kiln_sandbox_run returns once the step's status is known, its init (alone,
     * every process of the step reaped) left to exit — the teardown of its namespaces, the
     * kernel's unmount of ~30 mounts and an RCU grace period, overlaps the caller's commit
     * of the upper dir — and res->reap says what to wait for (kiln_sandbox_reap) before
     * the upper or work dir is removed, reused or mounted again. Only where a pid namespace
     * holds the step and without nat (else it is waited for as before, res->reap NULL). */
    int defer_reap;
    /* --network none steps in sandbox isolation take their network namespace from it
     * (sandbox/netns.h: one build's steps reuse empty ones); NULL: a new one each */
    struct kiln_netns_pool *netns_pool;

    kiln_log_sink_fn log;
    void *log_opaque;
} kiln_step_t;

typedef struct kiln_step_result {
    int exit_code;                  /* the step's exit status; 128+signal when killed */
    int signal;                     /* signal that killed the step, 0 if it exited */
    int timed_out;                  /* killed by the wall-clock timeout */
    int oom_killed;                 /* memory cgroup reported an OOM kill */
    int disk_exceeded;              /* wrote more than limits.disk (killed, or found at the end:
                                       the step failed whatever its exit code) */
    kiln_isolation_t isolation;     /* the isolation actually used */
    struct kiln_sandbox_reap *reap; /* step->defer_reap: the init still exiting, or NULL */
} kiln_step_result_t;

/* Fills a step with defaults (network nat, seccomp default, Docker caps,
 * isolation auto, uid 0, cwd "/", no stdin). */
void kiln_step_init(kiln_step_t *step);

/* Runs the step and waits for it (and every process it started) to end.
 * Returns 0 when the step ran (whatever its exit status: see res), negative
 * with err set when it could not be started. */
int kiln_sandbox_run(const kiln_step_t *step, kiln_step_result_t *res, kiln_error_t *err);

/* Waits for the init of a step run with defer_reap (its namespaces gone: the overlay
 * unmounted) and releases what the step held (cgroup, pipes, network namespace). NULL is
 * ignored. */
void kiln_sandbox_reap(struct kiln_sandbox_reap *reap);

/* The strongest isolation this host allows (sandbox, then chroot), for
 * reports; `auto` does not use it. Never none. Cached for the process. */
kiln_isolation_t kiln_sandbox_probe(void);

/* Removes what earlier kiln processes left behind (cgroups named kiln-*,
 * killing any process still in them). Returns the number of cgroups removed. */
int kiln_sandbox_sweep(kiln_error_t *err);

/* Removes the entries "<prefix><pid>-*" of dir (files or trees) whose
 * process pid is gone: scratch dirs a killed kiln left. Returns how many
 * were removed. */
int kiln_sandbox_sweep_dir(const char *dir, const char *prefix);

const char *kiln_isolation_name(kiln_isolation_t iso);
int kiln_isolation_parse(const char *s, kiln_isolation_t *out);
const char *kiln_net_mode_name(kiln_net_mode_t m);
int kiln_net_mode_parse(const char *s, kiln_net_mode_t *out);

#endif
