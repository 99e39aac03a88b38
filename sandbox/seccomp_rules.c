/* kiln — the rules of a step's seccomp filter, compiled with libseccomp (see
 * seccomp_rules.h). Built into sandbox/seccomp_gen, which runs at build time,
 * and the unit tests; kiln itself carries the compiled programs. */
#include "sandbox/seccomp_rules.h"

#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"

/* Denied with EPERM, as in Docker's default profile (these need capabilities a
 * step never has, or reach outside the step). */
static const char *const denied_syscalls[] = {
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "reboot",
    "swapon",
    "swapoff",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "setns",
    "userfaultfd",
    "open_by_handle_at",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "lookup_dcookie",
    "uselib",
    "vm86",
    "vm86old",
    "nfsservctl",
    "_sysctl",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "fanotify_init",
    "name_to_handle_at",
};

#define NS_FLAGS                                                                                   \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |     \
     CLONE_NEWCGROUP | CLONE_NEWTIME)

static const uint64_t ns_flag_list[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME};

/* Adds one rule; a syscall this architecture lacks is skipped. Returns the
 * libseccomp error (negative) for anything else. */
static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n_args,
                    const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name(name);
    int r;

    if (nr == __NR_SCMP_ERROR || nr < 0)
        return 0;
    r = seccomp_rule_add_array(ctx, action, nr, n_args, args);
    return r == -EDOM || r == -EFAULT ? 0 : r;
}

static const char *const io_uring_calls[] = {"io_uring_setup", "io_uring_enter",
                                             "io_uring_register"};

/* The kernel reads socket()'s int arguments from the low 32 bits of the
 * registers: compare only those, or a value with high bits set would pass a
 * plain 64-bit equality (and still make an AF_PACKET socket). */
#define LOW32 0xffffffffull
#define SOCK_TYPE_BITS 0xfull /* the type without SOCK_NONBLOCK / SOCK_CLOEXEC */

/* Sockets a step may create: AF_UNIX, AF_INET and AF_INET6 (but not their
 * SOCK_RAW or SOCK_PACKET, which the kernel turns into AF_PACKET), and
 * AF_NETLINK for NETLINK_ROUTE (ip, ifconfig, getaddrinfo's AI_ADDRCONFIG)
 * and NETLINK_SOCK_DIAG (ss) only, as bubblewrap/Flatpak allow-list them.
 * Every other family is refused with EAFNOSUPPORT: AF_PACKET (frames written
 * around the step network's routes and filters), AF_VSOCK (the hypervisor's
 * and the host's services), and the module-loaded families a build never
 * needs and exploits keep finding bugs in (AF_ALG, AF_KEY, AF_XDP, AF_RDS,
 * AF_TIPC, AF_CAN, AF_BLUETOOTH, …). Netlink protocols are 0..31: any above
 * NETLINK_SOCK_DIAG (4) goes, audit, uevents, netfilter, xfrm and generic
 * netlink included. A 64-bit "greater than" also refuses values with high
 * bits set, which the kernel would read as a small int. */
static int add_socket_rules(scmp_filter_ctx ctx)
{
    uint32_t noaf = SCMP_ACT_ERRNO(EAFNOSUPPORT), eperm = SCMP_ACT_ERRNO(EPERM);
    static const int inet[] = {AF_INET, AF_INET6};
    static const int raw_types[] = {SOCK_RAW, SOCK_PACKET};
    static const int netlink_denied[] = {1, 2, 3}; /* below NETLINK_SOCK_DIAG */
    int r;

    {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_GT, AF_NETLINK);
        if ((r = add_rule(ctx, noaf, "socket", 1, &a)) < 0)
            return r;
    }
    for (int f = AF_UNSPEC; f < AF_NETLINK; f++) {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)f);
        if (f == AF_UNIX || f == AF_INET || f == AF_INET6)
            continue;
        if ((r = add_rule(ctx, noaf, "socket", 1, &a)) < 0)
            return r;
    }
    for (size_t i = 0; i < sizeof(inet) / sizeof(inet[0]); i++) {
        for (size_t k = 0; k < sizeof(raw_types) / sizeof(raw_types[0]); k++) {
            struct scmp_arg_cmp a[2] = {
                SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)inet[i]),
                SCMP_A1(SCMP_CMP_MASKED_EQ, SOCK_TYPE_BITS, (uint64_t)raw_types[k])};
            if ((r = add_rule(ctx, eperm, "socket", 2, a)) < 0)
                return r;
        }
    }
    {
        struct scmp_arg_cmp a[2] = {SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_NETLINK),
                                    SCMP_A2(SCMP_CMP_GT, NETLINK_SOCK_DIAG)};
        if ((r = add_rule(ctx, noaf, "socket", 2, a)) < 0)
            return r;
    }
    for (size_t i = 0; i < sizeof(netlink_denied) / sizeof(netlink_denied[0]); i++) {
        struct scmp_arg_cmp a[2] = {
            SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_NETLINK),
            SCMP_A2(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)netlink_denied[i])};
        if ((r = add_rule(ctx, noaf, "socket", 2, a)) < 0)
            return r;
    }
    return 0;
}

