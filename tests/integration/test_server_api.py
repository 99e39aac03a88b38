"""kiln serve: the HTTP API against a real server process — auth, limits, validation,
pagination, logs (follow, since, SSE), cancel, artifacts, uploaded contexts, webhooks.

The builds here run a stand-in build command (a shell script that prints progress lines and
sleeps): these tests are about the server's plumbing. test_server_build.py runs real builds."""
import hashlib
import hmac
import http.client
import json
import os
import socket
import tarfile
import time

from kilntest import T
from server_common import TOKEN, Server, pid_alive, tar_gz, write_fake_build

fake = write_fake_build(T.tmp)
config = {
    "tokens": [TOKEN],
    "projects": [
        {"name": "app", "github": "acme/app", "secret": "gh-secret-1", "gitlab": "acme/app",
         "gitlab_token": "gl-token-1",
         "build": {"outputs": [{"type": "registry", "name": "127.0.0.1:5000/acme/app:latest"}]}},
    ],
}
argslog = os.path.join(T.tmp, "args.log")
srv = Server(os.path.join(T.tmp, "root"), workers=2, config=config, build_command=fake,
             extra=["--max-body", "65536"], env={"FAKE_SLEEP": "0.2", "FAKE_ARGSLOG": argslog}).start()
GIT = {"git": "https://git.example.test/acme/app.git", "ref": "main"}

# --- auth, limits, validation ---
st, body = srv.request("GET", "/v1/builds", token=None)
T.check("no token => 401", st == 401, body)
st, body = srv.request("GET", "/v1/builds", token="wrong-token-xyz")
T.check("bad token => 401", st == 401, body)
st, body = srv.request("GET", "/healthz", token=None)
T.check("healthz open and ok", st == 200 and body == {"status": "ok"}, body)
st, body = srv.submit("x" * 70000)
T.check("body over --max-body => 413", st == 413, body)
st, body = srv.submit("{not json")
T.check("malformed JSON => 400", st == 400 and "malformed JSON" in body["error"], body)
st, body = srv.submit({"source": {"git": 42}})
T.check("wrong type => 400 naming the field", st == 400 and "source.git" in body["error"], body)
st, body = srv.submit({"source": GIT, "outputz": []})
T.check("unknown field => 400 naming it", st == 400 and "outputz" in body["error"], body)
st, body = srv.submit({"source": GIT, "outputs": [{"type": "registry", "name": "a,b"}]})
T.check("output value with ',' => 400", st == 400 and "outputs[0].name" in body["error"], body)
st, body = srv.submit({"source": {"git": "--upload-pack=evil"}})
T.check("option-looking URL => 400", st == 400 and "source.git" in body["error"], body)
st, body = srv.submit({"source": {"git": "https://x.test/a.git", "subdir": "../etc"}})
T.check("subdir escaping the source => 400", st == 400 and "source.subdir" in body["error"], body)
st, body = srv.request("GET", "/v1/builds/b-0000000000000000")
T.check("unknown id => 404", st == 404, body)
st, body = srv.request("GET", "/v1/builds/b-0000000000000000/logs")
T.check("logs of unknown id => 404", st == 404, body)
st, body = srv.request("POST", "/v1/builds/b-0000000000000000/cancel")
T.check("cancel of unknown id => 404", st == 404, body)
st, body = srv.request("GET", "/v1/builds?cursor=zzz")
T.check("bad cursor => 400", st == 400 and "cursor" in body["error"], body)

# --- lifecycle: submit, follow logs to the end, status, phases, artifacts ---
st, body = srv.submit({"source": GIT, "build_args": {"A": "1"},
                       "outputs": [{"type": "registry", "name": "127.0.0.1:5000/app:1"}],
                       "secrets": {"npmrc": "TOPSECRET-VALUE"}})
T.check("submit => 202 queued with links", st == 202 and body["status"] == "queued" and
        body["links"]["logs"].endswith("/logs"), body)
bid = body["id"]
t0 = time.time()
st, log, _ = srv.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True, timeout=120)
log = log.decode()
T.check("followed log runs to the end", st == 200 and "RUN step 3" in log and
        "[kiln] succeeded" in log, log)
