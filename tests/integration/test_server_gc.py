"""kiln gc: keeps a build server's disk bounded — logs of finished builds, uploaded contexts
no queued build needs, git mirrors and cache mounts go by age and by total size (oldest
first); what queued or running builds need stays. Builds use the stand-in build command."""
import io
import os
import sqlite3
import tarfile
import time

from kilntest import T, kiln
from server_common import TOKEN, Server, write_fake_build

fake = write_fake_build(T.tmp)
root = os.path.join(T.tmp, "root")
kroot = os.path.join(T.tmp, "kiln-root")
srv = Server(root, workers=1, config={"tokens": [TOKEN]}, build_command=fake,
             env={"FAKE_SLEEP": "0", "FAKE_STEPS": "1"}).start()


def upload():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"FROM\n"))
    return srv.request("POST", "/v1/contexts", body=buf.getvalue())[1]["context"]


done = []
for i in range(4):
    st, b = srv.submit({"source": {"git": "https://git.example.test/a.git"}})
    done.append(b["id"])
for i in done:
    srv.wait_status(i, ["succeeded"])
unused_ctx = upload()
used_ctx = upload()
srv.term()
# A queued build that needs used_ctx: the server is stopped, so it stays queued.
slow = Server(root, workers=1, config={"tokens": [TOKEN]}, build_command=fake,
              env={"FAKE_SLEEP": "1", "FAKE_STEPS": "100"}, extra=["--drain-timeout", "0"])
slow.port, slow.args = srv.port, srv.args + ["--drain-timeout", "0"]
slow.env.update({"FAKE_SLEEP": "1", "FAKE_STEPS": "100"})
slow.start()
st, blocker = slow.submit({"source": {"git": "https://git.example.test/b.git"}})
slow.wait_status(blocker["id"], ["building"])
st, queued = slow.submit({"source": {"context": used_ctx}})
slow.term()


def status(bid):
    db = sqlite3.connect(os.path.join(root, "kiln.db"))
    try:
        return db.execute("SELECT status FROM builds WHERE id = ?", (bid,)).fetchone()[0]
    finally:
        db.close()


T.check("a build that needs a context is still queued", status(queued["id"]) == "queued",
        status(queued["id"]))

old = time.time() - 10 * 24 * 3600
logs = os.path.join(root, "logs")
for i, bid in enumerate(done):
    p = os.path.join(logs, bid + ".log")
    with open(p, "ab") as f:
        f.write(b"x" * (1 << 20))
    os.utime(p, (old if i == 0 else time.time() - 100 + i,) * 2)
for c in (unused_ctx, used_ctx):
    d = os.path.join(root, "contexts", c)
    for name in os.listdir(d):
        os.utime(os.path.join(d, name), (old, old))
    os.utime(d, (old, old))
for name, age in (("old-mirror", old), ("new-mirror", time.time())):
    d = os.path.join(kroot, "git", name)
    os.makedirs(d)
    open(os.path.join(d, "HEAD"), "w").write("ref: refs/heads/main\n")
    os.utime(os.path.join(d, "HEAD"), (age, age))
    os.utime(d, (age, age))
cm = os.path.join(kroot, "build", "cache-mounts", "npm")
os.makedirs(cm)
os.utime(cm, (old, old))
# namespaced caches (a tenant's: kiln build/checkout --cache-namespace)
ns = {}
for tenant in ("acme", "globex"):
    for kind in ("cache-mounts", "git", "blobs"):
        for name, age in (("old", old), ("new", time.time())):
            d = os.path.join(kroot, "ns", tenant, kind, name)
            os.makedirs(d)
            os.utime(d, (age, age))
            ns[(tenant, kind, name)] = d
statcache = os.path.join(kroot, "ns", "acme", "statcache")
open(statcache, "w").write("kiln-statcache-v1\n")
os.utime(statcache, (old, old))
fresh_statcache = os.path.join(kroot, "ns", "globex", "statcache")
open(fresh_statcache, "w").write("kiln-statcache-v1\n")
# the per-context stat cache files (engine/statcache) of a namespace and the CLI's
sc_files = {}
for d in (os.path.join(kroot, "ns", "initech", "statcache"), os.path.join(kroot, "build", "statcache")):
    os.makedirs(d)
    for name, age in (("old", old), ("new", time.time())):
        f = os.path.join(d, (name[0] * 64) + ".sc")
        open(f, "wb").write(b"x")
        os.utime(f, (age, age))
        sc_files[f] = name
