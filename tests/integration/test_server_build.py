"""kiln serve running real `kiln build`s of a tiny busybox Dockerfile: the lifecycle
(submit, follow the log to the end, status, artifacts pushed to a local docker-registry and
checked with skopeo), cancel mid-build (the sandboxed step dies at once), and load: 200
builds submitted at once to 2 workers all finish once, and /metrics adds up."""
import json
import os
import subprocess
import threading
import time

from kilntest import T
from server_common import processes, real_build_server

N_LOAD = int(os.environ.get("KILN_SERVER_LOAD", "200"))

layout, reg, srv = real_build_server()


upload = srv.upload_dockerfile


ctx = upload("FROM oci:%s:1\nARG N=0\nRUN echo built-$N > /n && cat /n\nCMD [\"cat\", \"/n\"]\n" % layout)

# --- lifecycle ---
name = "%s/app:1" % reg
st, body = srv.submit({"source": {"context": ctx}, "build_args": {"N": "first"},
                       "outputs": [{"type": "registry", "name": name}]})
T.check("submit => 202", st == 202, body)
bid = body["id"]
st, log, _ = srv.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True, timeout=300)
log = log.decode(errors="replace")
T.check("followed log shows the RUN step and ends", "RUN echo built-$N" in log and
        "[kiln] succeeded" in log, log)
b = srv.get(bid)
T.check("status succeeded with building phase timings", b["status"] == "succeeded" and
        any(p["name"] == "building" and p["seconds"] is not None for p in b["phases"]), b)
T.check("the completion event carries the API's build id",
        ((b.get("result") or {}).get("kiln.event") or {}).get("build_id") == bid, b.get("result"))
sizes = [((b.get("result") or {}).get("kiln.event") or {}).get("image_size") or {},
         (((b.get("result") or {}).get("events") or {}).get("result") or {}).get("image_size") or {}]
T.check("the build record has the image's compressed and uncompressed size (completion and result events)",
        sizes[0] == sizes[1] and 0 < sizes[0].get("compressed", 0) and 0 < sizes[0].get("uncompressed", 0),
        b.get("result"))
st, a = srv.request("GET", "/v1/builds/%s/artifacts" % bid)
digest = a["images"][0]["digest"] if a.get("images") else ""
sk = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "docker://" + name],
                    capture_output=True, text=True)
T.check("artifact digest is the pushed image (skopeo)", sk.returncode == 0 and
        json.loads(sk.stdout)["Digest"] == digest, (a, sk.stdout, sk.stderr))

# --- cancel mid-build: the sandboxed step dies with it ---
slow_ctx = upload("FROM oci:%s:1\nRUN sleep 47\n" % layout)


def sleepers():
    return processes("sleep", "47")


st, body = srv.submit({"source": {"context": slow_ctx}})
cid = body["id"]
end = time.time() + 120
while time.time() < end and not sleepers():
    time.sleep(0.1)
T.check("the slow build's step is running", bool(sleepers()), srv.get(cid))
st, body = srv.request("POST", "/v1/builds/%s/cancel" % cid)
T.check("cancel => canceled", st == 200 and body["status"] == "canceled", body)
end = time.time() + 10
while time.time() < end and sleepers():
    time.sleep(0.1)
T.check("the sandboxed step is gone after cancel", not sleepers(), sleepers())

# --- load: N builds at once, 2 workers ---
ids = []
lock = threading.Lock()


def submitter(k):
    for i in range(k, N_LOAD, 8):
        st, body = srv.submit({"source": {"context": ctx}, "build_args": {"N": str(i)}})
        with lock:
            ids.append(body["id"] if st == 202 else None)


threads = [threading.Thread(target=submitter, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
T.check("%d builds accepted" % N_LOAD, len(ids) == N_LOAD and None not in ids and
        len(set(ids)) == N_LOAD, ids[:5])
end = time.time() + 900
pending = set(ids)
while pending and time.time() < end:
    st, page = srv.request("GET", "/v1/builds?limit=500")
    done = {b["id"] for b in page["builds"] if b["status"] in ("succeeded", "failed", "canceled")}
    pending -= done
    time.sleep(1)
T.check("all %d builds finished" % N_LOAD, not pending, len(pending))
st, page = srv.request("GET", "/v1/builds?limit=500")
mine = [b for b in page["builds"] if b["id"] in set(ids)]
bad = [b for b in mine if b["status"] != "succeeded" or b["attempts"] != 1]
T.check("every build succeeded on its first and only attempt", len(mine) == N_LOAD and not bad,
        bad[:2])
once = 0
sample = ids[:20]
for i in sample:
    st, lg, _ = srv.request("GET", "/v1/builds/%s/logs" % i, raw=True)
    once += lg.count(b"[kiln] build ") == 1 and lg.count(b"[kiln] succeeded") == 1
T.check("logs show one run per build (sample of %d)" % len(sample), once == len(sample), once)
m = srv.metrics()
total = N_LOAD + 2
T.check("/metrics adds up", m['kiln_builds{status="succeeded"}'] == N_LOAD + 1 and
        m['kiln_builds{status="canceled"}'] == 1 and
        sum(v for k, v in m.items() if k.startswith("kiln_builds{")) == total and
        m["kiln_queue_depth"] == 0 and m["kiln_workers_busy"] == 0 and
        m["kiln_build_duration_seconds_count"] == N_LOAD + 1 and
        m['kiln_build_duration_seconds_bucket{le="+Inf"}'] == N_LOAD + 1, m)
T.check("server still healthy", srv.request("GET", "/healthz", token=None)[0] == 200)
srv.term()
T.done()