b = srv.get(bid)
T.check("status succeeded after the followed log ended", b["status"] == "succeeded", b)
names = [p["name"] for p in b["phases"]]
T.check("phases recorded in order, from the job's phase events (checkout is cloning)",
        names == ["cloning", "building", "pushing", "uploading"], names)
T.check("commit from the job's events after its checkout recorded, with its author and message",
        b["commit"] == "0123456789abcdef0123456789abcdef01234567" and b.get("commit_author") == "Fake Author"
        and b.get("commit_message") == "fake: the commit message", b)
T.check("phases have timings", all(p["seconds"] is not None for p in b["phases"]), b["phases"])
T.check("secret value not in the record", "TOPSECRET" not in json.dumps(b), b)
T.check("secret value not in the log", "TOPSECRET" not in log, log)
T.check("secret file removed after the build",
        not os.path.exists(os.path.join(srv.root, "secrets", bid)))
st, a = srv.request("GET", "/v1/builds/%s/artifacts" % bid)
T.check("artifacts: image name and digest", st == 200 and a["images"] and
        a["images"][0]["name"] == "example/app:1" and a["images"][0]["digest"].startswith("sha256:"), a)
st, part, hdrs = srv.request("GET", "/v1/builds/%s/logs" % bid, raw=True)
off = int(hdrs.get("X-Log-Offset", "-1"))
T.check("log so far with X-Log-Offset", st == 200 and off == len(part) and off > 0, hdrs)
st, rest, _ = srv.request("GET", "/v1/builds/%s/logs?since=%d" % (bid, off - 20), raw=True)
T.check("?since= resumes at the offset", rest == part[-20:], rest)

# SSE
st, sse, hdrs = srv.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True,
                            headers={"Accept": "text/event-stream"})
sse = sse.decode()
T.check("SSE stream: data lines and an end event", "data: #2 [1/1] RUN step 1\n\n" in sse and
        "event: end\ndata: succeeded" in sse and hdrs.get("Content-Type") == "text/event-stream", sse)

# --- cancel mid-build kills the whole process group at once ---
gc_pidfile = os.path.join(T.tmp, "grandchild.pid")
slow = Server(os.path.join(T.tmp, "root-slow"), workers=1, config=config, build_command=fake,
              env={"FAKE_SLEEP": "0.1", "FAKE_STEPS": "2", "FAKE_GRANDCHILD": gc_pidfile}).start()
st, body = slow.submit({"source": GIT})
cid = body["id"]
end = time.time() + 30
while time.time() < end and not os.path.exists(gc_pidfile):
    time.sleep(0.05)
time.sleep(0.2)
gpid = int(open(gc_pidfile).read().strip() or 0) if os.path.exists(gc_pidfile) else 0
T.check("build running with a grandchild step", gpid > 0 and pid_alive(gpid), gpid)
st, body = slow.request("POST", "/v1/builds/%s/cancel" % cid)
T.check("cancel => 200 canceled", st == 200 and body["status"] == "canceled", body)
end = time.time() + 10
while time.time() < end and gpid and pid_alive(gpid):
    time.sleep(0.05)
T.check("cancel killed the build's steps", gpid and not pid_alive(gpid), gpid)
b = slow.wait_status(cid, ["canceled"], timeout=10)
end = time.time() + 10
while time.time() < end:
    st, log, _ = slow.request("GET", "/v1/builds/%s/logs" % cid, raw=True)
    if b"[kiln] canceled" in log:
        break
    time.sleep(0.1)
T.check("canceled build stays canceled, log says so", b["status"] == "canceled" and
        b"[kiln] canceled" in log, (b, log))
st, body = slow.request("POST", "/v1/builds/%s/cancel" % cid)
T.check("cancel of a finished build => 409", st == 409, body)
# cancel while queued: the only worker is free now, so fill it first
os.unlink(gc_pidfile)
st, b1 = slow.submit({"source": GIT})
st, b2 = slow.submit({"source": GIT})
st, body = slow.request("POST", "/v1/builds/%s/cancel" % b2["id"])
T.check("cancel a queued build", st == 200 and body["status"] == "canceled", body)
slow.request("POST", "/v1/builds/%s/cancel" % b1["id"])
time.sleep(0.5)
T.check("a canceled queued build never starts", slow.get(b2["id"])["started_at"] is None,
        slow.get(b2["id"]))

