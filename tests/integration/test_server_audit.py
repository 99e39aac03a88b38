"""kiln serve with two tenants: the access log (a JSON line per request with its tenant,
never a token, signature or query), the audit trail on each build ("triggered_by"), and
replayed webhook deliveries / retried submissions that answer the build they already started
(per tenant / project), also after a restart.

The builds run a stand-in build command: this is about the server's records."""
import hashlib
import hmac
import json
import os
import signal
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from kilntest import T
from server_common import Server, write_fake_build

fake = write_fake_build(T.tmp)
GH_SECRET = "gh-secret-audit-1"
GL_TOKEN = "gl-token-audit-1"
BAD_TOKEN = "wrong-token-audit-xyz"
QUERY_SECRET = "query-secret-audit-q"
TOKEN = "acme-audit-token-0123456789"
GLOBEX = "globex-audit-token-9876543210"
GLOBEX_HASH = "sha256:" + hashlib.sha256(GLOBEX.encode()).hexdigest()
config = {
    "tenants": [{"name": "acme", "tokens": [TOKEN]},
                {"name": "globex", "tokens": [GLOBEX_HASH]}],
    "projects": [
        {"name": "app", "github": "acme/app", "secret": GH_SECRET, "gitlab": "acme/app",
         "gitlab_token": GL_TOKEN, "tenant": "globex"},
    ],
}
root = os.path.join(T.tmp, "root")
access = os.path.join(T.tmp, "access.log")
srv = Server(root, workers=1, config=config, build_command=fake,
             extra=["--access-log", access], env={"FAKE_SLEEP": "0.05"}).start()
GIT = {"git": "https://git.example.test/acme/app.git", "ref": "main"}
TOKEN_ID = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:12]


def log_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def line_for(path, request_id, timeout=30):
    """The access log line of a request (written once its answer is out)."""
    end = time.time() + timeout
    while time.time() < end:
        for e in log_lines(path):
            if e["request_id"] == request_id:
                return e
        time.sleep(0.05)
    return None


def github(payload, delivery=None, event="push", secret=GH_SECRET):
    raw = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    h = {"X-GitHub-Event": event, "X-Hub-Signature-256": sig, "Content-Type": "application/json"}
    if delivery is not None:
        h["X-GitHub-Delivery"] = delivery
    return srv.request("POST", "/v1/hooks/github", body=raw, token=None, headers=h, raw=True)


def gitlab(payload, headers=None, token=GL_TOKEN):
    h = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token}
    h.update(headers or {})
    return srv.request("POST", "/v1/hooks/gitlab", body=payload, token=None, headers=h, raw=True)


def body_of(raw):
    return json.loads(raw) if raw else None


def builds(token=GLOBEX):
    return srv.request("GET", "/v1/builds?limit=500", token=token)[1]["builds"]


# --- the access log: a few routes, their lines, the X-Request-Id they share ---
st, _, h = srv.request("GET", "/healthz", token=None, raw=True)
e = line_for(access, h.get("X-Request-Id"))
T.check("X-Request-Id answered and its line logged", st == 200 and e is not None, h)
T.check("open route: no tenant, route, status, bytes, duration, remote, RFC 3339 time",
        e and e["tenant"] is None and e["route"] == "/healthz" and e["method"] == "GET" and
        e["status"] == 200 and e["bytes"] > 0 and e["duration_ms"] >= 0 and
        e["remote"] == "127.0.0.1" and len(e["time"]) == 24 and e["time"].endswith("Z"), e)
st, _, h = srv.request("GET", "/v1/builds?limit=5&token=" + QUERY_SECRET, token=TOKEN,
                       raw=True)
e = line_for(access, h.get("X-Request-Id"))
T.check("authenticated GET: the token's tenant, route without the query",
        st == 200 and e and e["tenant"] == "acme" and e["route"] == "/v1/builds" and
        e["status"] == 200, e)
st, _, h = srv.request("GET", "/v1/builds", token=GLOBEX, raw=True)
e = line_for(access, h.get("X-Request-Id"))
T.check("the other tenant's request logged with its tenant", st == 200 and e and
        e["tenant"] == "globex", e)
st, _, h = srv.request("GET", "/v1/builds", token=BAD_TOKEN, raw=True)
e = line_for(access, h.get("X-Request-Id"))
T.check("401 logged without a tenant", st == 401 and e and e["status"] == 401 and
        e["tenant"] is None, e)
