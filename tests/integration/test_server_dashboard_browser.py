"""kiln serve's dashboard in headless Chromium driven by Playwright (playwright-core from the
npm registry, pinned, cached under /var/cache/kiln; Debian's chromium): real builds of a
busybox Dockerfile (one that succeeds, one whose RUN fails) and a GitHub push whose branch
name and commit message are HTML/script payloads. The list shows each build's repository,
branch, commit (short SHA + message), author, trigger, queued/started/finished times,
duration, status and tenant; the status and branch filters narrow it; the failing build's
page shows its log and the failing step (instruction, Dockerfile:line, exit status, its last
lines); the good build's page its steps with times and the image digest; the payloads are
shown as text and run nothing. Screenshots are left in the test log dir."""
import hashlib
import hmac
import json
import os
import shutil
import subprocess

from kilntest import SRC, T, start_registry
from server_common import TOKEN, Server, busybox_layout, tar_gz

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node")
if not CHROMIUM or not NODE or not shutil.which("npm"):
    T.skip("dashboard in Playwright", "chromium, node or npm is not installed")
    T.done()
inst = subprocess.run(["bash", os.path.join(SRC, "tests", "browser", "install.sh")],
                      capture_output=True, text=True, timeout=600)
if inst.returncode != 0:
    T.skip("dashboard in Playwright", "playwright-core could not be installed: " +
           inst.stderr.strip()[-300:])
    T.done()
modules = inst.stdout.strip()
shots = os.environ.get("KILN_TEST_LOGS") or os.path.join(SRC, "build", "test-logs")
os.makedirs(shots, exist_ok=True)

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
GH_SECRET = "gh-secret-dashboard-1"
config = {"tokens": [TOKEN],
          "policy": {"allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout],
                     "allow_http_git": True},
          "projects": [{"name": "app", "github": "acme/app", "secret": GH_SECRET}]}
reg = "127.0.0.1:%d" % start_registry()
srv = Server(os.path.join(T.tmp, "root"), workers=2, config=config,
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root"),
                    "--build-option=--insecure-registry=" + reg]).start()
PUSHED = "%s/dash/app:1" % reg


def submit_dockerfile(text, outputs=()):
    ctx = srv.upload_dockerfile(text)
    st, b = srv.submit({"source": {"context": ctx}, "outputs": list(outputs)})
    assert st == 202, b
    return b["id"]


GOOD = "FROM oci:%s:1\nRUN echo dash-good-line\nRUN echo two > /two\n" % layout
good = submit_dockerfile(GOOD, [{"type": "registry", "name": PUSHED}])
fail = submit_dockerfile("FROM oci:%s:1\nRUN echo dash-fail-out-1 && echo dash-fail-out-2 "
                         "&& exit 3\n" % layout)
# a push whose branch and commit message are markup; its clone (a closed port) fails
BRANCH = "x<img/src=x/onerror=window.__kiln_xss=1>"
MESSAGE = "<script>window.__kiln_xss=2</script><img src=x onerror=\"window.__kiln_xss=3\"> fix"
AUTHOR = "<b>mallory</b>"
push = {"ref": "refs/heads/" + BRANCH, "after": "c" * 40, "pusher": {"name": "pusher-p"},
        "head_commit": {"id": "c" * 40, "message": MESSAGE,
                        "author": {"name": AUTHOR, "username": AUTHOR}},
        "repository": {"full_name": "acme/app", "clone_url": "http://127.0.0.1:9/acme/app.git"}}
raw = json.dumps(push).encode()
sig = "sha256=" + hmac.new(GH_SECRET.encode(), raw, hashlib.sha256).hexdigest()
st, body, _ = srv.request("POST", "/v1/hooks/github", body=raw, token=None, raw=True,
                          headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": sig,
                                   "Content-Type": "application/json"})
T.check("the push webhook queued a build", st == 202, body)
xss = json.loads(body)["id"] if st == 202 else "none"
for bid in (good, fail, xss):
    srv.wait_status(bid, ["succeeded", "failed", "canceled"], timeout=120)
again = submit_dockerfile(GOOD)  # the same steps again: cache hits
srv.wait_status(again, ["succeeded", "failed", "canceled"], timeout=120)

# an API build of a git source: the checkout reads the commit's author and message
repo = os.path.join(T.tmp, "gitrepo")
os.makedirs(repo)
with open(os.path.join(repo, "Dockerfile"), "w") as f:
    f.write("FROM oci:%s:1\nRUN echo from-git\n" % layout)
