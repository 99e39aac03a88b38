"""kiln serve bounds every build by default, from its config: "limits" (memory, pids,
cpu_time, wall_time, disk) apply to a build that asked for none, a tenant's "limits" replace
them for its builds, and "max_limits" caps what a tenant or a request may ask for. Real
`kiln build`s of busybox Dockerfiles, each asking for no limits:
- a flood of processes stops at the default pids (the build fails, the log says why, no
  process is left on the host);
- a step that sleeps past the tenant's wall time is killed (reason timeout); a fork bomb is
  held at the tenant's pids and ended, nothing of it left;
- a step that writes past the default disk is stopped (reason disk_limit), and so is a build
  whose file outputs take more than its disk limit, while each of its steps stays within it;
  hostile ways around the measure fail too: a tree deeper than the walk, a sparse file past
  the limit, a flood into a cache mount;
- a request above a maximum is 400 naming the limit; a tenant's limits above a maximum stop
  the server from starting, naming the tenant and the limit."""
import json
import os
import subprocess
import time

from kilntest import KILN, T
from server_common import Server, busybox_layout, processes, tar_gz

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
TA, TB = "acme-token-0123456789", "beta-token-0123456789"
config = {
    "tenants": [{"name": "acme", "tokens": [TA]},
                {"name": "beta", "tokens": [TB], "limits": {"pids": 48, "wall_time": 20}}],
    "policy": {"oci_dirs": [layout]},
    "limits": {"memory": "256m", "pids": 24, "wall_time": 240, "disk": "8m"},
    "max_limits": {"memory": "512m", "pids": 64, "wall_time": 300, "disk": "32m"},
}
srv = Server(os.path.join(T.tmp, "root"), workers=2, config=config,
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root")]).start()
base = "FROM oci:%s:1\n" % layout


def upload(token, dockerfile):
    st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": dockerfile.encode()}),
                           token=token)
    assert st == 201, (st, body)
    return body["context"]


def build(token, dockerfile, **extra):
    body = {"source": {"context": upload(token, dockerfile)}}
    body.update(extra)
    st, b = srv.request("POST", "/v1/builds", body, token=token)
    assert st == 202, (st, b)
    end = time.time() + 400
    while time.time() < end:
        rec = srv.request("GET", "/v1/builds/" + b["id"], token=token)[1]
        if rec.get("status") in ("succeeded", "failed", "canceled"):
            log = srv.request("GET", "/v1/builds/%s/logs" % b["id"], token=token, raw=True)[1]
            return rec, log.decode(errors="replace")
        time.sleep(0.3)
    raise AssertionError("build %s did not end" % b["id"])