/* Builds the rule set into ctx. `strict` adds what chroot isolation needs
 * because there is no pid/user namespace around the step. */
static int build_rules(scmp_filter_ctx ctx, int strict)
{
    uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    int r;

    for (size_t i = 0; i < sizeof(denied_syscalls) / sizeof(denied_syscalls[0]); i++) {
        if ((r = add_rule(ctx, eperm, denied_syscalls[i], 0, NULL)) < 0)
            return r;
    }
    /* New namespaces: clone/unshare with any CLONE_NEW* flag. clone3 passes
     * its flags in memory seccomp cannot read: ENOSYS makes libc fall back
     * to clone, as Docker does. */
    for (size_t i = 0; i < sizeof(ns_flag_list) / sizeof(ns_flag_list[0]); i++) {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flag_list[i], ns_flag_list[i]);
        if ((r = add_rule(ctx, eperm, "clone", 1, &a)) < 0 ||
            (r = add_rule(ctx, eperm, "unshare", 1, &a)) < 0)
            return r;
    }
    if ((r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL)) < 0)
        return r;
    /* Device nodes: no block or character devices (a step needs neither). */
    {
        struct scmp_arg_cmp blk1 = SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFBLK);
        struct scmp_arg_cmp chr1 = SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFCHR);
        struct scmp_arg_cmp blk2 = SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFBLK);
        struct scmp_arg_cmp chr2 = SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFCHR);
        if ((r = add_rule(ctx, eperm, "mknod", 1, &blk1)) < 0 ||
            (r = add_rule(ctx, eperm, "mknod", 1, &chr1)) < 0 ||
            (r = add_rule(ctx, eperm, "mknodat", 1, &blk2)) < 0 ||
            (r = add_rule(ctx, eperm, "mknodat", 1, &chr2)) < 0)
            return r;
    }
    if ((r = add_socket_rules(ctx)) < 0)
        return r;
    /* io_uring runs socket, open and other operations in kernel workers,
     * out of this filter's sight (IORING_OP_SOCKET made AF_PACKET sockets).
     * ENOSYS, as on a kernel built without it: callers (libuv, …) fall back. */
    for (size_t i = 0; i < sizeof(io_uring_calls) / sizeof(io_uring_calls[0]); i++) {
        if ((r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), io_uring_calls[i], 0, NULL)) < 0)
            return r;
    }
    if (strict) {
        /* Without a pid namespace the host's processes are visible: no
         * ptrace or memory access of other processes, no chroot escapes. */
        static const char *const more[] = {"ptrace", "process_vm_readv", "process_vm_writev",
                                           "kcmp",   "chroot",           "unshare"};
        for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
            if ((r = add_rule(ctx, eperm, more[i], 0, NULL)) < 0)
                return r;
        }
    }
    return 0;
}

/* Exports ctx as a BPF program into *out (malloc'ed). */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *out, kiln_error_t *err)
{
    _cleanup_close_ int fd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r;

    if (fd < 0)
        return kiln_error_set(err, errno, "memfd_create for the seccomp filter");
    if ((r = seccomp_export_bpf(ctx, fd)) < 0)
        return kiln_error_set(err, -r, "exporting the seccomp filter");
    if (lseek(fd, 0, SEEK_SET) < 0)
        return kiln_error_set(err, errno, "seeking the seccomp filter");
    if (kiln_fs_read_fd(fd, 1 << 20, &data, &len, err) < 0)
        return kiln_error_prefix(err, "reading the seccomp filter");
    if (len == 0 || len % sizeof(struct sock_filter) != 0)
        return kiln_error_set(err, 0, "seccomp filter has a bad size (%zu bytes)", len);
    out->len = (unsigned short)(len / sizeof(struct sock_filter));
    out->filter = (struct sock_filter *)steal_pointer(&data);
    return 0;
}

static void seccomp_ctx_freep(scmp_filter_ctx *ctx)
{
    if (*ctx != NULL)
        seccomp_release(*ctx);
}

int kiln_seccomp_compile(int strict, struct sock_fprog *out, kiln_error_t *err)
{
    __attribute__((cleanup(seccomp_ctx_freep))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int r;

    if (ctx == NULL)
        return kiln_error_set(err, ENOMEM, "seccomp_init");
    /* We set no_new_privs ourselves, earlier. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if ((r = build_rules(ctx, strict)) < 0)
        return kiln_error_set(err, -r, "building the seccomp filter");
    return export_bpf(ctx, out, err);
}
