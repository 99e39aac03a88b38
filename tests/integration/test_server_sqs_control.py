"""kiln serve --queue with one real `kiln worker` on fauxqs (SQS + S3), real builds:
- secrets travel sealed (AES-256-GCM, --job-key-file shared by serve and worker): the raw
  job message holds no secret value, the build reads the secret, and neither the server's
  state nor the logs hold it; a worker without the key fails such a job clearly;
- cancel reaches the worker: the server writes a cancel marker in the context store, the
  worker sees it on its heartbeat, kills the sandboxed step at once and reports canceled;
  a job canceled while still queued is never built."""
import hashlib
import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import KILN, T, start_registry  # noqa: E402
from server_common import TOKEN, Server, busybox_layout, fauxqs_queues, processes  # noqa: E402
import awslib  # noqa: E402

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
endpoint, jobs, events, aws_env = fauxqs_queues("kiln-ctl")
key_file = os.path.join(T.tmp, "job.key")
with open(key_file, "w") as f:
    f.write(secrets.token_hex(32) + "\n")
os.chmod(key_file, 0o600)
SECRET = "s3cr3t-" + secrets.token_hex(12)
reg = "127.0.0.1:%d" % start_registry()

srv = Server(os.path.join(T.tmp, "root"), config={"tokens": [TOKEN]},
             extra=["--queue", jobs, "--events-queue", events, "--job-key-file", key_file,
                    "--context-store", "s3://kiln-ctl/staged/"], env=aws_env).start()


def start_worker(name, key=True):
    e = dict(os.environ)
    e.update(aws_env)
    e.pop("KILN_JOB_KEY_FILE", None)
    log = open(os.path.join(T.tmp, name + ".log"), "w")
    args = [KILN, "worker", "--queue", jobs, "--events-queue", events, "--root",
            os.path.join(T.tmp, name), "--kiln-root", os.path.join(T.tmp, "kiln-root"),
            "--visibility-timeout", "6", "--wait-seconds", "1", "--drain-timeout", "20",
            "--build-option=--insecure-registry=" + reg, "--build-pids", "256",
            # the test's registry (loopback) and base layout are open to the tenant builds
            "--allow-address", "127.0.0.0/8", "--build-option=--oci-dir=" + layout]
    if key:
        args += ["--job-key-file", key_file]
    return T.spawn(args, stdout=log, stderr=subprocess.STDOUT, env=e)


def peek_jobs():
    """The job messages waiting in the queue, read raw and left there."""
    r = awslib._json_call(endpoint, "ReceiveMessage",
                          {"QueueUrl": jobs, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0,
                           "WaitTimeSeconds": 1})
    return [m["Body"] for m in r.get("Messages", [])]


def server_log(bid):
    return srv.request("GET", "/v1/builds/%s/logs" % bid, raw=True)[1].decode(errors="replace")


def tree_has(root, needle):
    """Files under root whose bytes contain needle."""
    hits = []
    for d, _, files in os.walk(root):
        for f in files:
            try:
                with open(os.path.join(d, f), "rb") as fh:
                    if needle.encode() in fh.read():
                        hits.append(os.path.join(d, f))
            except OSError:
                pass
    return hits


# --- secrets, sealed ---
ctx = srv.upload_dockerfile("FROM oci:%s:1\nRUN --mount=type=secret,id=token "
                            "busybox sha256sum /run/secrets/token\n" % layout)
st, body = srv.submit({"source": {"context": ctx}, "secrets": {"token": SECRET},
                       "outputs": [{"type": "registry", "name": reg + "/ctl/app:1"}]})
T.check("queue mode with a job key accepts secrets", st == 202, body)
sid = body.get("id", "") if isinstance(body, dict) else ""
raw = peek_jobs()
T.check("the raw job message carries the secrets sealed, not in clear",
        len(raw) == 1 and SECRET not in raw[0] and '"alg":"A256GCM"' in raw[0], raw)
