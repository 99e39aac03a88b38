"""kiln serve building an example project end to end with the real kiln: a git repository
(served over http by git http-backend on loopback) of examples/static-html is checked out, auto-detected and built; the server records
the commit, the phases and the files the build wrote, which download byte for byte.
Needs kiln's base image (images/build.sh, cached under /var/cache/kiln/images)."""
import os
import subprocess

from gitserve import serve_git
from kilntest import SRC, T
from server_common import TOKEN, Server

IMAGES = os.environ.get("KILN_IMAGES_DIR", "/var/cache/kiln/images")
if not os.path.exists(os.path.join(IMAGES, "base", "index.json")):
    T.skip("example build through the server", "no kiln base image in " + IMAGES +
           " (run images/build.sh)")
    T.done()

repo = os.path.join(T.tmp, "static-html")
subprocess.run(["cp", "-r", os.path.join(SRC, "examples", "static-html"), repo], check=True)
git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(git + ["add", "-A"], check=True)
subprocess.run(git + ["commit", "-q", "-m", "site"], check=True)
head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
serve = os.path.join(T.tmp, "srv")
os.makedirs(serve)
subprocess.run(["git", "clone", "-q", "--bare", repo, os.path.join(serve, "static-html.git")], check=True)
gitsrv, git_base = serve_git(serve)

# server builds fetch https/ssh from public addresses only: this test's plain-http git server
# on loopback is opened by the operator's policy, and kiln's images directory is readable
policy = {"allow_http_git": True, "allow_addresses": ["127.0.0.0/8"], "oci_dirs": [IMAGES]}
srv = Server(os.path.join(T.tmp, "root"), workers=1, config={"tokens": [TOKEN], "policy": policy},
             extra=["--kiln-root", os.path.join(T.tmp, "kiln-root")],
             env={"KILN_IMAGE_PREFIX": "oci:" + IMAGES}).start()
st, body = srv.submit({"source": {"git": git_base + "/static-html.git", "ref": "main"}})
T.check("submit the example => 202", st == 202, body)
bid = body["id"]
st, log, _ = srv.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True, timeout=600)
b = srv.get(bid)
T.check("the example built", b["status"] == "succeeded", (b, log.decode(errors="replace")[-3000:]))
T.check("commit recorded from the checkout", b["commit"] == head, (b["commit"], head))
ev = (b.get("result") or {}).get("kiln.event") or {}
T.check("the completion event carries the API's build id, the repository and the full commit "
        "(not the scratch directory)",
        ev.get("build_id") == bid and ev.get("source", {}).get("repo") == git_base + "/static-html.git"
        and ev.get("source", {}).get("commit") == head, ev)
T.check("cloning then building phases with timings",
        [p["name"] for p in b["phases"]][:2] == ["cloning", "building"] and
        all(p["seconds"] is not None for p in b["phases"]), b["phases"])
st, a = srv.request("GET", "/v1/builds/%s/artifacts" % bid)
files = {f["path"]: f for f in a.get("files", [])}
T.check("artifacts list the site's files", "site/index.html" in files, a)
if "site/index.html" in files:
    st, data, _ = srv.request("GET", files["site/index.html"]["url"], raw=True)
    want = open(os.path.join(repo, "index.html"), "rb").read()
    T.check("a file downloads byte for byte", st == 200 and data == want, data[:200])
st, body = srv.request("GET", "/v1/builds/%s/artifacts/files/../kiln.db" % bid)
T.check("artifact paths cannot leave the build's directory", st == 404, body)
srv.term()
gitsrv.shutdown()
T.done()