# hostile paths: an encoded newline / quote / escape cannot forge a line; an encoded '?' is
# a query (cut), so what follows it never lands in the log
st, _, h = srv.request("GET", "/v1/x%0a%22forged%22:1%1b[2J", token=None, raw=True)
e = line_for(access, h.get("X-Request-Id"))
T.check("encoded control characters stay inside one escaped route",
        e and e["route"].startswith("/v1/x") and "\n" in e["route"] and e["status"] == 401 and
        all(set(x) >= {"route"} for x in log_lines(access)), e)
st, _, h = srv.request("POST", "/v1/hooks/github%3Ftoken=" + QUERY_SECRET, token=None, raw=True)
e = line_for(access, h.get("X-Request-Id"))
T.check("an encoded '?' ends the route (the rest never logged)",
        e and e["route"] == "/v1/hooks/github" and QUERY_SECRET not in open(access).read(), e)
ids = set()
for _ in range(3):
    _, _, h = srv.request("GET", "/healthz", token=None, raw=True)
    ids.add(h.get("X-Request-Id"))
T.check("request ids differ", len(ids) == 3, ids)

# --- the audit trail of an API build; a retried submission with an Idempotency-Key ---
st, raw, h = srv.request("POST", "/v1/builds", body={"source": GIT}, token=TOKEN,
                         headers={"Idempotency-Key": "deploy-42"}, raw=True)
first = body_of(raw)
T.check("submit with Idempotency-Key => 202", st == 202, raw)
e = line_for(access, h.get("X-Request-Id"))
T.check("POST logged with its status and tenant", e and e["status"] == 202 and
        e["tenant"] == "acme" and e["method"] == "POST", e)
st, raw, _ = srv.request("POST", "/v1/builds", body={"source": GIT}, token=TOKEN,
                         headers={"Idempotency-Key": "deploy-42"}, raw=True)
again = body_of(raw)
T.check("same Idempotency-Key => 200 with the first build, replayed",
        st == 200 and again["id"] == first["id"] and again.get("replayed") is True, raw)
st, raw, _ = srv.request("POST", "/v1/builds", body={"source": GIT}, token=TOKEN,
                         headers={"Idempotency-Key": "bad key"}, raw=True)
T.check("malformed Idempotency-Key => 400 naming the header",
        st == 400 and "Idempotency-Key" in body_of(raw)["error"], raw)
st, b = srv.request("GET", "/v1/builds/" + first["id"], token=TOKEN)
T.check("API build: triggered_by names the tenant, the token id (not the token), the key",
        b["triggered_by"] == {"via": "api", "tenant": "acme", "token": TOKEN_ID,
                              "idempotency_key": "deploy-42"}, b.get("triggered_by"))
st, raw, _ = srv.request("POST", "/v1/builds", body={"source": GIT}, token=GLOBEX,
                         headers={"Idempotency-Key": "deploy-42"}, raw=True)
other = body_of(raw)
T.check("the same Idempotency-Key from another tenant is that tenant's own build",
        st == 202 and other["id"] != first["id"], raw)
st, raw, _ = srv.request("POST", "/v1/builds", body={"source": GIT}, token=GLOBEX,
                         headers={"Idempotency-Key": "deploy-42"}, raw=True)
T.check("its retry answers its own build", st == 200 and body_of(raw)["id"] == other["id"], raw)
st, b = srv.request("GET", "/v1/builds/" + other["id"], token=GLOBEX)
T.check("a sha256: token is named by the start of its configured hash",
        b["triggered_by"]["tenant"] == "globex" and
        b["triggered_by"]["token"] == GLOBEX_HASH[:19], b.get("triggered_by"))

# --- GitHub: a redelivered push starts one build ---
push = {"ref": "refs/heads/main", "after": "a" * 40, "pusher": {"name": "alice"},
        "sender": {"login": "alice-gh"},
        "head_commit": {"id": "a" * 40, "author": {"name": "Bob B", "username": "bob"}},
        "repository": {"full_name": "acme/app", "clone_url": "https://git.example.test/acme/app.git"}}