# --- failure is recorded with the exit status ---
failing = Server(os.path.join(T.tmp, "root-fail"), workers=1, config=config, build_command=fake,
                 env={"FAKE_SLEEP": "0", "FAKE_EXIT": "3"}).start()
st, body = failing.submit({"source": GIT})
b = failing.wait_status(body["id"], ["failed", "succeeded"])
T.check("failing build => failed with the job's error message and code (reason build_failed)",
        b["status"] == "failed" and "the fake build failed" in (b["error"] or "") and
        b["reason"] == "build_failed", b)

# --- timeout ---
st, body = slow.submit({"source": GIT, "timeout_seconds": 1})
if os.path.exists(gc_pidfile):
    os.unlink(gc_pidfile)
b = slow.wait_status(body["id"], ["failed", "succeeded"], timeout=30)
T.check("timeout_seconds stops the build: failed/timeout", b["status"] == "failed" and
        b["reason"] == "timeout", b)

# --- list, filter, cursor pagination ---
ids = []
for i in range(7):
    st, body = srv.submit({"source": {"git": "https://git.example.test/other/r%d.git" % (i % 2)}})
    ids.append(body["id"])
for i in ids:
    srv.wait_status(i, ["succeeded", "failed"])
seen, cursor, pages = [], None, 0
while True:
    q = "/v1/builds?limit=3" + ("&cursor=" + cursor if cursor else "")
    st, page = srv.request("GET", q)
    pages += 1
    seen += [b["id"] for b in page["builds"]]
    cursor = page["next_cursor"]
    if not cursor or pages > 20:
        break
st, allb = srv.request("GET", "/v1/builds?limit=500")
all_ids = [b["id"] for b in allb["builds"]]
T.check("cursor pages cover every build once, newest first",
        seen == all_ids and len(set(seen)) == len(seen) and seen[:7] == ids[::-1], (seen, all_ids))
st, f = srv.request("GET", "/v1/builds?repo=https://git.example.test/other/r1&limit=500")
T.check("filter by repo", len(f["builds"]) == 3 and all(b["repo"].endswith("r1") for b in f["builds"]), f)
st, f = srv.request("GET", "/v1/builds?status=failed")
T.check("filter by status", st == 200 and all(b["status"] == "failed" for b in f["builds"]), f)
st, f = srv.request("GET", "/v1/builds?status=bogus")
T.check("unknown status filter => 400", st == 400, f)

# --- uploaded context ---
st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": b"FROM scratch\n"}),
                       headers={"Content-Type": "application/gzip"})
T.check("upload a tar.gz context => 201 id", st == 201 and body["context"].startswith("ctx-"), body)
ctx = body["context"]
T.check("context unpacked", os.path.exists(os.path.join(srv.root, "contexts", ctx, "Dockerfile")))
st, body = srv.submit({"source": {"context": ctx}})
b = srv.wait_status(body["id"], ["succeeded", "failed"])
st, log, _ = srv.request("GET", "/v1/builds/%s/logs" % body["id"], raw=True)
T.check("build of an uploaded context gets its directory",
        b["status"] == "succeeded" and ("contexts/" + ctx).encode() in log, log)
st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"../escape": b"x"}))
T.check("context with ../ => 400", st == 400 and "unsafe path" in body["error"], body)
for name, kind in (("fifo", tarfile.FIFOTYPE), ("sda", tarfile.BLKTYPE), ("null", tarfile.CHRTYPE)):
    st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": b"FROM scratch\n",
                                                               name: (kind,)}))
    T.check(f"context with a {name} entry => 400 naming it, nothing made on the host",
            st == 400 and f"'{name}' is a FIFO, socket or device" in body.get("error", "") and
            not any(os.path.lexists(os.path.join(d, name))
                    for d, _, _ in os.walk(os.path.join(srv.root, "contexts"))), body)
T.check("nothing escaped", not os.path.exists(os.path.join(srv.root, "escape")))
st, body = srv.submit({"source": {"context": "ctx-00000000"}})
# a missing context is answered like another tenant's: 404 naming the field
T.check("unknown context => 404", st == 404 and "source.context" in body["error"], body)

# --- webhooks ---
def github(event, payload, secret="gh-secret-1", sig=None):
    raw = json.dumps(payload).encode()
    if sig is None:
        sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return srv.request("POST", "/v1/hooks/github", body=raw, token=None,
                       headers={"X-GitHub-Event": event, "X-Hub-Signature-256": sig,
                                "Content-Type": "application/json"})

