"""Hostile egress: what a RUN step on the nat network can reach, and the operator's
address allowlist (--allow-address, "policy": {"allow_addresses": [...]}).

Nothing leaves 127.0.0.0/8 or the namespaces made here: the test re-runs itself in a
network and mount namespace of its own (`unshare -n -m`), where kiln's "host" has
loopback, a veth link holding 10.203.0.1/24 and fd42::1/64 (private addresses and
host addresses at once) to a second namespace ("outside", 10.203.0.2/24: a private
network that is not the host), and a resolv.conf (bind-mounted in the private mount
namespace) naming a tiny DNS responder on 127.0.0.1. Listeners on 10.203.0.1,
127.0.0.1, [fd42::1] and 10.203.0.2 record every connection: a refused destination
must record none, and kiln's log must name the address and the --allow-address that
opens it; with that allowlist entry the same connection works (the test can fail)."""
import os
import subprocess
import sys

MARK = "KILN_EGRESS_TEST_NETNS"

if os.environ.get(MARK) != "1":
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        print("ok 1 - egress tests # SKIP unshare -n -m unavailable: %s" % probe.stderr.strip())
        print("1..1")
        sys.exit(0)
    env = dict(os.environ, **{MARK: "1"})
    os.execvpe("unshare", ["unshare", "-n", "-m", "--", sys.executable, os.path.abspath(__file__)],
               env)

import ctypes  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import SRC, T, kiln  # noqa: E402
from server_common import TOKEN, Server, busybox_layout, tar_gz, write_fake_build  # noqa: E402


def sh(*argv):
    return subprocess.run(argv, capture_output=True, text=True)


sh("ip", "link", "set", "lo", "up")

# --- the allowlist is checked up front, on every command ---
for cmd in (["build", "."], ["run", "--rootfs", "/", "--", "true"], ["serve"],
            ["worker", "--queue", "http://127.0.0.1:9/q"]):
    r = kiln(cmd[0], "--allow-address", "10.0.0.0/33", *cmd[1:])
    T.check("kiln %s --allow-address 10.0.0.0/33: usage error naming the entry" % cmd[0],
            r.returncode == 2 and '"10.0.0.0/33"' in r.stderr, r.stderr)

cfg = os.path.join(T.tmp, "bad-policy.json")
with open(cfg, "w") as f:
    json.dump({"tokens": [TOKEN], "policy": {"allow_addresses": ["192.168.0.0/16", "mirror.lan"]}}, f)
r = kiln("serve", "--config", cfg, "--root", os.path.join(T.tmp, "bad-root"), "--listen", "127.0.0.1:9",
         timeout=30)
T.check("kiln serve refuses a config whose allow_addresses entry is bad, naming it",
        r.returncode != 0 and "policy.allow_addresses[1]" in r.stderr and "mirror.lan" in r.stderr,
        r.stderr)

# --- the server passes its policy to every build it runs ---
fake = write_fake_build(T.tmp)
argslog = os.path.join(T.tmp, "args.log")
srv = Server(os.path.join(T.tmp, "root"), workers=1, build_command=fake,
             config={"tokens": [TOKEN], "policy": {"allow_addresses": ["10.8.0.0/16:3128"]}},
             extra=["--allow-address", "[fd00::/8]:443"],
             env={"FAKE_SLEEP": "0", "FAKE_ARGSLOG": argslog}).start()
st, body = srv.submit({"source": {"git": "https://git.example.test/acme/app.git", "ref": "main"}})
if st in (201, 202):
    srv.wait_status(body["id"], ("succeeded", "failed"), timeout=60)
args = open(argslog).read() if os.path.exists(argslog) else ""
T.check("server builds run with --server-mode", " --server-mode " in " %s " % args, (st, body, args))
T.check("server builds get the config's and the command line's allowlist",
        "--allow-address=10.8.0.0/16:3128" in args and "--allow-address=[fd00::/8]:443" in args, args)
srv.term()

# --- the network cases ---
missing = [t for t in ("slirp4netns", "gcc", "ip", "busybox") if shutil.which(t) is None]
if os.geteuid() != 0 or missing:
    T.skip("nat egress cases", "need root and %s" % ", ".join(missing or ["root"]))
    T.done()

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000

