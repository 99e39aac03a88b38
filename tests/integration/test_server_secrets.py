"""kiln serve keeps secrets to itself: its root is 0700 and kiln.db (-wal, -shm), build logs
and stored secrets have no permission bits for others (also when an older root had looser
modes); during a real build with a secret, and during one of a private git repository given
as http://user:TOKEN@host/… or with source.token, no process's command line (nor a kiln
process's environment) holds the secret or the token; the token is absent from the build
record, the list and the log; after each build its secret directory is gone, and a crash's
leftover secret directory is gone at the next start."""
import os
import stat
import subprocess
import time

from kilntest import T
from gitserve import serve_git
from server_common import TOKEN, Server, busybox_layout, processes

SECRET = "s3cr3t-value-7f9c2b"
GIT_TOKEN = "gtok-5d1e8a90c3"

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

# a crash's leftover: the secrets of a build the database does not know
stale = os.path.join(root, "secrets", "b-stale0123")
os.makedirs(stale)
with open(os.path.join(stale, "tok"), "w") as f:
    f.write("left behind\n")

policy = {"allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout], "allow_http_git": True}
srv = Server(root, workers=1, config={"tokens": [TOKEN], "policy": policy},
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root")]).start()


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def no_others(path):
    return os.path.exists(path) and mode(path) & 0o007 == 0


T.check("root is 0700", mode(root) == 0o700, oct(mode(root)))
T.check("an old log loses the bits of others", no_others(old_log), oct(mode(old_log)))
T.check("a crash's leftover secret directory is gone at startup", not os.path.exists(stale))

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
# every file 0600 and every directory inside (a tenant's credentials) 0700, all the way down
files = []
for d, subdirs, names in os.walk(secret_dir):
    files += [os.path.join(d, n) for n in subdirs + names]
T.check("its secret files are 0600", files and all(mode(f) == (0o700 if os.path.isdir(f) else 0o600)
                                                  for f in files),
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

# --- a private git repository: the token in the URL's userinfo, then as source.token ---
GITENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
              GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
              GIT_CONFIG_NOSYSTEM="1", HOME=T.tmp)


def git(*args, cwd=None):
    subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=GITENV,
                   check=True, capture_output=True)


work = os.path.join(T.tmp, "app")
os.makedirs(work)
git("init", "-q", work)
with open(os.path.join(work, "Dockerfile"), "w") as f:
    f.write("FROM oci:%s:1\nARG N=0\nRUN echo $N && sleep 32\n" % layout)
git("add", "-A", cwd=work)
git("commit", "-qm", "first", cwd=work)
serve_root = os.path.join(T.tmp, "git")
git("clone", "-q", "--bare", work, os.path.join(serve_root, "private", "app.git"))
_git_srv, base = serve_git(serve_root, private_token=GIT_TOKEN)
host = base.split("://", 1)[1]


def git_build(source, n):
    st, body = srv.submit({"source": source, "build_args": {"N": str(n)}})
    T.check("git build %d: submit => 202" % n, st == 202, body)
    bid = body.get("id", "")
    end = time.time() + 120
    while time.time() < end and not processes("sleep", "32") and \
            srv.get(bid).get("status") not in ("failed", "succeeded"):
        time.sleep(0.1)
    T.check("git build %d: the step is running" % n, bool(processes("sleep", "32")), srv.get(bid))
    T.check("git build %d: no command line or kiln environment holds the token" % n,
            procs_holding(GIT_TOKEN) == [], procs_holding(GIT_TOKEN))
    b = srv.wait_status(bid, ("succeeded", "failed", "canceled"), timeout=180)
    T.check("git build %d: succeeds (the credential reached the checkout)" % n,
            b and b["status"] == "succeeded", b)
    _, log, _ = srv.request("GET", "/v1/builds/%s/logs" % bid, raw=True)
    _, lst = srv.request("GET", "/v1/builds")
    T.check("git build %d: the record, the list and the log hold no token" % n,
            GIT_TOKEN not in str(b) and GIT_TOKEN not in str(lst) and
            GIT_TOKEN.encode() not in log, (b, log[-2000:]))
    T.check("git build %d: the record shows the URL without its credential" % n,
            b["source"]["git"] == "%s/private/app.git" % base, b["source"])
    T.check("git build %d: its secret directory is gone" % n,
            not os.path.exists(os.path.join(root, "secrets", bid)))


git_build({"git": "http://x-access-token:%s@%s/private/app.git" % (GIT_TOKEN, host)}, 1)
git_build({"git": "%s/private/app.git" % base, "token": GIT_TOKEN}, 2)
st, body = srv.submit({"source": {"git": "%s/private/app.git" % base, "token": ""}})
T.check("an empty source.token => 400 naming it", st == 400 and "source.token" in str(body), body)
db_bytes = b""
for name in ("kiln.db", "kiln.db-wal"):
    if os.path.exists(os.path.join(root, name)):
        with open(os.path.join(root, name), "rb") as f:
            db_bytes += f.read()
T.check("kiln.db (and its -wal) do not hold the git token", len(db_bytes) > 0 and
        GIT_TOKEN.encode() not in db_bytes)
srv.term()
T.done()