push = {"ref": "refs/heads/main", "after": "a" * 40,
        "repository": {"full_name": "acme/app", "clone_url": "https://git.example.test/acme/app.git"}}
st, body = github("ping", {"zen": "x", "repository": {"full_name": "acme/app"}})
T.check("github ping => 200", st == 200 and body.get("ok") is True, body)
st, body = github("push", push)
T.check("github push => 202 build", st == 202 and body["status"] == "queued", body)
b = srv.get(body["id"])
T.check("push build: clone_url at `after`, project outputs",
        b["source"] == {"git": push["repository"]["clone_url"], "ref": "main", "commit": "a" * 40} and
        b["outputs"][0]["name"].endswith("acme/app:latest"), b)
srv.wait_status(b["id"], ("succeeded", "failed"))
specs = [json.loads(line) for line in open(argslog).read().splitlines() if line.startswith("{")]
spec = next((x for x in specs if x.get("build_id") == b["id"]), {})
T.check("push build: its job spec carries the API's id, repo, the commit to check out, branch "
        "and trigger github (the job checks it out itself)",
        spec.get("repo") == push["repository"]["clone_url"] and spec.get("branch") == "main" and
        (spec.get("source") or {}).get("commit") == "a" * 40 and "commit" not in spec and
        spec.get("trigger") == "github", spec)
T.check("push build: the record's commit is the one the job's events carry after its checkout",
        srv.get(b["id"])["commit"] == "0123456789abcdef0123456789abcdef01234567", srv.get(b["id"]))
st, body = github("push", push, secret="wrong-secret")
T.check("github bad signature => 401", st == 401, body)
st, body = github("push", push, sig="sha256=" + "0" * 64)
T.check("github forged signature => 401", st == 401, body)
st, body = github("push", push, sig="")
T.check("github missing signature => 401", st == 401, body)
st, body = github("issues", dict(push, action="opened"))
T.check("github other event => 200 ignored", st == 200 and "ignored" in body, body)
other = json.loads(json.dumps(push))
other["repository"]["full_name"] = "acme/unknown"
st, body = github("push", other)
T.check("github unknown project => 404", st == 404, body)

gl = {"object_kind": "push", "ref": "refs/heads/dev", "checkout_sha": "b" * 40,
      "project": {"path_with_namespace": "acme/app", "git_http_url": "https://gitlab.test/acme/app.git"}}
def gitlab(event, payload, token="gl-token-1"):
    return srv.request("POST", "/v1/hooks/gitlab", body=payload, token=None,
                       headers={"X-Gitlab-Event": event, "X-Gitlab-Token": token})
st, body = gitlab("Push Hook", gl)
T.check("gitlab push => 202", st == 202, body)
T.check("gitlab push build source", srv.get(body["id"])["source"]["commit"] == "b" * 40, body)
st, body = gitlab("Push Hook", gl, token="nope")
T.check("gitlab bad token => 401", st == 401, body)
st, body = gitlab("Issue Hook", gl)
T.check("gitlab other event => ignored", st == 200 and "ignored" in body, body)

# --- metrics add up ---
time.sleep(0.5)
m = srv.metrics()
st, allb = srv.request("GET", "/v1/builds?limit=500")
T.check("metrics: builds by status add up to the list",
        sum(v for k, v in m.items() if k.startswith("kiln_builds{")) == len(allb["builds"]), m)
T.check("metrics: duration histogram counts finished builds",
        m["kiln_build_duration_seconds_count"] == m['kiln_builds{status="succeeded"}'] +
        m['kiln_builds{status="failed"}'], m)
T.check("metrics: workers", m["kiln_workers"] == 2, m)
T.check("metrics: bytes pushed add up (1000 per succeeded build)",
        m["kiln_bytes_pushed_total"] == 1000 * m['kiln_builds{status="succeeded"}'] > 0, m)

# --- dashboard page ---
st, page, hdrs = srv.request("GET", "/", token=None, raw=True)
T.check("dashboard served at /", st == 200 and b"<table" not in page[:0] and b"kiln" in page and
        hdrs.get("Content-Type", "").startswith("text/html"), hdrs)