# "outside": a process in a network namespace of its own holds it open
outside = T.spawn(["unshare", "-n", "sleep", "3600"])
time.sleep(0.2)
out_ns = "/proc/%d/ns/net" % outside.pid
for cmd in (["ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
             str(outside.pid)],
            ["ip", "addr", "add", "10.203.0.1/24", "dev", "veth0"],
            ["ip", "addr", "add", "fd42::1/64", "dev", "veth0", "nodad"],
            ["ip", "link", "set", "veth0", "up"],
            ["nsenter", "-t", str(outside.pid), "-n", "ip", "link", "set", "lo", "up"],
            ["nsenter", "-t", str(outside.pid), "-n", "ip", "addr", "add", "10.203.0.2/24", "dev",
             "veth1"],
            ["nsenter", "-t", str(outside.pid), "-n", "ip", "link", "set", "veth1", "up"]):
    r = sh(*cmd)
    if r.returncode != 0:
        T.check("network setup: %s" % " ".join(cmd), False, r.stderr)
        T.done()

connections = {}  # listener name -> number of connections accepted


def listen(name, family, addr, netns=None):
    """A TCP listener (in netns when given: setns applies to the creating thread only)
    answering one HTTP/1.0 response holding marker-NAME; returns its port."""
    ready = threading.Event()
    box = {}

    def run():
        if netns:
            with open(netns) as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    box["err"] = os.strerror(ctypes.get_errno())
                    ready.set()
                    return
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, 0))
        s.listen(16)
        box["port"] = s.getsockname()[1]
        ready.set()
        while True:
            c, _ = s.accept()
            connections[name] = connections.get(name, 0) + 1
            try:
                c.settimeout(5)
                c.recv(4096)
                c.sendall(b"HTTP/1.0 200 OK\r\n\r\nmarker-" + name.encode() + b"\n")
            except OSError:
                pass
            c.close()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    if "port" not in box:
        raise RuntimeError("listener %s: %s" % (name, box.get("err", "did not start")))
    connections[name] = 0
    return box["port"]


P_OWN = listen("own", socket.AF_INET, "10.203.0.1")
P_LOOP = listen("loop", socket.AF_INET, "127.0.0.1")
P_OWN6 = listen("own6", socket.AF_INET6, "fd42::1")
P_PRIV = listen("priv", socket.AF_INET, "10.203.0.2", netns=out_ns)

# DNS responders (registry.egress.test A 203.0.113.9): the host's resolver on 127.0.0.1
# (named by the resolv.conf below), and one on the private network beyond the host that a
# step may only reach over UDP when the allowlist opens it
dns_queries = []
private_dns_queries = []


def dns_server(addr, queries, netns=None, ready=None):
    if netns:
        with open(netns) as f:
            libc.setns(f.fileno(), CLONE_NEWNET)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    if ready:
        ready.set()
    while True:
        q, peer = s.recvfrom(512)
        if len(q) < 12:
            continue
        i, labels = 12, []
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        name = ".".join(labels)
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0] if i + 3 <= len(q) else 0
        queries.append(name)
        question = q[12:i + 5]
        if name == "registry.egress.test" and qtype == 1:
            ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("203.0.113.9")
            hdr = q[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
        else:
            ans = b""
            hdr = q[:2] + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0)
        s.sendto(hdr + question + ans, peer)


threading.Thread(target=dns_server, args=("127.0.0.1", dns_queries), daemon=True).start()
dns_ready = threading.Event()
threading.Thread(target=dns_server, args=("10.203.0.2", private_dns_queries, out_ns, dns_ready),
                 daemon=True).start()
dns_ready.wait(10)
resolv = os.path.join(T.tmp, "resolv.conf")
with open(resolv, "w") as f:
    f.write("nameserver 127.0.0.1\n")
r = sh("mount", "--bind", resolv, "/etc/resolv.conf")
T.check("the test's resolv.conf is mounted in its private mount namespace", r.returncode == 0,
        r.stderr)

# controls: every listener answers from where kiln runs (or, for 10.203.0.2, through the link)
for name, fam, addr, port in (("own", socket.AF_INET, "10.203.0.1", P_OWN),
                              ("loop", socket.AF_INET, "127.0.0.1", P_LOOP),
                              ("own6", socket.AF_INET6, "fd42::1", P_OWN6),
                              ("priv", socket.AF_INET, "10.203.0.2", P_PRIV)):
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect((addr, port))
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = c.recv(4096)
        ok = b"marker-" + name.encode() in got
    except OSError as e:
        ok, got = False, e
    T.check("control: the %s listener answers the test" % name, ok, got)
    connections[name] = 0

rootfs = os.path.join(T.tmp, "rootfs")
for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
    os.makedirs(os.path.join(rootfs, d))
shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
for a in ("sh", "cat", "echo", "nslookup", "ip", "true"):
    os.symlink("busybox", os.path.join(rootfs, "bin", a))
with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
    f.write("root:x:0:0:root:/root:/bin/sh\n")
fetch = os.path.join(rootfs, "bin", "fetch")
r = sh("gcc", "-static", "-O1", "-I" + os.path.join(SRC, "tests/sandbox/hostile"), "-o", fetch,
       os.path.join(SRC, "tests/sandbox/hostile/fetch.c"))
