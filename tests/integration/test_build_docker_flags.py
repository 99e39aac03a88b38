#!/usr/bin/env python3
"""docker build's --add-host, --ulimit, --shm-size and --ssh on kiln build, each seen from
inside a RUN step of one real build: the /etc/hosts line, the soft and hard limits, the size of
/dev/shm; none of them left in the image's files; another value is another step (no stale
cache hit); --add-host refused for a server build by name; bad values refused by name before
any step runs; the ssh agent reaches RUN --mount=type=ssh steps only, never a layer, and its
socket path is no part of the cache key."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)  # the step opens its mount sources as its own (mapped) root
BASE = make_base(ROOT)
FLAGS = ("--add-host", "db.test:10.9.8.7", "--ulimit", "nofile=123:456", "--shm-size", "3m")


def build(ctx, *extra):
    return kiln("build", "--root", ROOT, "--progress", "plain", *extra, ctx)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return str(e)


ctx = write_tree(os.path.join(T.tmp, "flags"), {"Dockerfile": f"""FROM {BASE}
RUN (grep db.test /etc/hosts || echo no-host; ulimit -Sn; ulimit -Hn; \\
     df -k /dev/shm | tail -1 | awk '{{print $2}}') > /seen
"""})
out = os.path.join(T.tmp, "out1")
r = build(ctx, *FLAGS, "-o", f"type=local,dest={out}")
seen = read(os.path.join(out, "seen")).split("\n")
T.check("the build with --add-host, --ulimit and --shm-size succeeds", r.returncode == 0, r.stderr[-1500:])
T.check("--add-host db.test:10.9.8.7: the line in the step's /etc/hosts",
        seen[0].split() == ["10.9.8.7", "db.test"], seen)
T.check("--ulimit nofile=123:456: soft 123, hard 456 in the step", seen[1:3] == ["123", "456"], seen)
T.check("--shm-size 3m: /dev/shm is 3072 KiB in the step", seen[3:4] == ["3072"], seen)
T.check("the added host is not in the image's /etc/hosts",
        "db.test" not in read(os.path.join(out, "etc", "hosts")), read(os.path.join(out, "etc", "hosts")))

out2 = os.path.join(T.tmp, "out2")
r = build(ctx, "--add-host", "db.test:10.1.1.1", "--ulimit", "nofile=123:456", "--shm-size", "3m",
          "-o", f"type=local,dest={out2}")
T.check("another --add-host address: the step runs again and sees it",
        r.returncode == 0 and read(os.path.join(out2, "seen")).split()[:2] == ["10.1.1.1", "db.test"]
        and "CACHED" not in r.stderr.split("RUN")[-1].split("\n#")[0], r.stderr[-1500:])
out3 = os.path.join(T.tmp, "out3")
r = build(ctx, "-o", f"type=local,dest={out3}")
T.check("without the flags: no added host, docker's 64 MiB /dev/shm",
        r.returncode == 0 and read(os.path.join(out3, "seen")).split("\n")[0] == "no-host"
        and read(os.path.join(out3, "seen")).split("\n")[3] == "65536", read(os.path.join(out3, "seen")))

for args, msg in [
    (("--add-host", "db.test:not-an-ip"), "--add-host db.test:not-an-ip: 'not-an-ip' is not an IP address"),
    (("--ulimit", "nofile=9:3"), "--ulimit nofile=9:3: the soft limit is above the hard limit"),
    (("--ulimit", "bogus=1"), "--ulimit bogus=1: unknown limit 'bogus' (core, cpu, data, fsize, locks, "
     "memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack, as)"),
    (("--shm-size", "0"), "--shm-size 0: a size above 0 (e.g. 64m, 1g)"),
]:
    r = build(ctx, *args)
    T.check(f"{' '.join(args)}: refused before any step, naming it",
            r.returncode == 2 and r.stderr.startswith(f"kiln build: {msg}\n"), r.stderr[-600:])
r = build(ctx, "--server-mode", "--add-host", "db.test:10.9.8.7")
T.check("--add-host in a server build: refused, saying why",
        r.returncode == 2 and "--add-host is refused for a server build" in r.stderr, r.stderr[-600:])

# --add-host NAME:host-gateway: the host as the step's network sees it. On the default (nat)
# network that is slirp's alias of the host's loopback, reached only where --allow-address
# opens it: a server on the host's 127.0.0.1 answers the step at the address the name has
# (looked up in /etc/hosts by the step: a static binary cannot load glibc's NSS there)
import http.server  # noqa: E402
import threading  # noqa: E402


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello-from-the-host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
port = httpd.server_address[1]
gctx = write_tree(os.path.join(T.tmp, "gw"), {"Dockerfile": f"""FROM {BASE}
COPY fetch /fetch
RUN grep hostbox /etc/hosts > /gw-line; \\
    ip=$(busybox awk '$2 == "hostbox" {{print $1}}' /etc/hosts); \\
    (/fetch "$ip" {port} / | grep hello || echo unreachable) > /gw-got
