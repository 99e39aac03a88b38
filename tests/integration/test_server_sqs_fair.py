"""Queue mode is fair across tenants and holds jobs to their tenant's entitlements (fauxqs
SQS + S3, real `kiln worker`s running the stand-in build). A worker receives a batch, starts
the job of the tenant after the one it served last and hands the others back: a flood of
one tenant's jobs queued ahead of another tenant's single job does not make it wait for the
flood. A worker with --config refuses a job asking for an entitlement its tenant is not
granted there (invalid_job, nothing run). Start order is read from the builds' own start and
end lines (the stand-in writes them), never from durations."""
import json
import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T  # noqa: E402
from server_common import Server, fauxqs_queues, start_fake_worker, write_fake_build  # noqa: E402

fake = write_fake_build(T.tmp)
endpoint, jobs, events, aws_env = fauxqs_queues("kiln-fair")
spans = os.path.join(T.tmp, "spans")
TA, TB, TC, TD = ("acme-token-0123456789", "beta-token-0123456789", "cyan-token-0123456789",
                  "dune-token-0123456789")
# serve grants both tenants network.host; the workers' config only acme (serve checks at
# submit; the worker is the line a job sent straight to the queue meets)
serve_config = {"tenants": [{"name": "acme", "tokens": [TA], "entitlements": ["network.host"]},
                            {"name": "beta", "tokens": [TB], "entitlements": ["network.host"]},
                            {"name": "cyan", "tokens": [TC], "max_concurrent": 1},
                            {"name": "dune", "tokens": [TD]}]}
worker_config = os.path.join(T.tmp, "worker.json")
with open(worker_config, "w") as f:
    json.dump({"tenants": [{"name": "acme", "tokens": [TA], "entitlements": ["network.host"]},
                           {"name": "beta", "tokens": [TB]},
                           {"name": "cyan", "tokens": [TC], "max_concurrent": 1},
                           {"name": "dune", "tokens": [TD]}]}, f)


def start_worker(name, **env):
    return start_fake_worker(name, jobs, events, aws_env, fake,
                             dict({"FAKE_SPANLOG": spans, "FAKE_SLEEP": "0.1", "FAKE_STEPS": "1"},
                                  **env),
                             extra=["--config", worker_config, "--allow", "network.host"])


def span_lines():
    """[(start|end, build id)] in the order the builds wrote them."""
    try:
        lines = open(spans).read().split("\n")
    except OSError:
        return []
    return [(w[0], w[1].split("/")[-2]) for w in (x.split() for x in lines) if len(w) == 2]


def submit(srv, token, repo, **more):
    body = dict({"source": {"git": "https://git.example.test/%s.git" % repo}}, **more)
    st, b = srv.request("POST", "/v1/builds", body, token=token)
    assert st == 202, (st, b)
    return b["id"]


def wait_end(srv, ids, token):
    end = time.time() + 240
    recs = {}
    while time.time() < end:
        recs = {i: srv.request("GET", "/v1/builds/" + i, token=token)[1] for i in ids}
        if all(b.get("status") in ("succeeded", "failed", "canceled") for b in recs.values()):
            break
        time.sleep(0.3)
    return recs


srv = Server(os.path.join(T.tmp, "root"), config=serve_config,
             extra=["--queue", jobs, "--events-queue", events,
                    "--context-store", "s3://kiln-fair/store/"], env=aws_env).start()

# --- a flood of 12 acme jobs queued ahead of beta's one, then one worker takes them ---
flood = [submit(srv, TA, "acme/app%d" % k) for k in range(12)]
lone = submit(srv, TB, "beta/app")
w1 = start_worker("w1")
acme = wait_end(srv, flood, TA)
beta = wait_end(srv, [lone], TB)[lone]
T.check("every job of the flood and beta's ran",
        all(b.get("status") == "succeeded" for b in acme.values()) and
        beta.get("status") == "succeeded", (acme, beta))
starts = [i for kind, i in span_lines() if kind == "start"]
T.check("each job started once", sorted(starts) == sorted(flood + [lone]), starts)
before = starts.index(lone) if lone in starts else len(starts)
T.check("beta's job started within the first turns (not after acme's flood): %d acme before"
        % before, before <= 2, starts)