n0 = len(builds())
st, raw, h = github(push, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
gh1 = body_of(raw)
T.check("github push with a delivery id => 202", st == 202, raw)
e = line_for(access, h.get("X-Request-Id"))
T.check("webhook logged with its project's tenant", e and e["route"] == "/v1/hooks/github" and
        e["status"] == 202 and e["tenant"] == "globex", e)
st, raw, _ = github(push, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
gh2 = body_of(raw)
T.check("replayed GitHub delivery => 200 with the same build",
        st == 200 and gh2["id"] == gh1["id"] and gh2.get("replayed") is True, raw)
T.check("replayed GitHub delivery started no second build", len(builds()) == n0 + 1,
        [x["id"] for x in builds()])
st, raw, _ = github(push, delivery="another-delivery-1")
T.check("another delivery of the same push is another build",
        st == 202 and body_of(raw)["id"] != gh1["id"], raw)
st, raw, _ = github(push, delivery="x" * 200)
T.check("malformed X-GitHub-Delivery => 400 naming it",
        st == 400 and "X-GitHub-Delivery" in body_of(raw)["error"], raw)
st, b = srv.request("GET", "/v1/builds/" + gh1["id"], token=GLOBEX)
T.check("GitHub build: triggered_by names the project, delivery, pusher, commit author",
        b["triggered_by"] == {"via": "github", "tenant": "globex", "project": "app",
                              "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                              "event": "push", "pusher": "alice", "commit_author": "bob"},
        b.get("triggered_by"))

# --- GitLab: X-Gitlab-Event-UUID, and Idempotency-Key (kept across GitLab's retries) ---
gl = {"object_kind": "push", "ref": "refs/heads/dev", "checkout_sha": "b" * 40,
      "user_username": "carol",
      "commits": [{"id": "b" * 40, "author": {"name": "Eve"}}],
      "project": {"path_with_namespace": "acme/app", "git_http_url": "https://gitlab.test/acme/app.git"}}
n0 = len(builds())
st, raw, _ = gitlab(gl, {"X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"})
gl1 = body_of(raw)
st2, raw2, _ = gitlab(gl, {"X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"})
T.check("replayed GitLab event UUID => 200 with the same build",
        st == 202 and st2 == 200 and body_of(raw2)["id"] == gl1["id"], (raw, raw2))
st, raw, _ = gitlab(gl, {"Idempotency-Key": "gl-idem-1", "X-Gitlab-Event-UUID": "u-1"})
st2, raw2, _ = gitlab(gl, {"Idempotency-Key": "gl-idem-1", "X-Gitlab-Event-UUID": "u-2"})
T.check("GitLab retry with the same Idempotency-Key => the same build",
        st == 202 and st2 == 200 and body_of(raw2)["id"] == body_of(raw)["id"], (raw, raw2))
T.check("replayed GitLab deliveries started one build each", len(builds()) == n0 + 2,
        [x["id"] for x in builds()])
st, b = srv.request("GET", "/v1/builds/" + gl1["id"], token=GLOBEX)
T.check("GitLab build: triggered_by names the delivery, pusher and commit author",
        b["triggered_by"] == {"via": "gitlab", "tenant": "globex", "project": "app",
                              "delivery": "13792a34-cac6-4fda-95a8-c58e00a3954e",
                              "event": "Push Hook", "pusher": "carol", "commit_author": "Eve"},
        b.get("triggered_by"))
st, raw, _ = gitlab(gl, {"X-Gitlab-Event-UUID": "u-9"}, token="not-the-token")
T.check("GitLab bad token => 401", st == 401, raw)

# --- log following: the bytes of a streamed answer are counted ---
st, log, h = srv.request("GET", "/v1/builds/%s/logs?follow=1" % first["id"], token=TOKEN, raw=True,
                         timeout=120)
e = line_for(access, h.get("X-Request-Id"))
T.check("followed log: its streamed bytes logged", st == 200 and e and e["bytes"] == len(log),
        (len(log), e))

# --- nothing secret in the file; its mode ---
text = open(access).read()
leaks = [s for s in (TOKEN, GLOBEX, BAD_TOKEN, GH_SECRET, GL_TOKEN, QUERY_SECRET, "Bearer",
                     "sha256=", "not-the-token") if s in text]
T.check("no token, secret, signature or query in the access log", not leaks, leaks)
T.check("every line is JSON with the documented keys", all(
    {"time", "request_id", "remote", "tenant", "method", "route", "status", "bytes",
     "duration_ms"} <= set(x) for x in log_lines(access)), text[-2000:])
T.check("access log is 0640", stat.S_IMODE(os.stat(access).st_mode) == 0o640,
        oct(os.stat(access).st_mode))
T.check("/metrics: no access log line dropped",
        srv.metrics().get("kiln_access_log_dropped_total") == 0.0)

# --- SIGHUP reopens the file (after a rotation) ---
os.rename(access, access + ".1")
srv.proc.send_signal(signal.SIGHUP)
e = None
end = time.time() + 30
while time.time() < end and e is None:
    _, _, h = srv.request("GET", "/healthz", token=None, raw=True)
    if os.path.exists(access):
        e = line_for(access, h.get("X-Request-Id"), timeout=5)
T.check("after SIGHUP new lines go to a new file at the path", e is not None)

# --- durable: after a restart a replayed delivery still finds its build; default stream ---
T.check("server stops", srv.term() == 0)
srv = Server(root, workers=1, config=config, build_command=fake,
             env={"FAKE_SLEEP": "0.05"}).start()
n0 = len(builds())
st, raw, h = github(push, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
T.check("after a restart the replayed delivery answers the first build",
        st == 200 and body_of(raw)["id"] == gh1["id"] and len(builds()) == n0, raw)
rid = h.get("X-Request-Id")
found = None
end = time.time() + 30
while time.time() < end and found is None:
    for line in srv.server_log().splitlines():
        if line.startswith("{") and rid in line:
            found = json.loads(line)
    time.sleep(0.05)
T.check("without --access-log the lines go to the server's log stream (stderr)",
        found is not None and found["route"] == "/v1/hooks/github" and found["status"] == 200,
        srv.server_log()[-2000:])
T.check("no secret on the server's log stream either",
        not [s for s in (TOKEN, GLOBEX, GH_SECRET, GL_TOKEN, QUERY_SECRET)
             if s in srv.server_log()])

# --- the same delivery many times at once: one build, every answer names it ---
n0 = len(builds())
with ThreadPoolExecutor(max_workers=8) as pool:
    answers = list(pool.map(lambda _: github(push, delivery="burst-delivery-1"), range(8)))
got = {body_of(raw)["id"] for st, raw, _ in answers if st in (200, 202)}
T.check("8 concurrent copies of a delivery: one 202, the others 200, one build",
        sorted(st for st, _, _ in answers) == [200] * 7 + [202] and len(got) == 1 and
        len(builds()) == n0 + 1, [(st, raw) for st, raw, _ in answers])
srv.term()

# --- queue mode: a replayed delivery sends no second job ---
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
import awslib  # noqa: E402
from server_common import fauxqs_queues  # noqa: E402

endpoint, jobs, events, aws_env = fauxqs_queues("kiln-audit")
srv = Server(os.path.join(T.tmp, "qroot"), config=config,
             extra=["--queue", jobs, "--events-queue", events], env=aws_env).start()
st1, raw1, _ = github(push, delivery="queued-delivery-1")
st2, raw2, _ = github(push, delivery="queued-delivery-1")
msgs = awslib.sqs_receive(endpoint, jobs, wait=3)
T.check("queue mode: the replay answers the first build",
        st1 == 202 and st2 == 200 and body_of(raw1)["id"] == body_of(raw2)["id"], (raw1, raw2))
T.check("queue mode: one job message for the two deliveries", len(msgs) == 1,
        [m.get("Body", "")[:200] for m in msgs])
T.check("queue mode: the job message carries no token or secret",
        not [s for m in msgs for s in (TOKEN, GLOBEX, GH_SECRET) if s in m.get("Body", "")])
srv.term()

# a delivery whose build could not be queued (502) is not remembered: its redelivery tries again
srv = Server(os.path.join(T.tmp, "qroot-bad"), config=config,
             extra=["--queue", jobs.rsplit("/", 1)[0] + "/kiln-audit-missing",
                    "--events-queue", events], env=aws_env).start()
st1, raw1, _ = github(push, delivery="unqueued-delivery-1")
st2, raw2, _ = github(push, delivery="unqueued-delivery-1")
T.check("a delivery answered 502 is tried again when redelivered (502 again, not a replay)",
        st1 == 502 and st2 == 502, (st1, raw1, st2, raw2))
srv.term()
T.done()