if not T.check("build the static fetch probe", r.returncode == 0, r.stderr):
    T.done()


def run_step(*cmd, allow=()):
    argv = ["run", "--rootfs", rootfs, "--network", "nat", "--timeout", "60s"]
    for a in allow:
        argv += ["--allow-address", a]
    r = kiln(*argv, "--", *cmd, timeout=120)
    return r.returncode, r.stdout + r.stderr


# With no allowlist the step's own prohibit routes refuse these before a packet leaves
# it (EACCES in the step); with an allowlist entry that lifts the route of 10.0.0.0/8
# (10.203.0.1/32 open), the same destinations reach slirp4netns and are dropped there,
# by the egress filter, which logs them.
CASES = [
    # name, listener, address the step dials, port, what kiln's log must name when the
    # routes are lifted
    ("the host's loopback through slirp (10.0.2.2)", "loop", "10.0.2.2", P_LOOP, None),
    ("a private address that is also the host's own", "own", "10.203.0.1", P_OWN, None),
    ("a private network beyond the host", "priv", "10.203.0.2", P_PRIV,
     "10.203.0.2 port %d: private network" % P_PRIV),
    ("the same, IPv4-mapped from an IPv6 socket", "priv", "::ffff:10.203.0.2", P_PRIV,
     "10.203.0.2 port %d: private network" % P_PRIV),
    ("the host's IPv6 ULA address (fd42::1)", "own6", "fd42::1", P_OWN6, None),
]
for title, name, addr, port, logged in CASES:
    before = connections[name]
    rc, out = run_step("fetch", addr, str(port), "/")
    T.check("nat: %s is refused" % title,
            rc != 0 and "marker-" not in out and connections[name] == before, out)
    if logged:
        rc, out = run_step("fetch", addr, str(port), "/", allow=["10.203.0.1/32"])
        T.check("nat, 10.0.0.0/8 unrouted no more: %s is dropped by the egress filter" % title,
                rc != 0 and "marker-" not in out and connections[name] == before, out)
        T.check("nat: kiln's log names %s and the --allow-address that opens it" % addr,
                ("network: refused a connection to " + logged) in out
                and "--allow-address 10.203.0.2/32" in out, out)

# the refusals are real drops: the allowlist opens exactly these connections
rc, out = run_step("fetch", "10.203.0.2", str(P_PRIV), "/", allow=["10.203.0.0/24"])
T.check("--allow-address 10.203.0.0/24: the private network answers",
        rc == 0 and "marker-priv" in out and connections["priv"] == 1, out)
rc, out = run_step("fetch", "10.203.0.1", str(P_OWN), "/", allow=["10.203.0.0/24"])
T.check("--allow-address 10.203.0.0/24: the host's address in it answers",
        rc == 0 and "marker-own" in out and connections["own"] == 1, out)
rc, out = run_step("fetch", "10.0.2.2", str(P_LOOP), "/", allow=["127.0.0.1:%d" % P_LOOP])
T.check("--allow-address 127.0.0.1:PORT: the host's loopback answers on 10.0.2.2:PORT",
        rc == 0 and "marker-loop" in out and connections["loop"] == 1, out)
before = connections["own"]
rc, out = run_step("fetch", "10.0.2.2", str(P_OWN), "/", allow=["127.0.0.1:%d" % P_LOOP])
T.check("--allow-address 127.0.0.1:PORT opens no other port of the host's loopback",
        rc != 0 and "marker" not in out and connections["own"] == before
        and "network: refused a connection to 127.0.0.1 port %d: loopback" % P_OWN in out, out)
rc, out = run_step("sh", "-c", "ip route; ip -6 route", allow=["10.203.0.0/24"])
T.check("the step's prohibit routes leave out what the allowlist opens and keep the rest",
        "prohibit 10.0.0.0/8" not in out and "prohibit 172.16.0.0/12" in out
        and "prohibit 10.0.2.2" in out and "prohibit 169.254.169.254" in out, out)

# without a network namespace (isolation none, chroot where no namespace is allowed) there
# is no slirp4netns and no egress filter: the step still ends (its log pipe is closed)
for what, extra, env in (("isolation none", ["--isolation", "none"], None),
                         ("chroot without namespaces",
                          ["--rootfs", rootfs, "--isolation", "chroot", "--differ", "walk"],
                          {"KILN_SANDBOX_NO_NAMESPACES": "1"})):
    try:
        r = kiln("run", *extra, "--network", "nat", "--", "/bin/sh", "-c", "echo ended", env=env,
                 timeout=60)
        ended = r.returncode == 0 and "ended" in r.stdout
        out = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        ended, out = False, "hung: %s" % e
    T.check("nat without a network namespace (%s): the step ends" % what, ended, out)