"""})
# the static HTTP probe of the hostile suite (busybox's static wget crashes in getaddrinfo)
from kilntest import SRC  # noqa: E402
fr = subprocess.run(["gcc", "-static", "-O1", "-I" + os.path.join(SRC, "tests/sandbox/hostile"), "-o",
                     os.path.join(gctx, "fetch"), os.path.join(SRC, "tests/sandbox/hostile/fetch.c")],
                    capture_output=True, text=True)
T.check("the static fetch probe builds", fr.returncode == 0, fr.stderr)
gout = os.path.join(T.tmp, "gw-out")
r = build(gctx, "--add-host", "hostbox:host-gateway", "--allow-address", f"127.0.0.1:{port}",
          "-o", f"type=local,dest={gout}")
T.check("--add-host hostbox:host-gateway (nat): the host's alias 10.0.2.2 in the step's /etc/hosts",
        r.returncode == 0 and read(os.path.join(gout, "gw-line")).split() == ["10.0.2.2", "hostbox"],
        r.stderr[-1500:] + read(os.path.join(gout, "gw-line")))
T.check("--add-host hostbox:host-gateway + --allow-address 127.0.0.1:PORT: the host's server answers "
        "the step at that name's address", read(os.path.join(gout, "gw-got")) == "hello-from-the-host\n",
        read(os.path.join(gout, "gw-got")))
gout2 = os.path.join(T.tmp, "gw-out2")
# (the address policy is no part of a step's cache key, as docker's --network is not)
r = build(gctx, "--no-cache", "--add-host", "hostbox:host-gateway", "-o", f"type=local,dest={gout2}")
T.check("host-gateway without --allow-address: the name is there, the host's loopback is not reached",
        r.returncode == 0 and read(os.path.join(gout2, "gw-got")) == "unreachable\n"
        and read(os.path.join(gout2, "gw-line")).split() == ["10.0.2.2", "hostbox"],
        r.stderr[-1500:] + read(os.path.join(gout2, "gw-got")))
gout3 = os.path.join(T.tmp, "gw-out3")
r = build(gctx, "--no-cache", "--network", "host", "--add-host", "hostbox:host-gateway", "-o",
          f"type=local,dest={gout3}")
T.check("--network host --add-host hostbox:host-gateway: 127.0.0.1, and the server answers",
        r.returncode == 0 and read(os.path.join(gout3, "gw-line")).split() == ["127.0.0.1", "hostbox"]
        and read(os.path.join(gout3, "gw-got")) == "hello-from-the-host\n",
        r.stderr[-1500:] + read(os.path.join(gout3, "gw-line")))
r = build(gctx, "--network", "none", "--add-host", "hostbox:host-gateway")
T.check("--network none --add-host hostbox:host-gateway: refused before any step, word for word",
        r.returncode == 2 and r.stderr.startswith("kiln build: --add-host hostbox:host-gateway: a step on "
        "--network none reaches no host; use the default network (with --allow-address 127.0.0.1:PORT) "
        "or --network host\n"), r.stderr[-600:])
r = build(gctx, "--server-mode", "--add-host", "hostbox:host-gateway")
T.check("host-gateway in a server build: refused, saying why",
        r.returncode == 2 and "--add-host is refused for a server build" in r.stderr, r.stderr[-600:])
httpd.shutdown()

spec = {"build_id": "b-1", "tenant": "acme", "source": {"git": "https://127.0.0.1:1/a.git"},
        "add_hosts": ["db.test:10.9.8.7"]}
bad_root = os.path.join(T.tmp, "never")
r = kiln("job", "run", "--untrusted", "--root", bad_root, "--spec", "-", input=json.dumps(spec))
T.check("a tenant's spec with add_hosts: invalid_spec naming the field, nothing run",
        r.returncode == 2 and "field 'add_hosts': is refused for a build that is not local (a tenant's): "
        "it would point the steps' names at any address" in r.stdout and not os.path.exists(bad_root),
        r.stdout + r.stderr)
spec["add_hosts"] = ["hostbox:host-gateway"]
r = kiln("job", "run", "--untrusted", "--root", bad_root, "--spec", "-", input=json.dumps(spec))
T.check("a tenant's spec with add_hosts NAME:host-gateway: refused the same, nothing run",
        r.returncode == 2 and "field 'add_hosts': is refused for a build that is not local" in r.stdout
        and not os.path.exists(bad_root), r.stdout + r.stderr)

# --ssh: the agent in RUN --mount=type=ssh steps only, never in a layer or the cache key
sock_dir = os.path.join(T.tmp, "agent")
os.makedirs(sock_dir)
socks = []
for i in range(2):
    s = os.path.join(sock_dir, f"a{i}.sock")
    T.spawn(["ssh-agent", "-D", "-a", s], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socks.append(s)
for s in socks:
    for _ in range(200):
        if os.path.exists(s):
            break
        __import__("time").sleep(0.05)
sctx = write_tree(os.path.join(T.tmp, "ssh"), {"Dockerfile": f"""FROM {BASE}
RUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "with:$SSH_AUTH_SOCK" > /with
RUN (echo "without:${{SSH_AUTH_SOCK:-none}}"; ls /run/buildkit 2>&1 || true) > /without
"""})
sout = os.path.join(T.tmp, "ssh-out")
r = build(sctx, "--ssh", f"default={socks[0]}", "-o", f"type=local,dest={sout}")
T.check("--ssh: the RUN --mount=type=ssh step sees the agent",
        r.returncode == 0 and read(os.path.join(sout, "with")) == "with:/run/buildkit/ssh_agent.0\n", r.stderr[-1500:])
without = read(os.path.join(sout, "without"))
T.check("--ssh: a RUN without the mount sees no agent", without.startswith("without:none\n")
        and "ssh_agent" not in without, without)
T.check("--ssh: no socket left in the image's files",
        not os.path.exists(os.path.join(sout, "run", "buildkit", "ssh_agent.0")), os.listdir(sout))
r = build(sctx, "--ssh", f"default={socks[1]}", "-o", f"type=local,dest={sout}-2")
T.check("--ssh with another agent socket: both steps cached (the path is no part of the key)",
        r.returncode == 0 and len(re.findall(r"^#\d+ CACHED", r.stderr, re.M)) >= 2, r.stderr[-1500:])
T.done()
