"""One protocol between the server and the builder: a real `kiln serve` runs each build as
`kiln job run --spec-fd 3 --events-fd 4` and reads its JSON-lines events (no log lines); the
job checks its git source out itself (the token handed over as a file) and its phases
(checkout, building, pushing) are the build's statuses, in local mode and through a real
`kiln worker` on an emulated SQS queue (a git source, and an uploaded context the worker
fetches as a tarball and the job unpacks).
A tenant's build of a private git repository (its token in the URL) announces its completion
on an emulated SQS queue (fauxqs) with the API's build id, the repository without the token,
the full commit SHA, the branch, the tenant and the trigger; the build record keeps the
events (phases, the result); the token is on no command line and in no event. A build whose
RUN step fails carries the failing step (instruction, Dockerfile:line), its exit status and its
last 20 output lines in the build record and its completion event. A cancel
through the API ends the running job: kiln job run and its sandboxed step are gone."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
import awslib  # noqa: E402
from gitserve import serve_git  # noqa: E402
from kilntest import KILN, T, start_registry  # noqa: E402
from server_common import (TOKEN, Server, busybox_layout, fauxqs_queues, processes,  # noqa: E402
                           tar_gz)

ACME = "acme-token-job-events-0001"
GIT_TOKEN = "git-TOKEN-job-events-5e5e"

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
endpoint, jobs, events, aws_env = fauxqs_queues("jev")
reg = "127.0.0.1:%d" % start_registry()

# a private repository (served over http on loopback, the token needed to fetch it)
repo = os.path.join(T.tmp, "app")
os.makedirs(repo)
with open(os.path.join(repo, "Dockerfile"), "w") as f:
    f.write("FROM oci:%s:1\nRUN echo built > /b\n" % layout)
git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(git + ["add", "-A"], check=True)
subprocess.run(git + ["commit", "-q", "-m", "app"], check=True)
head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
served = os.path.join(T.tmp, "served", "private")
os.makedirs(served)
subprocess.run(["git", "clone", "-q", "--bare", repo, os.path.join(served, "app.git")], check=True)
_gitsrv, git_base = serve_git(os.path.join(T.tmp, "served"), private_token=GIT_TOKEN)
url = git_base + "/private/app.git"
url_with_token = url.replace("http://", "http://x-access-token:%s@" % GIT_TOKEN)

config = {
    "policy": {"allow_http_git": True, "allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout]},
    "tenants": [{"name": "acme", "tokens": [ACME],
                 "outputs": {"notify": ["sqs://" + events], "registry": [reg + "/acme/"]},
                 # the server's AWS keys (fauxqs's) for the notify
                 "credentials": {"inherit": True}}],
}
srv = Server(os.path.join(T.tmp, "root"), workers=1, config=config, env=aws_env,
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root"),
                    "--build-option=--insecure-registry=" + reg]).start()

# every command line while the build runs: the token must be on none
seen = set()
stop = threading.Event()


def watch():
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    seen.add(f.read())
            except OSError:
                pass
        time.sleep(0.02)


watcher = threading.Thread(target=watch)
watcher.start()
st, body = srv.request("POST", "/v1/builds", {"source": {"git": url_with_token, "ref": "main"},
                                              "notify": ["sqs://" + events],
                                              "outputs": [{"type": "registry",
                                                           "name": reg + "/acme/app:1"}]},
                       token=ACME)
T.check("acme's build of a private repository => 202", st == 202, body)
bid = body.get("id", "b-x")
b = {}
end = time.time() + 300
while st == 202 and time.time() < end and b.get("status") not in ("succeeded", "failed"):
    b = srv.request("GET", "/v1/builds/" + bid, token=ACME)[1]
    time.sleep(0.2)
stop.set()
watcher.join()
st, log, _ = srv.request("GET", "/v1/builds/%s/logs" % bid, raw=True, token=ACME)
log = log.decode(errors="replace")
T.check("the build succeeded", (b or {}).get("status") == "succeeded", (b, log[-3000:]))
T.check("its log shows the steps from the job's step events (#N lines)",
        "RUN echo built" in log and "[kiln] succeeded" in log, log[-3000:])
T.check("the git token is on no command line while it ran",
        not any(GIT_TOKEN.encode() in c for c in seen), [c for c in seen if GIT_TOKEN.encode() in c])

msgs = awslib.sqs_receive(endpoint, events, wait=5)
evs = [json.loads(m["Body"]) for m in msgs]
ev = next((e for e in evs if e.get("build_id") == bid), {})
T.check("the completion event on the queue carries the API's build id", ev.get("build_id") == bid,
        evs)
src = ev.get("source") or {}
T.check("... the repository without its token", src.get("repo") == url, src)
T.check("... the full commit SHA the checkout resolved", src.get("commit") == head, (src, head))
T.check("... the branch, the tenant and the trigger",
        src.get("branch") == "main" and ev.get("tenant") == "acme" and ev.get("trigger") == "api",
        ev)
T.check("... and no token anywhere", GIT_TOKEN not in json.dumps(evs), evs)
T.check("the record's completion event is the same",
        ((b or {}).get("result") or {}).get("kiln.event", {}).get("source", {}).get("commit") == head,
        (b or {}).get("result"))
jev = ((b or {}).get("result") or {}).get("events") or {}
T.check("the record keeps the job's events: its phases in order and the result",
        jev.get("phases") == ["validate", "checkout", "building", "pushing", "notifying", "done"]
        and (jev.get("result") or {}).get("status") == "succeeded", jev)
T.check("the build's statuses came from the job's phase events: cloning, building, pushing",
        [p["name"] for p in (b or {}).get("phases", [])] == ["cloning", "building", "pushing"],
        (b or {}).get("phases"))
T.check("... and the pushed digest", [x.get("ref") for x in jev.get("pushed") or []] ==
        [reg + "/acme/app:1"], jev)

# --- a failing step: where and why, in the record and the completion event ---
bad_df = ("FROM oci:%s:1\nRUN echo fine > /f\n"
          "RUN for i in $(seq 1 30); do echo out-$i; done; exit 3\n" % layout)
st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": bad_df.encode()}),
                       token=ACME)
st, body = srv.request("POST", "/v1/builds", {"source": {"context": body.get("context", "")},
                                              "notify": ["sqs://" + events]}, token=ACME)
fid = (body or {}).get("id", "b-x")
fb = {}
end = time.time() + 300
while st == 202 and time.time() < end and fb.get("status") not in ("succeeded", "failed"):
    fb = srv.request("GET", "/v1/builds/" + fid, token=ACME)[1] or {}
    time.sleep(0.2)
fres = fb.get("result") or {}
fail = ((fres.get("events") or {}).get("error") or {}).get("failure") or {}
want_log = ["out-%d" % i for i in range(11, 31)]
T.check("a failing RUN: the record's error names the failing step, its instruction and "
        "Dockerfile:3", fb.get("status") == "failed" and fail.get("file") == "Dockerfile"
        and fail.get("line") == 3 and fail.get("instruction", "").startswith("RUN for i in")
        and "RUN for i in" in fail.get("name", ""), (fb, fail))
T.check("... its exit status (3) and its last 20 output lines",
        fail.get("exit_status") == 3 and fail.get("log") == want_log, fail)
msgs = awslib.sqs_receive(endpoint, events, wait=5)
fev = next((json.loads(m["Body"]) for m in msgs
            if json.loads(m["Body"]).get("build_id") == fid), {})
T.check("... the completion event on the queue carries the same failure",
        fev.get("status") == "failed" and fev.get("failure") == fail, fev)
T.check("... and so does the record's completion event",
        (fres.get("kiln.event") or {}).get("failure") == fail, fres.get("kiln.event"))

# --- cancel through the API ends the running job ---
st, body = srv.request("POST", "/v1/contexts", body=tar_gz(
    {"Dockerfile": ("FROM oci:%s:1\nRUN sleep 53\n" % layout).encode()}), token=ACME)
T.check("a slow context uploaded", st == 201, body)
st, body = srv.request("POST", "/v1/builds", {"source": {"context": body.get("context", "")}},
                       token=ACME)
cid = body.get("id", "b-x")


def sleepers():
    return processes("sleep", "53")


def job_runs():
    return processes(KILN, "job", "run")


end = time.time() + 120
while time.time() < end and not sleepers():
    time.sleep(0.1)
T.check("the slow build's step runs under kiln job run", bool(sleepers()) and bool(job_runs()),
        (sleepers(), job_runs()))
st, body = srv.request("POST", "/v1/builds/%s/cancel" % cid, token=ACME)
T.check("cancel => canceled", st == 200 and body.get("status") == "canceled", body)
end = time.time() + 10
while time.time() < end and (sleepers() or job_runs()):
    time.sleep(0.1)
T.check("kiln job run and its sandboxed step are gone after the cancel",
        not sleepers() and not job_runs(), (sleepers(), job_runs()))
srv.term()

# --- queue mode: kiln serve --queue and a real kiln worker run the same kiln job run ---
public = os.path.join(T.tmp, "served", "app.git")
subprocess.run(["git", "clone", "-q", "--bare", repo, public], check=True)
awslib.s3_create_bucket(endpoint, "jev-contexts")
qsrv = Server(os.path.join(T.tmp, "qroot"), config={"tokens": [TOKEN]}, env=aws_env,
              extra=["--queue", jobs, "--events-queue", events,
                     "--context-store", "s3://jev-contexts/staged/"]).start()
wenv = dict(os.environ)
wenv.update(aws_env)
worker = T.spawn([KILN, "worker", "--queue", jobs, "--events-queue", events,
                  "--root", os.path.join(T.tmp, "wroot"),
                  "--kiln-root", os.path.join(T.tmp, "kiln-root-w"),
                  "--allow-address", "127.0.0.0/8", "--build-option=--allow-http-git",
                  "--build-option=--oci-dir=" + layout,
                  "--build-option=--insecure-registry=" + reg,
                  "--visibility-timeout", "30", "--wait-seconds", "1", "--drain-timeout", "10"],
                 stdout=open(os.path.join(T.tmp, "worker.log"), "w"), stderr=subprocess.STDOUT,
                 env=wenv)
st, body = qsrv.submit({"source": {"git": git_base + "/app.git", "ref": "main"},
                        "outputs": [{"type": "registry", "name": reg + "/q/app:1"}]})
qb = qsrv.wait_status(body.get("id", "b-x"), ["succeeded", "failed"], timeout=300) \
    if st == 202 else body
qlog = qsrv.request("GET", "/v1/builds/%s/logs" % qb.get("id", "b-x"), raw=True)[1]
T.check("queue mode: the worker's kiln job run checked the repository out and pushed it",
        qb.get("status") == "succeeded", (qb, qlog[-2000:], open(os.path.join(T.tmp, "worker.log")).read()[-2000:]))
T.check("queue mode: the statuses came from the job's phase events: cloning, building, pushing",
        [p["name"] for p in qb.get("phases", [])] == ["cloning", "building", "pushing"],
        qb.get("phases"))
T.check("queue mode: the commit the job's checkout resolved", qb.get("commit") == head, qb)
st, body = qsrv.request("POST", "/v1/contexts", body=tar_gz(
    {"Dockerfile": ("FROM oci:%s:1\nCOPY f /f\nRUN cat /f\n" % layout).encode(),
     "f": b"from the upload\n"}))
st, body = qsrv.submit({"source": {"context": body.get("context", "")},
                        "outputs": [{"type": "registry", "name": reg + "/q/up:1"}]})
ub = qsrv.wait_status(body.get("id", "b-x"), ["succeeded", "failed"], timeout=300) \
    if st == 202 else body
ulog = qsrv.request("GET", "/v1/builds/%s/logs" % ub.get("id", "b-x"), raw=True)[1]
T.check("queue mode: an uploaded context, fetched by the worker as a tarball, unpacked and built "
        "by the job", ub.get("status") == "succeeded" and b"from the upload" in ulog,
        (ub, ulog[-2000:]))
T.check("queue mode: its statuses building, pushing (no checkout for an upload)",
        [p["name"] for p in ub.get("phases", [])] == ["building", "pushing"], ub.get("phases"))
worker.terminate()
worker.wait(timeout=60)
qsrv.term()
T.done()