def with_cmdline(word):
    """Pids of the host's processes whose command line holds word."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if word in f.read():
                        out.append(int(pid))
            except OSError:
                pass
    return out


# --- the defaults, in the record of a build that asked for none ---
FLOOD = "RUN i=0; while [ $i -lt 60 ]; do sleep 321 & i=$((i+1)); done; wait; echo all-$((6*7))-forked\n"
b, log = build(TA, base + FLOOD)
T.check("acme's build got the config's limits",
        b.get("limits") == {"memory": "256m", "pids": 24, "wall_time": 240, "disk": "8m"}, b)
T.check("a flood of 60 processes stops at the default pids 24: failed, the fork refused",
        b["status"] == "failed" and "can't fork" in log and "pids 24" in log and
        "all-42-forked" not in log, (b, log[-3000:]))
T.check("no process of the flood is left on the host", processes("sleep", "321") == [],
        processes("sleep", "321"))

# --- a tenant's own default wall time ---
b, log = build(TB, base + "RUN echo sleeping; sleep 600\n")
T.check("beta's build got its tenant's limits over the config's",
        b.get("limits") == {"memory": "256m", "pids": 48, "wall_time": 20, "disk": "8m"}, b)
T.check("a step sleeping past beta's wall time 20 is killed: failed, reason timeout",
        b["status"] == "failed" and b.get("reason") == "timeout" and
        "20 seconds" in (b.get("error") or ""), b)
T.check("no sleeping step is left on the host", processes("sleep", "600") == [],
        processes("sleep", "600"))

# --- a real fork bomb: bounded by beta's pids 48, ended by its wall time at the latest ---
b, log = build(TB, base + "RUN lbomb() { lbomb | lbomb & }; lbomb; sleep 600\n")
T.check("a fork bomb fails (pids, then wall time) and the server still answers",
        b["status"] == "failed" and b.get("reason") in ("timeout", "build_failed") and
        srv.request("GET", "/healthz", token=None)[0] == 200, (b, log[-2000:]))
T.check("nothing of the bomb is left on the host", with_cmdline(b"lbomb") == [],
        with_cmdline(b"lbomb"))

# --- disk: a step's writes, then file outputs ---
b, log = build(TA, base + "RUN i=0; while :; do head -c 1048576 /dev/zero > /f$i; i=$((i+1)); done\n")
T.check("a step writing without end is stopped at the default disk 8m: reason disk_limit",
        b["status"] == "failed" and b.get("reason") == "disk_limit" and
        "RUN step wrote more than 8m" in (b.get("error") or ""), (b, log[-2000:]))
TWO = base + ("RUN head -c 14680064 /dev/urandom > /a\n"
              "RUN head -c 14680064 /dev/urandom > /b\n")
b, log = build(TA, TWO, limits={"disk": "24m"}, outputs=[{"type": "local", "dest": "rootfs"}])
T.check("steps of 14 MiB each fit a disk limit of 24m, their 28 MiB of file outputs do not: "
        "reason disk_limit", b["status"] == "failed" and b.get("reason") == "disk_limit" and
        "file outputs" in (b.get("error") or ""), (b, log[-2000:]))
# hostile: ways around the measure
DEEP = base + ('RUN d=/x; i=0; while [ $i -lt 140 ]; do d=$d/d; i=$((i+1)); done; '
               'mkdir -p $d && echo hidden > $d/f\n')
b, log = build(TA, DEEP)
T.check("a tree deeper than the walk goes (140 levels) counts as over: reason disk_limit",
        b["status"] == "failed" and b.get("reason") == "disk_limit", (b, log[-2000:]))
b, log = build(TA, base + "RUN truncate -s 1g /sparse && echo made-$((6*7))-sparse\n")
T.check("a sparse 1g file past the disk limit is refused (no file larger than the limit)",
        b["status"] == "failed" and "made-42-sparse" not in log, (b, log[-2000:]))
CACHE = base + ("RUN --mount=type=cache,target=/c i=0; "
                "while :; do head -c 1048576 /dev/zero > /c/f$i; i=$((i+1)); done\n")
b, log = build(TA, CACHE)
T.check("a step filling a cache mount is stopped too: reason disk_limit",
        b["status"] == "failed" and b.get("reason") == "disk_limit", (b, log[-2000:]))
b, log = build(TA, base + "RUN head -c 1048576 /dev/urandom > /a\n",
               outputs=[{"type": "local", "dest": "rootfs"}])
T.check("a build within its limits succeeds and keeps its file outputs",
        b["status"] == "succeeded" and any(f["path"].startswith("rootfs/")
                                           for f in (b.get("result") or {}).get("files", [])),
        (b, log[-2000:]))

# --- requests above a maximum ---
ctx = upload(TA, base + "RUN true\n")
for extra, field in (({"limits": {"pids": 65}}, "'limits.pids'"),
                     ({"limits": {"memory": "1g"}}, "'limits.memory'"),
                     ({"limits": {"disk": "33m"}}, "'limits.disk'"),
                     ({"limits": {"wall_time": 301}}, "'limits.wall_time'"),
                     ({"timeout_seconds": 400}, "'timeout_seconds'")):
    body = {"source": {"context": ctx}}
    body.update(extra)
    st, r = srv.request("POST", "/v1/builds", body, token=TA)
    T.check("%s above the maximum => 400 naming %s" % (extra, field),
            st == 400 and field in str(r), (st, r))
srv.term()

# --- a tenant's limits above a maximum: the server does not start ---
bad = dict(config)
bad["tenants"] = [{"name": "acme", "tokens": [TA], "limits": {"pids": 100}}]
path = os.path.join(T.tmp, "bad.json")
with open(path, "w") as f:
    json.dump(bad, f)
p = subprocess.run([KILN, "serve", "--listen", "127.0.0.1:1", "--root",
                    os.path.join(T.tmp, "root-bad"), "--config", path],
                   capture_output=True, text=True, timeout=60)
T.check("tenant limits above max_limits: kiln serve refuses to start, naming tenant and limit",
        p.returncode != 0 and "tenant 'acme'" in p.stderr and "limits.pids" in p.stderr, p.stderr)
T.done()
