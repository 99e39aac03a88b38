#!/usr/bin/env python3
"""docker build's step options through the API: a request's "ulimits" and "shm_size" reach its
RUN steps (the soft and hard nofile limits and the size of /dev/shm, printed by a real build
of a busybox Dockerfile) within the caps the server's config sets ("max_ulimits",
"max_shm_size"); a request above a cap, or naming a limit the config does not list, is refused
with 400 naming the field, the value and the cap, before any build exists; a config with a
bad cap stops the server naming the key."""
import os
import subprocess

from kilntest import KILN, T
from server_common import TOKEN, Server, busybox_layout

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
config = {"tokens": [TOKEN], "policy": {"oci_dirs": [layout]},
          "max_shm_size": "8m", "max_ulimits": {"nofile": 2048, "nproc": -1}}
srv = Server(os.path.join(T.tmp, "root"), workers=1, config=config,
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root")]).start()
DF = ("FROM oci:%s:1\nRUN echo \"soft=$(ulimit -Sn) hard=$(ulimit -Hn)\" && "
      "busybox df -k /dev/shm | busybox tail -1 | busybox awk '{print \"shm=\" $2}'\n" % layout)
ctx = srv.upload_dockerfile(DF)

st, b = srv.submit({"source": {"context": ctx}, "ulimits": ["nofile=1000:2000"], "shm_size": 8 << 20})
T.check("a request with ulimits and shm_size within the caps is accepted", st == 202, b)
bid = (b or {}).get("id", "none")
srv.wait_status(bid, ["succeeded", "failed", "canceled"], timeout=120)
st, log, _ = srv.request("GET", "/v1/builds/%s/logs" % bid, raw=True)
log = log.decode(errors="replace") if isinstance(log, bytes) else str(log)
T.check("its RUN step runs with nofile 1000:2000 and an 8 MiB /dev/shm",
        (srv.get(bid) or {}).get("status") == "succeeded" and "soft=1000 hard=2000" in log
        and "shm=8192" in log, log[-1500:])

for body, msg in [
    ({"shm_size": 16 << 20}, "field 'shm_size': 16m is above the server's maximum 8m (max_shm_size)"),
    ({"ulimits": ["nofile=1000:4096"]},
     "field 'ulimits[0]': nofile=1000:4096 is above the server's maximum nofile=2048 (max_ulimits.nofile)"),
    ({"ulimits": ["nproc=100", "core=0"]},
     "field 'ulimits[1]': core=0 is not allowed by the server (max_ulimits names no core)"),
]:
    req = {"source": {"context": ctx}}
    req.update(body)
    st, b = srv.request("POST", "/v1/builds", body=req)
    T.check(f"{body}: 400 naming the field, the value and the cap, word for word",
            st == 400 and (b or {}).get("error") == msg, (st, b))
st, b = srv.request("GET", "/v1/builds")
T.check("the refused requests made no build", st == 200 and len(b.get("builds", [])) == 1, b)
srv.term()

bad = os.path.join(T.tmp, "bad.json")
with open(bad, "w") as f:
    f.write('{"tokens": ["%s"], "max_ulimits": {"nofiles": 10}}' % TOKEN)
r = subprocess.run([KILN, "serve", "--root", os.path.join(T.tmp, "root2"), "--config", bad,
                    "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
T.check("a config whose max_ulimits names an unknown limit: the server does not start, naming it",
        r.returncode != 0 and "max_ulimits.nofiles: not a limit name" in r.stderr, r.stderr[-600:])
T.done()
