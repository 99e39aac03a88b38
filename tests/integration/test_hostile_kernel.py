"""Hostile builds against the kernel surface, entitlements and isolation
(issue 13, parts 2, 3 and 7), with the real `kiln run` / `kiln build` and
the real sandbox; and the regression of identical layers (one lower
directory given twice to overlayfs failed with ELOOP)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_image, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402

if os.geteuid() != 0:
    T.skip("hostile kernel suite", "needs root")
    T.done()

ROOT = os.path.join(T.tmp, "root")
# the step opens its mount sources as its own (mapped) root: let it walk in
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)


def build(ctx, *extra, dockerfile=None, env=None):
    args = ["build", "--root", ROOT, "--progress", "plain"]
    if dockerfile is not None:
        path = os.path.join(T.tmp, os.path.basename(ctx) + ".Dockerfile")
        with open(path, "w") as f:
            f.write(dockerfile)
        args += ["-f", path]
    return kiln(*args, *extra, ctx, env=env)


def ctx_dir(name, files):
    return write_tree(os.path.join(T.tmp, name), files)


# --- kernel surface --------------------------------------------------------------
# One static probe tries each way into the kernel a step must not have (and
# the few it keeps) and prints "NAME ok" or "NAME errno ENAME".
PROBE_C = r"""
/* Tries each way into the kernel a step must not have, and the few it must
 * keep; prints one line per probe: "NAME ok" or "NAME errno ENAME". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/kexec.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *ename(int e)
{
    static char buf[16];
    switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ESTALE: return "ESTALE";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case EPROTO: return "EPROTO";
    case EAGAIN: return "EAGAIN";
    }
    snprintf(buf, sizeof(buf), "E%d", e);
    return buf;
}

/* r >= 0: ok (an fd is closed); else the errno */
static void report(const char *name, long r, int e)
{
    if (r >= 0) {
        printf("%s ok\n", name);
        if (r > 2 && r < 1024)
            close((int)r);
    } else {
        printf("%s errno %s\n", name, ename(e));
    }
    fflush(stdout);
}

#define TRY(name, call)                                                                            \
    do {                                                                                           \
        errno = 0;                                                                                 \
        long r_ = (long)(call);                                                                    \
        report(name, r_, errno);                                                                   \
    } while (0)

/* io_uring_setup, then (if it worked) an IORING_OP_SOCKET of AF_PACKET: the
 * socket is made by the kernel, past any socket() filter. */
static void probe_io_uring(void)
{
    struct io_uring_params p;
    int fd;

    memset(&p, 0, sizeof(p));
    errno = 0;
    fd = (int)syscall(__NR_io_uring_setup, 4, &p);
    report("io_uring_setup", fd < 0 ? -1 : 1000, errno);
    if (fd < 0) {
        TRY("io_uring_enter", syscall(__NR_io_uring_enter, 0, 0, 0, 0, NULL, 0));
        TRY("io_uring_register", syscall(__NR_io_uring_register, 0, 0, NULL, 0));
        return;
    }
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (cq_len > sq_len)
        sq_len = cq_len;
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
    struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
                                     PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || sqes == MAP_FAILED) {
        printf("io_uring_socket_packet errno %s\n", ename(errno));
        close(fd);
        return;
    }
    char *cq = sq; /* IORING_FEAT_SINGLE_MMAP on every kernel with IORING_OP_SOCKET */
    uint32_t tail = *(uint32_t *)(sq + p.sq_off.tail);
    uint32_t idx = tail & *(uint32_t *)(sq + p.sq_off.ring_mask);
    memset(&sqes[idx], 0, sizeof(sqes[idx]));
    sqes[idx].opcode = IORING_OP_SOCKET;
    sqes[idx].fd = AF_PACKET;
    sqes[idx].off = SOCK_RAW;
    sqes[idx].len = htons(3); /* ETH_P_ALL */
    ((uint32_t *)(sq + p.sq_off.array))[idx] = idx;
    __atomic_store_n((uint32_t *)(sq + p.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        printf("io_uring_socket_packet errno %s\n", ename(errno));
    } else {
        uint32_t head = *(uint32_t *)(cq + p.cq_off.head);
        struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
                                   (head & *(uint32_t *)(cq + p.cq_off.ring_mask));
        report("io_uring_socket_packet", cqe->res, -cqe->res);
    }
    close(fd);
}

