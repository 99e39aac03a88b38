"""kiln serve keeps secrets to itself: its root is 0700 and kiln.db (-wal, -shm), build logs
and stored secrets have no permission bits for others (also when an older root had looser
modes); during a real build with a secret, no process's command line holds the secret value,
and after the build its secret directory is gone."""
import os
import stat
import time

from kilntest import T
from server_common import TOKEN, Server, busybox_layout, processes

SECRET = "s3cr3t-value-7f9c2b"

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
root = os.path.join(T.tmp, "root")
# a root left by an older server with loose modes: fixed at startup
os.makedirs(os.path.join(root, "logs"))
os.chmod(root, 0o755)
old_log = os.path.join(root, "logs", "old.log")
with open(old_log, "w") as f:
    f.write("old\n")
os.chmod(old_log, 0o644)
open(os.path.join(root, "kiln.db"), "w").close()
os.chmod(os.path.join(root, "kiln.db"), 0o644)

policy = {"allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout]}
srv = Server(root, workers=1, config={"tokens": [TOKEN], "policy": policy},
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root")]).start()


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def no_others(path):
    return os.path.exists(path) and mode(path) & 0o007 == 0


T.check("root is 0700", mode(root) == 0o700, oct(mode(root)))
T.check("an old log loses the bits of others", no_others(old_log), oct(mode(old_log)))

ctx = srv.upload_dockerfile(
    "FROM oci:%s:1\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok && sleep 31\n" % layout)
st, body = srv.submit({"source": {"context": ctx}, "secrets": {"tok": SECRET}})
T.check("submit with a secret => 202", st == 202, body)
bid = body["id"]
end = time.time() + 120
while time.time() < end and not processes("sleep", "31"):
    time.sleep(0.1)
T.check("the build's step is running", bool(processes("sleep", "31")), srv.get(bid))

secret_dir = os.path.join(root, "secrets", bid)
T.check("the build's secret directory is 0700", os.path.isdir(secret_dir) and
        mode(secret_dir) == 0o700, secret_dir)
files = [os.path.join(secret_dir, n) for n in os.listdir(secret_dir)] if os.path.isdir(secret_dir) else []
T.check("its secret files are 0600", files and all(mode(f) == 0o600 for f in files),
        [(f, oct(mode(f))) for f in files])


def procs_holding(value):
    """Pids whose command line (or, for kiln processes, environment) holds value."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
            if value.encode() in cmd:
                found.append((pid, cmd))
                continue
            if b"kiln" in cmd:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if value.encode() in f.read():
                        found.append((pid, cmd))
        except OSError:
            pass
    return found


T.check("no command line or kiln environment holds the secret", procs_holding(SECRET) == [],
        procs_holding(SECRET))

b = srv.wait_status(bid, ("succeeded", "failed", "canceled"), timeout=180)
T.check("the build succeeds", b and b["status"] == "succeeded", b)
T.check("after the build its secret directory is gone", not os.path.exists(secret_dir), secret_dir)
for name in ("kiln.db", "kiln.db-wal", "kiln.db-shm"):
    p = os.path.join(root, name)
    T.check("%s has no bits for others" % name, no_others(p),
            oct(mode(p)) if os.path.exists(p) else "missing")
logs = [os.path.join(root, "logs", n) for n in os.listdir(os.path.join(root, "logs"))]
T.check("build logs have no bits for others", len(logs) >= 2 and all(no_others(p) for p in logs),
        [(p, oct(mode(p))) for p in logs])
T.check("the secrets directory has no bits for others", no_others(os.path.join(root, "secrets")))
with open(os.path.join(root, "kiln.db"), "rb") as f:
    T.check("kiln.db does not hold the secret", SECRET.encode() not in f.read())
srv.term()
T.done()