w1 = start_worker("w1")
b = srv.wait_status(sid, ["succeeded", "failed"], timeout=180)
log = server_log(sid)
T.check("the worker opened the secrets and the build read them",
        b["status"] == "succeeded" and hashlib.sha256(SECRET.encode()).hexdigest() in log,
        (b, log))
T.check("the secret value is nowhere in the server's state or logs",
        not tree_has(os.path.join(T.tmp, "root"), SECRET) and SECRET not in log,
        tree_has(os.path.join(T.tmp, "root"), SECRET))
T.check("nor in the worker's files", not tree_has(os.path.join(T.tmp, "w1"), SECRET),
        tree_has(os.path.join(T.tmp, "w1"), SECRET))
T.check("the worker applied its default limits; the record has the bytes it pushed",
        (b.get("result") or {}).get("kiln.limits") == {"memory": "4g", "pids": 256, "disk": "20g"} and b.get("bytes_pushed", 0) > 0,
        b)
T.check("/metrics counts the worker's pushed bytes",
        srv.metrics().get("kiln_bytes_pushed_total") == b.get("bytes_pushed"), srv.metrics())

# --- cancel mid-build and while queued ---
slow = srv.upload_dockerfile("FROM oci:%s:1\nRUN sleep 57\n" % layout)


def sleepers():
    return processes("sleep", "57")


st, body = srv.submit({"source": {"context": slow}})
cid = body["id"]
end = time.time() + 120
while time.time() < end and not sleepers():
    time.sleep(0.2)
T.check("the slow build's step runs on the worker", bool(sleepers()), srv.get(cid))
# Queued behind it (one worker, one build at a time), then canceled before it starts.
st, body = srv.submit({"source": {"context": slow}, "build_args": {"QUEUED": "1"}})
qid = body["id"]
st, body = srv.request("POST", "/v1/builds/%s/cancel" % qid)
T.check("cancel a queued build => canceled", st == 200 and body["status"] == "canceled", body)
st, body = srv.request("POST", "/v1/builds/%s/cancel" % cid)
T.check("cancel the running build => canceled", st == 200 and body["status"] == "canceled", body)
t0 = time.time()
while time.time() < t0 + 20 and sleepers():
    time.sleep(0.1)
T.check("the worker's sandboxed step is gone soon after (heartbeat poll)", not sleepers(),
        sleepers())
T.diag("cancel => step gone on the worker after %.1f s" % (time.time() - t0))
end = time.time() + 60
while time.time() < end and "[kiln] canceled" not in server_log(cid):
    time.sleep(0.5)
T.check("the worker's finished event says canceled (log tail reached the server)",
        "[kiln] canceled" in server_log(cid), server_log(cid))
T.check("the server record stays canceled", srv.get(cid)["status"] == "canceled", srv.get(cid))
end = time.time() + 60
while time.time() < end and "[kiln] canceled" not in server_log(qid):
    time.sleep(0.5)
qlog = server_log(qid)
T.check("the queued job was taken, seen canceled and never built",
        "[kiln] canceled" in qlog and "RUN sleep" not in qlog, qlog)
done = os.path.join(T.tmp, "w1", "done", cid)
T.check("the worker recorded its canceled outcome",
        os.path.exists(done) and '"status":"canceled"' in open(done).read(),
        open(done).read() if os.path.exists(done) else "no marker")

# --- a worker without the key ---
w1.terminate()
w1.wait(timeout=60)
w2 = start_worker("w2", key=False)
st, body = srv.submit({"source": {"context": ctx}, "secrets": {"token": SECRET}})
b = srv.wait_status(body["id"], ["succeeded", "failed"], timeout=120)
T.check("a worker without the job key fails the job naming the missing key",
        b["status"] == "failed" and "job key" in (b.get("error") or ""), b)
w2.terminate()
w2.wait(timeout=60)
srv.term()
T.done()