static long do_clone(unsigned long flags)
{
    long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long do_perf(void)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof(a));
    a.type = PERF_TYPE_SOFTWARE;
    a.size = sizeof(a);
    a.config = PERF_COUNT_SW_TASK_CLOCK;
    a.disabled = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    return syscall(__NR_perf_event_open, &a, 0, -1, -1, 0);
}

static long do_bpf(void)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    return syscall(__NR_bpf, BPF_MAP_CREATE, &a, sizeof(a));
}

static long do_open_by_handle(void)
{
    struct {
        struct file_handle h;
        unsigned char b[64];
    } fh;
    memset(&fh, 0, sizeof(fh));
    fh.h.handle_bytes = 8;
    fh.h.handle_type = 1;
    return syscall(SYS_open_by_handle_at, AT_FDCWD, &fh.h, O_RDONLY);
}

static long do_setns(void)
{
    int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    long r;
    if (fd < 0) /* no /proc: any fd; the kernel would say EINVAL, seccomp EPERM */
        return syscall(SYS_setns, 0, CLONE_NEWNET);
    r = syscall(SYS_setns, fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* An ICMP echo to 127.0.0.1 through an ICMP datagram socket, as iputils
 * ping does without CAP_NET_RAW; 0 when the reply came. */
static long do_ping(void)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned char pkt[16] = {8, 0, 0, 0, 0, 0, 0, 1}, reply[256];
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
    long n;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    n = sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to));
    if (n >= 0)
        n = recv(fd, reply, sizeof(reply), 0);
    if (n >= 0 && (n < 1 || reply[0] != 0)) /* type 0: echo reply */
        errno = EPROTO, n = -1;
    int e = errno;
    close(fd);
    errno = e;
    return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    int host = argc > 1 && strcmp(argv[1], "--host") == 0;

    probe_io_uring();
    TRY("packet_raw", socket(AF_PACKET, SOCK_RAW, htons(3)));
    TRY("packet_dgram", socket(AF_PACKET, SOCK_DGRAM, htons(3)));
    TRY("packet_raw_flags", socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(3)));
    /* high bits in the register: the kernel reads an int */
    TRY("packet_raw_highbits", syscall(SYS_socket, 0x100000000L | AF_PACKET, SOCK_RAW, htons(3)));
    TRY("inet_raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    TRY("inet_raw_flags", socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    TRY("inet6_raw", socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
    TRY("inet_packet", socket(AF_INET, SOCK_PACKET, htons(3)));
    TRY("inet_ping", socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP));
    TRY("ping_echo", do_ping());
    TRY("inet_tcp", socket(AF_INET, SOCK_STREAM, 0));
    TRY("vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
    TRY("unix_stream", socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    /* module-loaded families a build never needs */
    TRY("family_alg", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    TRY("family_key", socket(15 /* AF_KEY */, SOCK_RAW, 2 /* PF_KEY_V2 */));
    TRY("family_xdp", socket(44 /* AF_XDP */, SOCK_RAW, 0));
    TRY("family_rds", socket(21 /* AF_RDS */, SOCK_SEQPACKET, 0));
    TRY("family_tipc", socket(30 /* AF_TIPC */, SOCK_RDM, 0));
    TRY("family_can", socket(29 /* AF_CAN */, SOCK_RAW, 1 /* CAN_RAW */));
    TRY("family_bluetooth", socket(31 /* AF_BLUETOOTH */, SOCK_RAW, 0));
    TRY("family_appletalk", socket(5 /* AF_APPLETALK */, SOCK_DGRAM, 0));
    TRY("netlink_route", socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    TRY("netlink_sock_diag", socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG));
    TRY("netlink_usersock", socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK));
    TRY("netlink_audit", socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT));
    TRY("netlink_netfilter", socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER));
    TRY("netlink_uevent", socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT));
    TRY("netlink_generic", socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC));
    TRY("netlink_audit_highbits",
        syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0x100000000L | NETLINK_AUDIT));
    TRY("userfaultfd", syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    TRY("perf_event_open", do_perf());
    TRY("bpf", do_bpf());
    TRY("open_by_handle_at", do_open_by_handle());
    if (!host) {
        /* kexec_load with no segment unloads the host's crash kernel */
        TRY("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, KEXEC_ARCH_DEFAULT));
        TRY("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
        TRY("unshare_user_net", unshare(CLONE_NEWUSER | CLONE_NEWNET));
        TRY("unshare_net", unshare(CLONE_NEWNET));
        TRY("clone_newuser", do_clone(CLONE_NEWUSER));
        TRY("clone3", syscall(SYS_clone3, NULL, 0));
        TRY("setns", do_setns());
    }
    return 0;
}
"""

# What a step gets for each probe: the errno of the refusal, or ok.
EXPECT = {
    "io_uring_setup": "ENOSYS", "io_uring_enter": "ENOSYS", "io_uring_register": "ENOSYS",
    "packet_raw": "EAFNOSUPPORT", "packet_dgram": "EAFNOSUPPORT", "packet_raw_flags": "EAFNOSUPPORT",
    "packet_raw_highbits": "EAFNOSUPPORT",
    "inet_raw": "EPERM", "inet_raw_flags": "EPERM", "inet6_raw": "EPERM", "inet_packet": "EPERM",
    "inet_ping": "ok", "ping_echo": "ok", "inet_tcp": "ok",
    "vsock": "EAFNOSUPPORT", "unix_stream": "ok",
    "family_alg": "EAFNOSUPPORT", "family_key": "EAFNOSUPPORT", "family_xdp": "EAFNOSUPPORT",
    "family_rds": "EAFNOSUPPORT", "family_tipc": "EAFNOSUPPORT", "family_can": "EAFNOSUPPORT",
    "family_bluetooth": "EAFNOSUPPORT", "family_appletalk": "EAFNOSUPPORT",
    "netlink_route": "ok", "netlink_sock_diag": "ok",
    "netlink_usersock": "EAFNOSUPPORT", "netlink_audit": "EAFNOSUPPORT",
    "netlink_netfilter": "EAFNOSUPPORT", "netlink_uevent": "EAFNOSUPPORT",
    "netlink_generic": "EAFNOSUPPORT", "netlink_audit_highbits": "EAFNOSUPPORT",
    "userfaultfd": "EPERM", "perf_event_open": "EPERM", "bpf": "EPERM", "open_by_handle_at": "EPERM",
    "kexec_load": "EPERM", "kexec_file_load": "EPERM",
    "unshare_user_net": "EPERM", "unshare_net": "EPERM", "clone_newuser": "EPERM",
    "clone3": "ENOSYS", "setns": "EPERM",
}


def parse_probe(text):
    res = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "ok":
            res[parts[0]] = "ok"
        elif len(parts) == 3 and parts[1] == "errno":
            res[parts[0]] = parts[2]
    return res


def check_table(label, text, names=None):
    got = parse_probe(text)
    for name in names or EXPECT:
        want = EXPECT[name]
        what = "allowed" if want == "ok" else "denied (%s)" % want
        T.check("[%s] %s %s" % (label, name, what), got.get(name) == want,
                "got %s\n%s" % (got.get(name), text))


MARKER = os.path.join(T.tmp, "host-marker")
with open(MARKER, "w") as f:
    f.write("host\n")
MARKER_STAT = os.stat(MARKER)
RFS = os.path.join(T.tmp, "probe-rootfs")
have_gcc = shutil.which("gcc") is not None
if have_gcc:
    with open(os.path.join(T.tmp, "probe.c"), "w") as f:
        f.write(PROBE_C)
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(RFS, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(RFS, "bin", "busybox"))
    os.symlink("busybox", os.path.join(RFS, "bin", "sh"))
    with open(os.path.join(RFS, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0::/:/bin/sh\nnobody:x:1000:1000::/:/bin/sh\n")
    cc = subprocess.run(["gcc", "-static", "-O1", "-o", os.path.join(RFS, "probe"),
                         os.path.join(T.tmp, "probe.c")], capture_output=True, text=True)
    T.check("the probe builds (gcc -static)", cc.returncode == 0, cc.stderr)
    have_gcc = cc.returncode == 0
if not have_gcc:
    T.skip("kernel surface probes", "needs gcc -static")
else:
    # The control: on the host (as root) the probes reach the kernel, so a
    # refusal in a step is the sandbox's doing.
    host = subprocess.run([os.path.join(RFS, "probe"), "--host"], capture_output=True, text=True)
    got = parse_probe(host.stdout)
    for name in ("io_uring_socket_packet", "packet_raw", "packet_raw_highbits", "inet_raw",
                 "netlink_audit", "bpf"):
        T.check("[host control] %s works outside a step" % name, got.get(name) == "ok", host.stdout)
    for iso in ("sandbox", "chroot"):
        r = kiln("run", "--rootfs", RFS, "--isolation", iso, "--network", "none", "--", "/probe")
        T.check("[%s] the probe ran" % iso, r.returncode == 0, r.stderr)
        check_table(iso, r.stdout)
        T.check("[%s] io_uring gave no AF_PACKET socket" % iso,
                "io_uring_socket_packet" not in r.stdout, r.stdout)
        r = kiln("run", "--rootfs", RFS, "--isolation", iso, "--network", "none", "--user", "nobody",
                 "--", "/probe")
        check_table(iso + ", uid 1000", r.stdout, ["inet_ping", "ping_echo", "inet_raw", "packet_raw"])
    # chroot on a host without any namespace (simulated): the strict filter
    # alone, in the host's network namespace (no ping range of its own there)
    r = kiln("run", "--rootfs", RFS, "--isolation", "chroot", "--differ", "walk", "--network", "none",
             "--", "/probe", env={"KILN_SANDBOX_NO_NAMESPACES": "1"})
    T.check("[chroot without namespaces] the probe ran", r.returncode == 0, r.stderr)
    check_table("chroot without namespaces", r.stdout,
                [k for k in EXPECT if k not in ("inet_ping", "ping_echo")])
    r = kiln("run", "--rootfs", RFS, "--network", "nat", "--", "/probe")
    check_table("nat network", r.stdout, ["ping_echo", "inet_raw", "packet_raw", "vsock",
                                          "netlink_route", "netlink_audit"])
    # The same in a RUN of `kiln build`.
    out = os.path.join(T.tmp, "probe-build-out")
    ctx = os.path.join(T.tmp, "probe-ctx")
    os.makedirs(ctx)
    shutil.copy(os.path.join(RFS, "probe"), os.path.join(ctx, "probe"))
    r = build(ctx, "-o", f"type=local,dest={out}",
              dockerfile=f"FROM {BASE}\nCOPY probe /probe\nRUN /probe > /probe.out\n")
    T.check("[build] RUN of the probe succeeds", r.returncode == 0, r.stderr)
    try:
        with open(os.path.join(out, "probe.out")) as f:
            check_table("build RUN", f.read())
    except OSError as e:
        T.check("[build] the probe's results are in the image", False, str(e))

# --- identical layers (ELOOP) --------------------------------------------------
ctx = ctx_dir("eloop", {"package.json": "{}\n"})
out = os.path.join(T.tmp, "eloop-out")
r = build(ctx, "-o", f"type=oci,dest={out}", dockerfile=f"FROM {BASE}\nRUN true\nRUN true\nRUN echo x\n")
T.check("RUN true / RUN true / RUN echo x builds", r.returncode == 0, r.stderr)
if r.returncode == 0:
    man, _ = read_image(out)
    T.check("the RUNs that changed no file (all three) make no layer (empty_layer, as BuildKit)",
            len(man["layers"]) == 1, str(man["layers"]))
# two steps writing the same bytes (times clamped): identical layers, one lower dir
out = os.path.join(T.tmp, "eloop-same-out")
r = build(ctx, "--source-date-epoch", "0", "-o", f"type=oci,dest={out}",
          dockerfile=f"FROM {BASE}\nRUN echo x > /f\nRUN echo x > /f\nRUN cat /f\n")
T.check("RUN echo x > /f twice, then RUN, builds (identical layers, one lower)", r.returncode == 0,
        r.stderr)
if r.returncode == 0:
    man, _ = read_image(out)
    T.check("the repeated identical layer is still a layer of the image",
            len(man["layers"]) == 3 and man["layers"][1] == man["layers"][2], str(man["layers"]))
out = os.path.join(T.tmp, "eloop-copy-out")
r = build(ctx, "-o", f"type=oci,dest={out}",
          dockerfile=f"FROM {BASE}\nWORKDIR /app\nCOPY package.json ./\nCOPY . .\nRUN cat package.json\n")
T.check("COPY package.json then COPY . . of a one-file project, then RUN, builds", r.returncode == 0,
        r.stderr)

# --- entitlements (kiln build --allow) ------------------------------------------------
def marker_step(name):
    """A RUN whose output (not its echoed title) shows that it ran."""
    return "RUN touch /%s && echo STEP-RAN-\"%s\"\n" % (name, name)


ctx = ctx_dir("ent", {"f": "x\n"})
df = f"FROM {BASE}\n" + marker_step("first") + "RUN --network=host cat /proc/net/dev\n"
r = build(ctx, dockerfile=df)
T.check("RUN --network=host without --allow fails", r.returncode != 0, r.stderr)
T.check("the error names the line, the instruction and the entitlement",
        "Dockerfile:3: RUN --network=host needs the network.host entitlement: start the build with "
        "--allow network.host" in r.stderr, r.stderr)
T.check("no step ran before the refusal", "STEP-RAN-first" not in r.stderr and "#2" not in r.stderr,
        r.stderr)
r = build(ctx, "--allow", "network.host", dockerfile=df)
T.check("with --allow network.host the step shares the host's network",
        r.returncode == 0 and "STEP-RAN-first" in r.stderr, r.stderr)
# the step sees the host's interfaces (more than lo), unlike a nat/none step
host_ifs = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
T.check("the host network step saw the host's interfaces",
        all(("#3 " in r.stderr and i in r.stderr) for i in host_ifs), r.stderr)

df = f"FROM {BASE}\nRUN --security=insecure grep -e CapEff -e Seccomp: /proc/self/status\n"
r = build(ctx, dockerfile=df)
T.check("RUN --security=insecure without --allow fails naming security.insecure",
        r.returncode != 0 and "Dockerfile:2: RUN --security=insecure needs the security.insecure "
        "entitlement: start the build with --allow security.insecure" in r.stderr, r.stderr)
r = build(ctx, "--allow", "network.host,security.insecure", dockerfile=df)
T.check("with --allow security.insecure the step has every capability and no seccomp filter",
        r.returncode == 0 and "CapEff:\t000001ffffffffff" in r.stderr and "Seccomp:\t0" in r.stderr,
        r.stderr)
r = build(ctx, dockerfile=f"FROM {BASE}\nRUN grep -e CapEff -e Seccomp: /proc/self/status\n")
T.check("a plain RUN has the reduced set (no CAP_NET_RAW, no CAP_SYS_ADMIN) and seccomp",
        r.returncode == 0 and "CapEff:\t00000000a80405fb" in r.stderr and "Seccomp:\t2" in r.stderr,
        r.stderr)
r = build(ctx, "--allow", "security.insecure", "--isolation", "chroot", dockerfile=df)
T.check("--security=insecure is refused with chroot isolation (it would be host root)",
        r.returncode != 0 and "needs user namespaces" in r.stderr, r.stderr)
r = build(ctx, "--allow", "network.all", dockerfile=df)
T.check("an unknown entitlement is a usage error naming it",
        r.returncode == 2 and "unknown entitlement 'network.all'" in r.stderr, r.stderr)
r = build(ctx, dockerfile=f"FROM {BASE}\nRUN --network=hostx true\n")
T.check("an unknown RUN --network mode is refused naming it",
        r.returncode != 0 and "Dockerfile:2: RUN --network=hostx: unknown network mode" in r.stderr,
        r.stderr)

# --- isolation ----------------------------------------------------------------------
meta = os.path.join(T.tmp, "meta.json")
df = f"FROM {BASE}\n" + marker_step("iso")
r = build(ctx, "--metadata-file", meta, dockerfile=df, env={"KILN_SANDBOX_NO_NAMESPACES": "1"})
T.check("without user namespaces the default isolation fails instead of running as root",
        r.returncode != 0 and "user namespaces are unavailable" in r.stderr
        and "--isolation chroot" in r.stderr and "real root" in r.stderr, r.stderr)
T.check("... and no step ran", "STEP-RAN-iso" not in r.stderr, r.stderr)
r = kiln("run", "--rootfs", RFS if have_gcc else ROOT, "--network", "none", "--", "/bin/sh", "-c", "true",
         env={"KILN_SANDBOX_NO_NAMESPACES": "1"})
T.check("kiln run: auto does not fall back to chroot either",
        r.returncode != 0 and "user namespaces are unavailable" in r.stderr, r.stderr)
r = build(ctx, "--metadata-file", meta, dockerfile=df)
ev = json.load(open(meta))["kiln.event"] if os.path.exists(meta) else {}
T.check("the completion event records isolation sandbox and no entitlement",
        r.returncode == 0 and ev.get("isolation") == "sandbox" and ev.get("entitlements") == [],
        "%s\n%s" % (ev, r.stderr))
r = build(ctx, "--isolation", "chroot", "--allow", "network.host", "--metadata-file", meta,
          dockerfile=df + "RUN id -u\n")
ev = json.load(open(meta))["kiln.event"] if os.path.exists(meta) else {}
T.check("--isolation chroot is the operator's choice: it runs, and says so",
        r.returncode == 0 and "isolation chroot" in r.stderr, r.stderr)
T.check("the completion event records isolation chroot and the entitlements granted",
        ev.get("isolation") == "chroot" and ev.get("entitlements") == ["network.host"], str(ev))
r = build(ctx, "--isolation", "jail", dockerfile=df)
T.check("a bad --isolation is a usage error", r.returncode == 2 and "--isolation" in r.stderr, r.stderr)

# --- the server: "allow" only where the config grants it; chroot only by policy -------
from server_common import TOKEN, Server, tar_gz  # noqa: E402

layout = BASE.split(":")[1]
policy_common = {"oci_dirs": [T.tmp]}


def server(name, policy, extra=()):
    return Server(os.path.join(T.tmp, name), workers=1,
                  config={"tokens": [TOKEN], "policy": dict(policy_common, **policy)},
                  extra=["--kiln-root=" + os.path.join(T.tmp, name + "-kiln"), *extra])


def upload(srv, dockerfile):
    st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": dockerfile.encode()}))
    return body["context"] if st == 201 else None


NETHOST_DF = f"FROM {BASE}\nRUN --network=host cat /proc/net/dev\n"
srv = server("srv-default", {}).start()
c1 = upload(srv, NETHOST_DF)
st, body = srv.submit({"source": {"context": c1}, "allow": ["network.host"]})
T.check("server: \"allow\" beyond the config's entitlements is refused (400 naming the field)",
        st == 400 and "'allow[0]'" in json.dumps(body) and "not granted" in json.dumps(body),
        "%s %s" % (st, body))
st, body = srv.submit({"source": {"context": c1}, "allow": ["root"]})
T.check("server: an unknown entitlement is refused (400 naming the field)",
        st == 400 and "'allow[0]'" in json.dumps(body), "%s %s" % (st, body))
st, body = srv.submit({"source": {"context": c1}})
b = srv.wait_status(body["id"], ("succeeded", "failed")) if st == 202 else {}
T.check("server: RUN --network=host without \"allow\" fails naming the entitlement",
        b.get("status") == "failed" and "needs the network.host entitlement" in json.dumps(b), str(b))
c2 = upload(srv, f"FROM {BASE}\nRUN true\n")
st, body = srv.submit({"source": {"context": c2}})
b = srv.wait_status(body["id"], ("succeeded", "failed")) if st == 202 else {}
res = (b or {}).get("result") or {}
T.check("server: the build record says the build ran in the sandbox",
        b.get("status") == "succeeded" and res.get("kiln.event", {}).get("isolation") == "sandbox"
        and b.get("isolation") == "sandbox" and b.get("allow") == [], str(b))
srv.term()

# chroot only through the policy, never a --build-option
bad = Server(os.path.join(T.tmp, "srv-bad"), workers=1, config={"tokens": [TOKEN]},
             extra=["--build-option=--isolation=chroot"])
p = subprocess.run(bad.args, capture_output=True, text=True, timeout=60)
T.check("server: --build-option=--isolation=chroot without the policy is refused at startup",
        p.returncode == 2 and "\"policy\": {\"isolation\": \"chroot\"}" in p.stderr
        and "real root" in p.stderr, p.stderr)

r = kiln("worker", "--queue", "http://127.0.0.1:9/000000000000/jobs", "--root",
         os.path.join(T.tmp, "worker"), "--build-option=--isolation=chroot", timeout=60)
T.check("worker: --build-option=--isolation=chroot is refused, naming kiln worker --isolation",
        r.returncode == 2 and "kiln worker --isolation chroot" in r.stderr, r.stderr)
r = kiln("worker", "--queue", "http://127.0.0.1:9/000000000000/jobs", "--allow", "network.any",
         timeout=60)
T.check("worker: an unknown --allow entitlement is a usage error",
        r.returncode == 2 and "network.any" in r.stderr, r.stderr)

srv = server("srv-granted", {"entitlements": ["network.host"], "isolation": "chroot"}).start()
c1 = upload(srv, NETHOST_DF)
st, body = srv.submit({"source": {"context": c1}, "allow": ["network.host"]})
b = srv.wait_status(body["id"], ("succeeded", "failed")) if st == 202 else {}
res = (b or {}).get("result") or {}
ev = res.get("kiln.event", {})
T.check("server: \"allow\" granted by the config runs RUN --network=host",
        st == 202 and b.get("status") == "succeeded", "%s %s" % (body, b))
T.check("server: the build record says isolation chroot (policy) and the entitlement",
        ev.get("isolation") == "chroot" and ev.get("entitlements") == ["network.host"]
        and b.get("isolation") == "chroot" and b.get("allow") == ["network.host"], str(b))
T.check("server: the operator is told at startup that steps run as real root",
        "policy isolation chroot" in srv.server_log(), srv.server_log())
srv.term()

st = os.stat(MARKER)
with open(MARKER) as f:
    T.check("the host marker is unchanged", f.read() == "host\n" and st.st_mtime == MARKER_STAT.st_mtime
            and st.st_ctime == MARKER_STAT.st_ctime)
T.done()