# a namespace that is a link elsewhere: gc never follows it
elsewhere = os.path.join(T.tmp, "elsewhere")
os.makedirs(os.path.join(elsewhere, "cache-mounts", "keepme"))
os.utime(os.path.join(elsewhere, "cache-mounts", "keepme"), (old, old))
os.symlink(elsewhere, os.path.join(kroot, "ns", "linked"))

r = kiln("gc", "--root", root, "--kiln-root", kroot, "--max-age", "168", "--dry-run")
T.check("dry run reports and removes nothing", r.returncode == 0 and "would remove" in r.stdout and
        os.path.exists(os.path.join(logs, done[0] + ".log")), r.stdout + r.stderr)
r = kiln("gc", "--root", root, "--kiln-root", kroot, "--max-age", "168", "--logs-max", "2")
T.check("kiln gc runs", r.returncode == 0 and "removed" in r.stdout, r.stdout + r.stderr)
present = [os.path.exists(os.path.join(logs, b + ".log")) for b in done]
T.check("old log removed; then oldest logs until within --logs-max; newest kept",
        not present[0] and present[-1] and sum(present) <= 2, present)
T.check("the queued build is untouched", status(queued["id"]) == "queued")
T.check("old unused context removed",
        not os.path.exists(os.path.join(root, "contexts", unused_ctx)))
T.check("old context of a queued build kept", os.path.exists(os.path.join(root, "contexts", used_ctx)))
T.check("old git mirror removed, recent one kept",
        not os.path.exists(os.path.join(kroot, "git", "old-mirror")) and
        os.path.exists(os.path.join(kroot, "git", "new-mirror")))
T.check("old cache mount removed", not os.path.exists(cm))
T.check("namespaced git mirrors, cache mounts and blob marks: old ones removed, recent ones kept",
        all(os.path.exists(d) == (name == "new") for (_, _, name), d in ns.items()),
        {k: os.path.exists(d) for k, d in ns.items()})
T.check("a namespace's old stat cache removed, a recent one kept",
        not os.path.exists(statcache) and os.path.exists(fresh_statcache))
T.check("per-context stat cache files: old ones removed, recent ones kept",
        all(os.path.exists(f) == (name == "new") for f, name in sc_files.items()),
        {f: os.path.exists(f) for f in sc_files})
T.check("a namespace that is a link is not followed by gc",
        os.path.exists(os.path.join(elsewhere, "cache-mounts", "keepme")))
T.check("the blocker build's log (requeued, not final) is kept",
        os.path.exists(os.path.join(logs, blocker["id"] + ".log")))

# Over --cache-max, the namespace holding the most gives up its oldest first: a tenant that
# fills its cache mounts evicts its own, not another tenant's older ones.
fair = {}
for tenant, names in (("small", ["s-old"]), ("big", ["b1", "b2", "b3"])):
    for i, name in enumerate(names):
        d = os.path.join(kroot, "ns", tenant, "cache-mounts", name)
        os.makedirs(d)
        with open(os.path.join(d, "data"), "wb") as f:
            f.write(os.urandom(1 << 20))
        age = time.time() - (7200 if tenant == "small" else 3600 - i * 60)
        os.utime(os.path.join(d, "data"), (age, age))
        os.utime(d, (age, age))
        fair[name] = d
r = kiln("gc", "--root", root, "--kiln-root", kroot, "--max-age", "0", "--cache-max", "3")
T.check("over --cache-max: the biggest namespace's oldest cache mounts go, another's older one stays",
        r.returncode == 0 and os.path.exists(fair["s-old"]) and os.path.exists(fair["b3"]) and
        not os.path.exists(fair["b1"]) and not os.path.exists(fair["b2"]),
        {k: os.path.exists(d) for k, d in fair.items()})
T.done()