# DNS through slirp's forwarder to the host's resolver (127.0.0.1:53 here) still works
rc, out = run_step("nslookup", "registry.egress.test")
T.check("nat: DNS resolves through slirp and the host's resolver",
        "203.0.113.9" in out and "registry.egress.test" in dns_queries, (out, dns_queries))

# UDP to a private address: the same drop, for datagrams (nslookup asking 10.203.0.2)
rc, out = run_step("nslookup", "registry.egress.test", "10.203.0.2", allow=["10.203.0.1/32"])
T.check("nat: UDP to a private DNS server is dropped by the egress filter and logged",
        "203.0.113.9" not in out and not private_dns_queries
        and "10.203.0.2 port 53: private network" in out, (out, private_dns_queries))
rc, out = run_step("nslookup", "registry.egress.test", "10.203.0.2", allow=["10.203.0.2:53"])
T.check("--allow-address 10.203.0.2:53: the private DNS server answers",
        "203.0.113.9" in out and "registry.egress.test" in private_dns_queries,
        (out, private_dns_queries))

# --- kiln build: the same drop for a Dockerfile's RUN, the refusal in the build log ---
layout = busybox_layout(T.tmp)
if layout:
    ctx = os.path.join(T.tmp, "ctx")
    os.makedirs(ctx)
    shutil.copy(fetch, os.path.join(ctx, "fetch"))
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM oci:%s:1\nCOPY fetch /bin/fetch\nRUN fetch 10.203.0.2 %d /\n" % (layout, P_PRIV))
    before = connections["priv"]
    r = kiln("build", "--root", os.path.join(T.tmp, "kroot"), "--no-cache", ctx, timeout=300)
    out = r.stdout + r.stderr
    T.check("kiln build: a RUN dialing a private network fails and reaches nothing",
            r.returncode != 0 and connections["priv"] == before and "marker-priv" not in out, out)
    r = kiln("build", "--root", os.path.join(T.tmp, "kroot"), "--no-cache", "--allow-address",
             "10.203.0.1", ctx, timeout=300)
    out = r.stdout + r.stderr
    T.check("kiln build: dropped by the egress filter too (10.0.0.0/8 unrouted no more)",
            r.returncode != 0 and connections["priv"] == before and "marker-priv" not in out, out)
    T.check("kiln build: the build log names the address and the --allow-address",
            "network: refused a connection to 10.203.0.2 port %d" % P_PRIV in out
            and "--allow-address 10.203.0.2/32" in out, out)
    r = kiln("build", "--root", os.path.join(T.tmp, "kroot"), "--no-cache", "--allow-address",
             "10.203.0.2", ctx, timeout=300)
    out = r.stdout + r.stderr
    T.check("kiln build --allow-address 10.203.0.2: the RUN reaches it",
            r.returncode == 0 and connections["priv"] == before + 1 and "marker-priv" in out, out)

    # --- the server: its builds get the config's allowlist, and only that ---
    with open(fetch, "rb") as f:
        ctx_tar = tar_gz({"Dockerfile": ("FROM oci:%s:1\nCOPY --chmod=755 fetch /bin/fetch\n"
                                         "RUN fetch 10.203.0.2 %d /\n" % (layout, P_PRIV)).encode(),
                          "fetch": f.read()})
    for allow in ([], ["10.203.0.2"]):
        tag = "open" if allow else "closed"
        s = Server(os.path.join(T.tmp, "srv-" + tag), workers=1,
                   config={"tokens": [TOKEN],
                           "policy": {"allow_addresses": allow, "oci_dirs": [layout]}},
                   extra=["--kiln-root=" + os.path.join(T.tmp, "srv-kiln-" + tag)]).start()
        before = connections["priv"]
        st, body = s.request("POST", "/v1/contexts", body=ctx_tar)
        st, body = s.submit({"source": {"context": body.get("context", "")}})
        b = s.wait_status(body.get("id", ""), ("succeeded", "failed"), timeout=300) \
            if st == 202 else body
        st, log, _ = s.request("GET", "/v1/builds/%s/logs" % body.get("id", ""), raw=True)
        log = log.decode(errors="replace")
        if allow:
            T.check("server with policy.allow_addresses [10.203.0.2]: the RUN reaches it",
                    b.get("status") == "succeeded" and connections["priv"] == before + 1
                    and "marker-priv" in log, (b, log))
        else:
            T.check("server without an allowlist: the RUN's private destination is refused",
                    b.get("status") == "failed" and connections["priv"] == before
                    and "marker-priv" not in log
                    and "connect 10.203.0.2:%d: Permission denied" % P_PRIV in log, (b, log))
        s.term()

T.done()
