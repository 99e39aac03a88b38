"""kiln serve: crash safety. kill -9 during builds, then restart: no step of the old
process is left running, queued builds run, interrupted builds are failed with reason
`interrupted` (or run once more with --requeue-interrupted), nothing runs twice.
Uses the stand-in build command (a shell script with a grandchild step)."""
import os
import time

from kilntest import T
from server_common import TOKEN, Server, pid_alive, write_fake_build

fake = write_fake_build(T.tmp)
config = {"tokens": [TOKEN]}
GIT = {"git": "https://git.example.test/acme/app.git"}


def runs(runlog):
    try:
        lines = open(runlog).read().split()
    except OSError:
        return {}
    out = {}
    for line in lines:
        bid = line.split("/builds/")[1].split("/")[0]
        out[bid] = out.get(bid, 0) + 1
    return out


for requeue in (False, True):
    tag = "requeue" if requeue else "fail"
    root = os.path.join(T.tmp, "root-" + tag)
    runlog = os.path.join(T.tmp, "runs-" + tag)
    pidfile = os.path.join(T.tmp, "gc-" + tag)
    extra = ["--requeue-interrupted"] if requeue else []
    srv = Server(root, workers=2, config=config, build_command=fake, extra=extra,
                 env={"FAKE_SLEEP": "0.1", "FAKE_STEPS": "2", "FAKE_GRANDCHILD": pidfile,
                      "FAKE_RUNLOG": runlog}).start()
    ids = [srv.submit({"source": GIT})[1]["id"] for _ in range(5)]
    end = time.time() + 20
    while time.time() < end and len(runs(runlog)) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # both running builds are now inside their long grandchild step
    running = [i for i in ids if srv.get(i)["status"] in ("cloning", "building")]
    gpid = int(open(pidfile).read().split()[0])
    T.check("%s: two builds running, one grandchild step known" % tag,
            len(running) == 2 and pid_alive(gpid), (running, gpid))
    srv.kill9()
    # The build processes die with the server (PDEATHSIG); the grandchild step may outlive
    # it until the restart sweeps its process group.
    srv2 = Server(root, workers=2, config=config, build_command=fake, extra=extra,
                  env={"FAKE_SLEEP": "0", "FAKE_STEPS": "1", "FAKE_RUNLOG": runlog})
    srv2.port = srv.port
    srv2.args = srv.args
    srv2.start()
    end = time.time() + 10
    while time.time() < end and pid_alive(gpid):
        time.sleep(0.05)
    T.check("%s: after restart no step of the old server is left" % tag, not pid_alive(gpid),
            gpid)
    finals = {i: srv2.wait_status(i, ["succeeded", "failed", "canceled"], timeout=60) for i in ids}
    queued = [i for i in ids if i not in running]
    T.check("%s: builds queued at the crash ran after the restart" % tag,
            all(finals[i]["status"] == "succeeded" for i in queued),
            {i: finals[i]["status"] for i in ids})
    r = runs(runlog)
    if requeue:
        T.check("requeue: interrupted builds ran once more and succeeded",
                all(finals[i]["status"] == "succeeded" and finals[i]["attempts"] == 2 and r[i] == 2
                    for i in running), (finals, r))
    else:
        T.check("fail: interrupted builds failed with reason interrupted",
                all(finals[i]["status"] == "failed" and finals[i]["reason"] == "interrupted"
                    for i in running), finals)
    T.check("%s: no build ran twice except a retry of an interrupted one" % tag,
            all(r.get(i, 0) == 1 for i in queued) and
            all(r.get(i, 0) == (2 if requeue else 1) for i in running), r)
    m = srv2.metrics()
    T.check("%s: metrics after the restart add up" % tag,
            sum(v for k, v in m.items() if k.startswith("kiln_builds{")) == 5 and
            m["kiln_queue_depth"] == 0, m)
    srv2.term()
T.done()
