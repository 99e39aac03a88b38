"""kiln worker on SQS (fauxqs): `kiln serve --queue JOBS --events-queue EVENTS` sends jobs,
two `kiln worker` processes build them; 20 jobs are each built exactly once and their
results and logs reach the server through the events; a worker killed mid-build leaves its
job to come back, and the other worker completes it.
The workers run the stand-in build command (git sources, checkout + build)."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T  # noqa: E402
from server_common import (TOKEN, Server, fauxqs_queues, pid_alive, start_fake_worker,  # noqa: E402
                           tar_gz, write_fake_build)
import awslib  # noqa: E402

fake = write_fake_build(T.tmp)
endpoint, jobs, events, aws_env = fauxqs_queues("kiln")
runlog = os.path.join(T.tmp, "runs")
argslog = os.path.join(T.tmp, "args.log")


def start_worker(name, **env):
    return start_fake_worker(name, jobs, events, aws_env, fake,
                             dict({"FAKE_RUNLOG": runlog, "FAKE_SLEEP": "0.5", "FAKE_STEPS": "3",
                                   "FAKE_ARGSLOG": argslog}, **env))


def runs():
    out = {}
    try:
        for line in open(runlog).read().split():
            worker = line.split(T.tmp + "/")[1].split("/")[0]
            bid = line.split("/builds/")[1].split("/")[0]
            out.setdefault(bid, []).append(worker)
    except OSError:
        pass
    return out


awslib.s3_create_bucket(endpoint, "kiln-contexts")
srv = Server(os.path.join(T.tmp, "root"), config={"tokens": [TOKEN]},
             extra=["--queue", jobs, "--events-queue", events,
                    "--context-store", "s3://kiln-contexts/staged/"], env=aws_env).start()
st, body = srv.submit({"source": {"git": "https://x.test/a.git"}, "secrets": {"a": "b"}})
T.check("queue mode without --job-key-file refuses secrets (400 naming the key option)",
        st == 400 and "job-key-file" in str(body), body)

w1 = start_worker("w1")
w2 = start_worker("w2")
ids = []
for i in range(20):
    st, body = srv.submit({"source": {"git": "https://git.example.test/acme/app%d.git" % (i % 3),
                                      "ref": "main"}})
    ids.append(body["id"] if st == 202 else None)
T.check("20 jobs queued", None not in ids and len(set(ids)) == 20, ids)
end = time.time() + 180
final = {}
while time.time() < end and len(final) < 20:
    for i in ids:
        if i not in final:
            b = srv.get(i)
            if b["status"] in ("succeeded", "failed", "canceled"):
                final[i] = b
    time.sleep(0.5)
T.check("all 20 jobs finished and succeeded", len(final) == 20 and
        all(b["status"] == "succeeded" for b in final.values()),
        {i: b["status"] for i, b in final.items()})
r = runs()
T.check("each job was built exactly once", all(len(r.get(i, [])) == 1 for i in ids),
        {i: r.get(i) for i in ids})
T.check("both workers took jobs", {w for i in ids for w in r.get(i, [])} == {"w1", "w2"}, r)
b = final.get(ids[0], {})
T.check("the server has the phases, the commit the checkout resolved (its author and message "
        "through the worker's source event) and the result from the job's events",
        [p["name"] for p in b.get("phases", [])][:2] == ["cloning", "building"] and
        b.get("commit") == "0123456789abcdef0123456789abcdef01234567" and
        b.get("commit_author") == "Fake Author" and b.get("commit_message") == "fake: the commit message" and
        (b.get("result") or {}).get("image.name") == "example/app:1", b)
specs = [json.loads(line) for line in open(argslog).read().splitlines() if line.startswith("{")]
spec = next((x for x in specs if x.get("build_id") == ids[0]), {})
T.check("the worker's job spec carries the API's build id, the repository, the git source to "
        "check out (the job checks it out itself) and the trigger",
        spec.get("repo", "").endswith(".git") and spec.get("trigger") == "api" and
        (spec.get("source") or {}).get("git", "").endswith(".git") and "commit" not in spec, spec)
st, log, _ = srv.request("GET", "/v1/builds/%s/logs" % ids[0], raw=True)
T.check("the server has the build log from the finished event",
        b"RUN step 3" in log and b"[kiln] succeeded" in log, log)

# An uploaded context travels through S3: staged by the server, fetched by a worker.
st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": b"FROM scratch\n"}))
T.check("queue mode: a context upload is staged in S3", st == 201, body)
ctx = body.get("context", "") if isinstance(body, dict) else ""
st, body = srv.submit({"source": {"context": ctx}})
b = srv.wait_status(body["id"], ["succeeded", "failed"], timeout=90) if st == 202 else body
st, log, _ = srv.request("GET", "/v1/builds/%s/logs" % b["id"], raw=True)
T.check("a worker fetched the staged context and built it",
        b["status"] == "succeeded" and b"/contexts/" in log and b"RUN step 3" in log, (b, log))

# Kill a worker in the middle of a long build: its job comes back to the other worker.
for p in (w1, w2):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
gcpid = os.path.join(T.tmp, "w3-grandchild")
w3 = start_worker("w3", FAKE_SLEEP="0", FAKE_STEPS="1", FAKE_GRANDCHILD=gcpid)
st, body = srv.submit({"source": {"git": "https://git.example.test/acme/slow.git"}})
sid = body["id"]
end = time.time() + 60
while time.time() < end and not runs().get(sid):
    time.sleep(0.2)
time.sleep(4)  # longer than the visibility timeout: the heartbeat keeps the job hidden
w4 = start_worker("w4", FAKE_SLEEP="0", FAKE_STEPS="1")
time.sleep(4)
T.check("a running job is not handed to a second worker while the first one is alive",
        runs().get(sid) == ["w3"], runs().get(sid))
w3.send_signal(signal.SIGKILL)
w3.wait(timeout=10)
b = srv.wait_status(sid, ["succeeded", "failed"], timeout=90)
T.check("after kill -9 the job was redelivered and completed by the other worker",
        b["status"] == "succeeded" and runs().get(sid) == ["w3", "w4"] and b["attempts"] == 2,
        (b, runs().get(sid)))
st, log, _ = srv.request("GET", "/v1/builds/%s/logs" % sid, raw=True)
T.check("the log names the second attempt", b"attempt 2" in log, log)
# The killed worker's build step outlived it; the worker's next start sweeps it.
gpid = int(open(gcpid).read().split()[0]) if os.path.exists(gcpid) else 0
alive_before = gpid > 0 and pid_alive(gpid)
w5 = start_worker("w3", FAKE_SLEEP="0", FAKE_STEPS="1")
end = time.time() + 15
while time.time() < end and gpid and pid_alive(gpid):
    time.sleep(0.1)
T.check("a restarted worker kills what its crashed run left running",
        alive_before and not pid_alive(gpid), (gpid, alive_before))
w5.send_signal(signal.SIGTERM)
w5.wait(timeout=60)
w4.send_signal(signal.SIGTERM)
T.check("worker drains and exits 0 on SIGTERM", w4.wait(timeout=60) == 0)
srv.term()
T.done()
