"""kiln serve with per-build sandbox limits and the bytes-pushed metric, on real
`kiln build`s of busybox Dockerfiles: server defaults (--build-pids, --build-memory)
and maxima; a request's "limits" lowers them, asking above a maximum or giving a bad
value is a 400 naming the field; a step that forks or allocates past its limit fails
with the limit in the log; limits and bytes pushed are in the build record and
kiln_bytes_pushed_total adds up (existing blobs are not counted)."""

from kilntest import T
from server_common import real_build_server

layout, reg, srv = real_build_server(["--build-pids", "64", "--max-build-pids", "128",
                                      "--build-memory", "256m", "--max-build-memory", "512m"])


upload = srv.upload_dockerfile


def log_of(bid):
    return srv.request("GET", "/v1/builds/%s/logs" % bid, raw=True)[1].decode(errors="replace")


base = "FROM oci:%s:1\n" % layout
FORKS = "RUN i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; wait; echo forked-all %s\n"
forks = upload(base + FORKS % "a")
forks2 = upload(base + FORKS % "b")  # not a cache hit of the first
hog = upload(base + "RUN a=$(busybox head -c 160m /dev/zero | busybox tr '\\0' x); echo allocated ${#a}\n")
app = upload(base + "RUN echo limits-app > /app\n")

# --- bad limits: 400 naming the field ---
for lim, field in (({"memory": "1g"}, "limits.memory"), ({"pids": 1000}, "limits.pids"),
                   ({"pids": "many"}, "limits.pids"), ({"memory": "12q"}, "limits.memory"),
                   ({"cpu_time": 0}, "limits.cpu_time"), ({"disk": "1t"}, "limits.disk"),
                   ({"wall_time": 7200}, "limits.wall_time"), ({"bogus": 1}, "limits.bogus"),
                   ("512m", "limits")):
    st, body = srv.submit({"source": {"context": app}, "limits": lim})
    T.check("limits %s => 400 naming %s" % (lim, field),
            st == 400 and "'%s'" % field in str(body), (st, body))

# --- defaults: 40 processes fit under the server's 64; a request's 16 does not ---
st, body = srv.submit({"source": {"context": forks}})
b = srv.wait_status(body["id"], ("succeeded", "failed"), timeout=300)
T.check("defaults: the record shows the server's limits",
        b.get("limits") == {"memory": "256m", "pids": 64, "wall_time": 3600, "disk": "20g"}, b)
T.check("defaults: 40 processes fit under --build-pids 64", b["status"] == "succeeded",
        log_of(b["id"]))
st, body = srv.submit({"source": {"context": forks2}, "limits": {"pids": 16}})
b = srv.wait_status(body["id"], ("succeeded", "failed"), timeout=300)
log = log_of(b["id"])
T.check("pids 16: the record shows the request's limit",
        b.get("limits") == {"memory": "256m", "pids": 16, "wall_time": 3600, "disk": "20g"}, b)
T.check("pids 16: the build fails, the log shows the failed fork and the limit",
        b["status"] == "failed" and "can't fork" in log and "pids 16" in log, (b, log))

# --- memory ---
st, body = srv.submit({"source": {"context": hog}, "limits": {"memory": "32m", "cpu_time": 120}})
b = srv.wait_status(body["id"], ("succeeded", "failed"), timeout=300)
log = log_of(b["id"])
T.check("memory 32m: 160 MiB step fails, out of memory in the log",
        b["status"] == "failed" and "out of memory" in log and "memory 32m" in log, (b, log))
T.check("memory 32m: the record shows it",
        b.get("limits") == {"memory": "32m", "pids": 64, "cpu_time": 120, "wall_time": 3600, "disk": "20g"}, b)

# --- bytes pushed ---
name = "%s/limits/app:1" % reg
st, body = srv.submit({"source": {"context": app}, "outputs": [{"type": "registry", "name": name}]})
b1 = srv.wait_status(body["id"], ("succeeded", "failed"), timeout=300)
T.check("push: succeeded with bytes_pushed > 0 in the record",
        b1["status"] == "succeeded" and b1.get("bytes_pushed", 0) > 0, b1)
st, body = srv.submit({"source": {"context": app}, "outputs": [{"type": "registry", "name": name}]})
b2 = srv.wait_status(body["id"], ("succeeded", "failed"), timeout=300)
T.check("push again: nothing new uploaded (bytes_pushed 0)",
        b2["status"] == "succeeded" and b2.get("bytes_pushed") == 0, b2)
m = srv.metrics()
T.check("/metrics kiln_bytes_pushed_total is the sum of the records",
        m.get("kiln_bytes_pushed_total") == b1.get("bytes_pushed"), m)
srv.term()
T.done()