# --- entitlements: the worker holds each job to its tenant's grant in --config ---
ok = submit(srv, TA, "acme/net", allow=["network.host"])
bad = submit(srv, TB, "beta/net", allow=["network.host"])
r_ok = wait_end(srv, [ok], TA)[ok]
r_bad = wait_end(srv, [bad], TB)[bad]
T.check("acme (granted network.host in the worker's config) may ask for it",
        r_ok.get("status") == "succeeded", r_ok)
T.check("beta (not granted it there) fails invalid_job",
        r_bad.get("status") == "failed" and r_bad.get("reason") == "invalid_job", r_bad)
msg = r_bad.get("error", "")
T.check("the error names the tenant, the entitlement and what would allow it",
        "tenant 'beta'" in msg and "network.host" in msg and "entitlements" in msg, msg)
T.check("beta's job never ran", bad not in [i for _, i in span_lines()], span_lines())


def overlaps(ids, since=0):
    """The spans of builds ids (from line `since` on) that overlap: [] when each ended before
    the next started."""
    seq = [(kind, i) for kind, i in span_lines()[since:] if i in ids]
    bad, running = [], None
    for kind, i in seq:
        if kind == "start":
            if running is not None:
                bad.append((running, i))
            running = i
        elif running == i:
            running = None
    return bad


def leases_left():
    with urllib.request.urlopen(endpoint + "/kiln-fair?list-type=2&prefix=store/running/") as r:
        return r.read().decode().count("<Key>")


# --- cyan may run one job at a time across two workers; dune's run meanwhile ---
w2 = start_worker("w2")
cyan = [submit(srv, TC, "cyan/app%d" % k) for k in range(4)]
dune = [submit(srv, TD, "dune/app%d" % k) for k in range(4)]
rc = wait_end(srv, cyan, TC)
rd = wait_end(srv, dune, TD)
T.check("cyan's and dune's jobs all ran",
        all(b.get("status") == "succeeded" for b in list(rc.values()) + list(rd.values())),
        (rc, rd))
T.check("max_concurrent 1 across two workers: no cyan job started before the previous ended",
        overlaps(cyan) == [], [x for x in span_lines() if x[1] in cyan])
T.check("no lease is left once they ended", leases_left() == 0, leases_left())
print("# cyan jobs held back at max_concurrent: %d times" % sum(
    open(os.path.join(T.tmp, n + ".log")).read().count("of its max_concurrent") for n in ("w1", "w2")))
for w in (w1, w2):
    w.terminate()
    w.wait(timeout=60)

# --- a worker killed mid-job: its lease lapses, the tenant's next job runs ---
w3 = start_worker("w3", FAKE_SLEEP="60")
k1 = submit(srv, TC, "cyan/killed")
end = time.time() + 120
while time.time() < end and ("start", k1) not in span_lines():
    time.sleep(0.2)
T.check("the slow job started on the worker to be killed", ("start", k1) in span_lines(),
        span_lines())
T.check("it holds cyan's lease", leases_left() == 1, leases_left())
w3.send_signal(signal.SIGKILL)
w3.wait(timeout=10)
try:  # the orphaned stand-in build: a restarted worker would sweep it, none will here
    pgid = int(open(os.path.join(T.tmp, "w3", "running", k1)).read().split()[0])
    os.killpg(pgid, signal.SIGKILL)
except (OSError, ValueError, IndexError):
    pass
mark = len(span_lines())
k2 = submit(srv, TC, "cyan/next")
w4 = start_worker("w4")
r2 = wait_end(srv, [k2], TC)[k2]
r1 = wait_end(srv, [k1], TC)[k1]
T.check("the tenant's next job ran after the killed worker's lease lapsed",
        r2.get("status") == "succeeded", r2)
T.check("the killed job came back and ran too", r1.get("status") == "succeeded", r1)
T.check("and the two never overlapped",
        overlaps([k1, k2], mark) == [] and ("start", k2) in span_lines()[mark:], span_lines()[mark:])
T.check("no lease is left", leases_left() == 0, leases_left())
print("# held back by the killed worker's lease: %d times" %
      open(os.path.join(T.tmp, "w4.log")).read().count("of its max_concurrent"))
w4.terminate()
w4.wait(timeout=60)
srv.term()
T.done()