# --- fair across repositories: a repository with builds running waits behind one without ---
fair = Server(os.path.join(T.tmp, "root-fair"), workers=2, config=config, build_command=fake,
              env={"FAKE_SLEEP": "0.3", "FAKE_STEPS": "3"}).start()
busy = [fair.submit({"source": {"git": "https://git.example.test/c/c%d.git" % k}})[1]["id"]
        for k in (1, 2)]
for bid_ in busy:
    fair.wait_status(bid_, ["building"])
a_ids = [fair.submit({"source": {"git": "https://git.example.test/a/app.git"}})[1]["id"]
         for _ in range(4)]
b_id = fair.submit({"source": {"git": "https://git.example.test/b/app.git"}})[1]["id"]
for bid_ in a_ids + [b_id]:
    fair.wait_status(bid_, ["succeeded"], timeout=60)
started = {bid_: fair.get(bid_)["started_at"] for bid_ in a_ids + [b_id]}
T.check("fair scheduling: repo b's only build starts before repo a's second one",
        started[b_id] < started[a_ids[1]], started)

# --- followers that hang up do not keep a thread each ---
hup = Server(os.path.join(T.tmp, "root-hup"), workers=1, config=config, build_command=fake,
             env={"FAKE_SLEEP": "1", "FAKE_STEPS": "30"}).start()
st, body = hup.submit({"source": GIT})
hup.wait_status(body["id"], ["building"])


def nthreads():
    return len(os.listdir("/proc/%d/task" % hup.proc.pid))


base = nthreads()
for _ in range(20):
    sk = socket.create_connection(("127.0.0.1", hup.port))
    sk.sendall(("GET /v1/builds/%s/logs?follow=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                "%s\r\n\r\n" % (body["id"], TOKEN)).encode())
    sk.recv(64)
    sk.close()
end = time.time() + 5
while time.time() < end and nthreads() > base:
    time.sleep(0.1)
T.check("abandoned log followers release their threads", nthreads() <= base, (base, nthreads()))
hup.request("POST", "/v1/builds/%s/cancel" % body["id"])

# --- SIGTERM drains: the running build finishes, queued ones wait for the next start ---
dr = Server(os.path.join(T.tmp, "root-drain"), workers=1, config=config, build_command=fake,
            env={"FAKE_SLEEP": "0.3", "FAKE_STEPS": "4"}).start()
st, d1 = dr.submit({"source": GIT})
st, d2 = dr.submit({"source": GIT})
dr.wait_status(d1["id"], ["building"], timeout=10)
rc = dr.term(timeout=60)
T.check("SIGTERM: server exits 0 after draining", rc == 0, dr.server_log())
dr2 = Server(dr.root, workers=1, config=config, build_command=fake,
             env={"FAKE_SLEEP": "0", "FAKE_STEPS": "1"})
dr2.port = dr.port
dr2.args = dr.args[:]
dr2.env["FAKE_SLEEP"] = "0"
dr2.start()
T.check("SIGTERM: the running build finished", dr2.get(d1["id"])["status"] == "succeeded",
        dr2.get(d1["id"]))
b = dr2.wait_status(d2["id"], ["succeeded", "failed"], timeout=30)
T.check("the queued build runs after the restart", b["status"] == "succeeded", b)
# A build longer than --drain-timeout is stopped and queued again, then run by the next start.
dr2.term(timeout=30)
long_env = {"FAKE_SLEEP": "0.2", "FAKE_STEPS": "200"}
dr3 = Server(dr.root, workers=1, config=config, build_command=fake, env=long_env,
             extra=["--drain-timeout", "1"]).start()
st, d3 = dr3.submit({"source": GIT})
dr3.wait_status(d3["id"], ["building"], timeout=10)
rc = dr3.term(timeout=30)
b = None
dr4 = Server(dr.root, workers=1, config=config, build_command=fake,
             env={"FAKE_SLEEP": "0", "FAKE_STEPS": "1"}).start()
b = dr4.wait_status(d3["id"], ["succeeded", "failed"], timeout=30)
st, log, _ = dr4.request("GET", "/v1/builds/%s/logs" % d3["id"], raw=True)
T.check("drain timeout: build re-queued, then completed by the next start",
        rc == 0 and b["status"] == "succeeded" and b"queued again" in log and
        b"attempt 2" in log, (rc, b, log[-400:]))
T.done()