GIT_MSG = "feat: the git build <i>x</i>\n\nthe body line"
g = ["git", "-C", repo, "-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(g + ["add", "-A"], check=True)
subprocess.run(g + ["commit", "-q", "-m", GIT_MSG], check=True)
serve = os.path.join(T.tmp, "gitsrv")
os.makedirs(serve)
subprocess.run(["git", "clone", "-q", "--bare", repo, os.path.join(serve, "site.git")], check=True)
from gitserve import serve_git  # noqa: E402
gitsrv, git_base = serve_git(serve)
GIT_URL = git_base + "/site.git"
st, b = srv.submit({"source": {"git": GIT_URL, "ref": "main"}})
T.check("an API build of a git source is accepted", st == 202, b)
gbid = b.get("id", "none")
srv.wait_status(gbid, ["succeeded", "failed", "canceled"], timeout=180)
grec = srv.get(gbid) or {}
T.check("the git build's record: the commit's author and message, read from the checkout",
        grec.get("status") == "succeeded" and grec.get("commit_author") == "Ada Lovelace"
        and grec.get("commit_message") == GIT_MSG, {k: grec.get(k) for k in (
            "status", "error", "commit_author", "commit_message")})
ev = ((grec.get("result") or {}).get("kiln.event") or {}).get("source", {})
T.check("the git build's completion event: source.author and source.message",
        ev.get("author") == "Ada Lovelace" and ev.get("message") == GIT_MSG, ev)


def listed(query):
    st, body = srv.request("GET", "/v1/builds?" + query)
    return st, [b["id"] for b in (body or {}).get("builds", [])] if st == 200 else body


T.check("GET /v1/builds?branch=main: the git build only (exact)",
        listed("branch=main") == (200, [gbid]), listed("branch=main"))
T.check("GET /v1/builds?branch=mai: nothing (exact unless it ends with *)",
        listed("branch=mai") == (200, []), listed("branch=mai"))
T.check("GET /v1/builds?branch=x%3Cimg*: the push's build (a prefix)",
        listed("branch=x%3Cimg*") == (200, [xss]), listed("branch=x%3Cimg*"))
T.check("GET /v1/builds?repo=<git URL prefix>*&status=succeeded: the git build",
        listed("repo=" + GIT_URL[:-4].replace(":", "%3A").replace("/", "%2F") + "*&status=succeeded")
        == (200, [gbid]), listed("repo=" + GIT_URL[:-4] + "*"))
st, body = srv.request("GET", "/v1/builds?branch=" + "b" * 1025)
T.check("a branch filter over 1024 bytes: refused naming it, word for word",
        st == 400 and (body or {}).get("error") == "query 'branch': longer than 1024 bytes", (st, body))
st, _, hdrs = srv.request("GET", "/", token=None, raw=True)
T.check("the page is served with a CSP allowing its own script by hash only",
        st == 200 and "script-src 'sha256-" in hdrs.get("Content-Security-Policy", "") and
        "unsafe-inline'; connect" in hdrs.get("Content-Security-Policy", "") and
        "script-src 'unsafe" not in hdrs.get("Content-Security-Policy", ""), hdrs)
rec_fail = srv.get(fail)
T.check("the webhook's commit message is on the record (triggered_by)",
        (srv.get(xss) or {}).get("triggered_by", {}).get("commit_message") == MESSAGE,
        srv.get(xss))

args = {"base": "http://127.0.0.1:%d" % srv.port, "token": TOKEN, "good": good, "fail": fail,
        "xss": xss, "again": again, "shots": shots, "git": gbid, "git_repo": GIT_URL}
r = subprocess.run([NODE, os.path.join(SRC, "tests", "browser", "dashboard.js"), modules,
                    CHROMIUM, json.dumps(args)], capture_output=True, text=True, timeout=300)
try:
    o = json.loads(r.stdout.strip().splitlines()[-1])
except (ValueError, IndexError):
    o = {"failure": "no result: " + r.stdout[-500:] + r.stderr[-1500:]}
T.check("the browser ran the page to the end", "failure" not in o and not o.get("errors"),
        o.get("failure") or o.get("errors"))
rows = o.get("rows", {})
T.check("the list's columns", o.get("headers") == [
    "build", "status", "repository", "branch", "commit", "author", "trigger", "queued",
    "started", "finished", "duration", "tenant"], o.get("headers"))
g, f, x = rows.get("good", {}), rows.get("fail", {}), rows.get("xss", {})
T.check("the good build's row: status, upload source, api trigger, times, duration, tenant",
        g.get("status") == "succeeded" and g.get("repository") == "upload" and
        g.get("trigger") == "api" and g.get("author", "").startswith("token sha256:") and
        g.get("queued", "").endswith("Z") and g.get("started", "").endswith("Z") and
        g.get("finished", "").endswith("Z") and g.get("duration", "").endswith(" s") and
        g.get("tenant") == "default", g)
T.check("the failing build's row says failed", f.get("status") == "failed", f)
T.check("the push's row: repository, branch, short SHA + message, author, trigger",
        x.get("repository") == "http://127.0.0.1:9/acme/app" and x.get("branch") == BRANCH and
        x.get("commit") == "c" * 12 + " " + MESSAGE and x.get("author") == AUTHOR and
        x.get("trigger") == "github push", x)
T.check("payloads in branch, message and author are text: no element made, nothing ran",
        o.get("xss_elements") == 0 and o.get("xss_flag") is None and
        o.get("xss_flag_end") is None and not o.get("dialogs") and
        (o.get("xss_page") or {}).get("elements") == 0 and
        (o.get("xss_page") or {}).get("fields", {}).get("branch") == BRANCH and
        (o.get("xss_page") or {}).get("fields", {}).get("message") == MESSAGE,
        {k: o.get(k) for k in ("xss_elements", "xss_flag", "xss_flag_end", "dialogs", "xss_page")})
T.check("filter by status: only failed builds, kept in the URL",
        fail in o.get("status_filtered", []) and good not in o.get("status_filtered", [good]) and
        o.get("hash_after_filter") == "#?status=failed",
        (o.get("status_filtered"), o.get("hash_after_filter")))
T.check("filter by the beginning of a branch: only the matching build, asked of the server",
        o.get("branch_filtered") == [xss] and "branch=x%3Cimg%2Fsrc*" in o.get("branch_query", ""),
        (o.get("branch_filtered"), o.get("branch_query")))
T.check("filter by the beginning of a repository: the git build, asked of the server",
        o.get("repo_filtered") == [gbid] and "&repo=" in o.get("repo_query", ""),
        (o.get("repo_filtered"), o.get("repo_query")))
gr = rows.get("git", {})
T.check("the git build's row: author and the message's first line from the commit",
        gr.get("author") == "Ada Lovelace"
        and gr.get("commit", "").endswith(" feat: the git build <i>x</i>"), gr)
fp = o.get("fail_page") or {}
T.check("the failing build's page shows its log lines",
        fp.get("status") == "failed" and "dash-fail-out-1" in fp.get("log", ""), fp)
failure = ((rec_fail.get("result") or {}).get("events") or {}).get("error", {}).get("failure", {})
T.check("the failing build's page shows the failing step, file:line, exit status, last lines",
        fp.get("fields", {}).get("exit status") == "3" and
        fp.get("fields", {}).get("at") == "Dockerfile:2" and
        "RUN echo dash-fail-out-1" in fp.get("fields", {}).get("instruction", "") and
        fp.get("failure_log", "").splitlines()[-1:] == ["dash-fail-out-2"],
        (fp, failure))
gp = o.get("good_page") or {}
steps = gp.get("steps", [])
digest = ((srv.get(good) or {}).get("result") or {}).get("containerimage.digest")
T.check("the good build's page: its RUN steps with times, the image digest, no error",
        gp.get("status") == "succeeded" and
        any("echo dash-good-line" in s[0] and s[2].endswith(" s") for s in steps) and
        digest and digest in gp.get("outputs", "") and not gp.get("error_shown"), (gp, digest))
T.check("the good build's page: the registry output it pushed, with its digest",
        "registry %s @ %s" % (PUSHED, digest) in gp.get("outputs", ""), gp.get("outputs"))
T.check("a script element added to the page does not run (CSP)",
        "csp_injected" in o and o["csp_injected"] is None, o.get("csp_injected"))
again_steps = o.get("again_steps", [])
T.check("the same build again: its RUN steps shown as cache hits",
        len([s for s in again_steps if s[0].find("RUN ") >= 0 and s[1] == "cached"]) == 2,
        again_steps)
T.check("screenshots saved in the test log dir",
        all(os.path.getsize(os.path.join(shots, n)) > 1000 for n in
            ("dashboard-list.png", "dashboard-failed-build.png", "dashboard-xss-build.png")
            if os.path.exists(os.path.join(shots, n))) and
        os.path.exists(os.path.join(shots, "dashboard-list.png")), shots)
srv.term()
T.done()
