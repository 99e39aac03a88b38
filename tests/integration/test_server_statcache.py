"""kiln serve reuses the stat cache across builds of one repository: each build checks the commit
out in place into the repository's kept work tree, writing (and noting with its git blob id)
only the files that changed; the context's identity is the repository + subdirectory. Two builds of the same repo with one
file changed: the second reads (hashes) only that file, as its build log says; a file deleted
from the repo leaves the cache; another tenant's build of the same repo shares nothing (its
namespace has its own stat cache). Contexts uploaded to kiln serve (POST /v1/contexts, unpacked by
the server itself) do the same: a re-upload with one file changed (same size and mtime in the
tarball) hashes only that file, its new content in the image."""
import os
import re
import subprocess

from gitserve import serve_git
from kilntest import T
from server_common import Server, noted_line, stat_line, tar_gz

N = 25
repo = os.path.join(T.tmp, "mono")
os.makedirs(os.path.join(repo, "app", "src"))
os.makedirs(os.path.join(repo, "other"))
for i in range(N):
    with open(os.path.join(repo, "app", "src", "f%02d.txt" % i), "w") as f:
        f.write("file %d\n" % i)
with open(os.path.join(repo, "app", "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /app/\n")
with open(os.path.join(repo, "other", "x.txt"), "w") as f:
    f.write("not in the context\n")
git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(git + ["add", "-A"], check=True)
subprocess.run(git + ["commit", "-q", "-m", "one"], check=True)
serve = os.path.join(T.tmp, "srv")
os.makedirs(serve)
bare = os.path.join(serve, "mono.git")
subprocess.run(["git", "clone", "-q", "--bare", repo, bare], check=True)
gitsrv, git_base = serve_git(serve)


def commit(msg):
    subprocess.run(git + ["commit", "-q", "-am", msg], check=True)
    subprocess.run(["git", "-C", repo, "push", "-q", bare, "main"], check=True)


TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}
kroot = os.path.join(T.tmp, "kiln-root")
policy = {"allow_http_git": True, "allow_addresses": ["127.0.0.0/8"]}
config = {"tenants": [{"name": n, "tokens": [t]} for n, t in TOKENS.items()], "policy": policy}
srv = Server(os.path.join(T.tmp, "root"), workers=1, config=config,
             extra=["--kiln-root=" + kroot]).start()


def build(tenant):
    """One server build of mono.git's app/ as tenant: (record, log text)."""
    req = {"source": {"git": git_base + "/mono.git", "ref": "main", "subdir": "app"}}
    return srv.build_to_end(req, token=TOKENS[tenant])


def written(log):
    """How many files the in-place checkout of the kept work tree wrote, or None."""
    m = re.search(r"(?m)^checkout: the kept work tree updated in place \((\d+) files written\)$",
                  log)
    return int(m.group(1)) if m else None


files = N + 1  # the Dockerfile is in the context too
r1, l1 = build("acme")
T.check("first build of the repo succeeds", r1.get("status") == "succeeded", (r1, l1[-2000:]))
T.check("first build: the checkout writes (and notes) every file of the kept work tree",
        written(l1) == files, l1[-2000:])
T.check("first build: every context file is hashed", stat_line(l1) == (0, files, files),
        l1[-2000:])

with open(os.path.join(repo, "app", "src", "f03.txt"), "w") as f:
    f.write("file 3, changed\n")
commit("two")
r2, l2 = build("acme")
T.check("second build (one file changed) succeeds", r2.get("status") == "succeeded",
        (r2, l2[-2000:]))
T.check("second build: the checkout writes only the changed file into the kept work tree",
        written(l2) == 1, l2[-2000:])
T.check("second build: only the changed file is read, the rest are stat cache hits",
        stat_line(l2) == (files - 1, files, 1), l2[-2000:])
T.check("second build: the changed COPY is not a cache hit", "#2 CACHED" not in l2, l2[-1500:])

subprocess.run(git + ["rm", "-q", "app/src/f07.txt"], check=True)
commit("three")
r3, l3 = build("acme")
T.check("third build (one file deleted): nothing hashed, the deleted file gone from the cache",
        r3.get("status") == "succeeded" and stat_line(l3) == (files - 1, files - 1, 0) and
        written(l3) == 0, l3[-2000:])

g1, lg1 = build("globex")
T.check("another tenant's build of the same repo shares nothing: every file hashed",
        g1.get("status") == "succeeded" and stat_line(lg1) == (0, files - 1, files - 1),
        lg1[-2000:])
for t in ("acme", "globex"):
    d = os.path.join(kroot, "ns", t, "statcache")
    T.check(f"tenant {t}'s stat cache: one file for the repo's context in ns/{t}/statcache",
            os.path.isdir(d) and len([f for f in os.listdir(d) if f.endswith(".sc")]) == 1,
            os.listdir(d) if os.path.isdir(d) else None)
# uploads the server unpacks itself: their unpack's notes (ID.notes) reach the stat cache
UP = {"Dockerfile": b"FROM scratch\nCOPY . /app/\n"}
UP.update({"u%02d.txt" % i: b"upload %02d\n" % i for i in range(10)})


def upload_build(files):
    st, body = srv.request("POST", "/v1/contexts", body=tar_gz(files), token=TOKENS["acme"])
    if st != 201:
        return {"status": "upload %d" % st, "body": body}, ""
    ctxs = os.path.join(T.tmp, "root", "contexts")
    T.check("the upload's notes are kept beside its tree",
            os.path.isfile(os.path.join(ctxs, body["context"] + ".notes")), os.listdir(ctxs))
    req = {"source": {"context": body["context"]}, "outputs": [{"type": "local", "dest": "fs"}]}
    return srv.build_to_end(req, token=TOKENS["acme"])


u1, lu1 = upload_build(UP)
T.check("upload, first build: its unpack noted every file, none known yet; all hashed",
        u1.get("status") == "succeeded" and noted_line(lu1) == (11, 0) and
        stat_line(lu1) == (0, 11, 11), (u1, lu1[-2000:]))
u2, lu2 = upload_build(dict(UP, **{"u04.txt": b"UPLOAD 04\n"}))
T.check("re-upload, one file changed: the unpack kept 10 hashes, the build hashed 1 file",
        u2.get("status") == "succeeded" and noted_line(lu2) == (11, 10) and
        stat_line(lu2) == (10, 11, 1), (u2, lu2[-2000:]))
art = os.path.join(T.tmp, "root", "artifacts", u2.get("id", "-"), "fs", "app", "u04.txt")
T.check("... the changed file's new content (same size, same mtime) is in the output",
        os.path.isfile(art) and open(art, "rb").read() == b"UPLOAD 04\n", art)
srv.term()
gitsrv.shutdown()
T.done()
