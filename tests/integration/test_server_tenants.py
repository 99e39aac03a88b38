"""kiln serve with two tenants (acme: a clear token; globex: a sha256: token) against the real
server: another tenant's build answers 404 on every per-build route (get, logs, followed logs,
SSE, artifacts, artifact files, cancel), exactly as an unknown id does; lists and /metrics show
the caller's builds only; an uploaded context is its uploader's; a client cannot name a
tenant; per-tenant entitlements; a webhook project's builds are its tenant's; the old
single-tenant forms (top-level tokens, KILN_API_TOKENS, --no-auth) act as tenant "default";
and in queue mode (fauxqs) the job carries its tenant to the worker.

The builds run a stand-in build command: these tests are about the server's plumbing."""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T  # noqa: E402
from server_common import (TOKEN, Server, fauxqs_queues, start_fake_worker,  # noqa: E402
                           tar_gz, write_fake_build)

ACME = "acme-token-0123456789"
GLOBEX = "globex-token-9876543210"
GLOBEX_HASH = "sha256:" + hashlib.sha256(GLOBEX.encode()).hexdigest()
GIT = {"git": "https://git.example.test/acme/app.git", "ref": "main"}
FINAL = ["succeeded", "failed", "canceled"]

fake = write_fake_build(T.tmp)
argslog = os.path.join(T.tmp, "args.log")
config = {
    "tenants": [
        {"name": "acme", "tokens": [ACME], "entitlements": ["network.host"],
         "outputs": {"registry": ["127.0.0.1:5000/acme/"]}, "max_concurrent": 2},
        {"name": "globex", "tokens": [GLOBEX_HASH], "credentials": {}},
    ],
    "projects": [{"name": "site", "github": "acme/site", "secret": "gh-secret-1",
                  "tenant": "acme"}],
}
srv = Server(os.path.join(T.tmp, "root"), workers=2, config=config, build_command=fake,
             env={"FAKE_SLEEP": "0.1", "FAKE_ARGSLOG": argslog}).start()
cfg_text = open(os.path.join(T.tmp, "root") + ".config.json").read()
T.check("the config file holds no clear globex token", GLOBEX not in cfg_text)


def as_(token, method, path, body=None, **kw):
    return srv.request(method, path, body, token=token, **kw)


def submit(token, body):
    st, b = as_(token, "POST", "/v1/builds", body)
    return st, b


def wait(token, bid):
    end = time.time() + 120
    b = None
    while time.time() < end:
        st, b = as_(token, "GET", "/v1/builds/" + bid)
        if st == 200 and b.get("status") in FINAL:
            return b
        time.sleep(0.1)
    return b


# --- tokens ---
st, body = as_(GLOBEX_HASH, "GET", "/v1/builds")
T.check("the sha256: form is not itself a token (401)", st == 401, body)
st, body = as_(GLOBEX, "GET", "/v1/builds")
T.check("the token of a sha256: entry is accepted", st == 200 and body["builds"] == [], body)
st, body = as_(ACME, "GET", "/v1/builds")
T.check("a clear token is accepted", st == 200 and body["builds"] == [], body)

# --- a build of each tenant ---
st, body = submit(ACME, {"source": GIT})
T.check("acme's build queued", st == 202, body)
a_id = body["id"] if st == 202 else "b-x"
st, body = submit(GLOBEX, {"source": {"git": "https://git.example.test/globex/web.git"}})
T.check("globex's build queued", st == 202, body)
g_id = body["id"] if st == 202 else "b-y"
a = wait(ACME, a_id)
g = wait(GLOBEX, g_id)
T.check("acme's build succeeded, tenant acme",
        a and a.get("status") == "succeeded" and a.get("tenant") == "acme", a)
T.check("globex's build succeeded, tenant globex",
        g and g.get("status") == "succeeded" and g.get("tenant") == "globex", g)
args = open(argslog).read() if os.path.exists(argslog) else ""
T.check("each build ran in its tenant's cache namespace (its job spec's cache.namespace)",
        '"namespace":"acme"' in args and '"namespace":"globex"' in args, args)

# --- every per-build route: another tenant's build is answered as an unknown one ---
UNKNOWN = "b-00000000000000ff"
routes = [
    ("GET", "/v1/builds/%s", {}),
    ("GET", "/v1/builds/%s/logs", {}),
    ("GET", "/v1/builds/%s/logs?follow=1", {}),
    ("GET", "/v1/builds/%s/logs?follow=1", {"Accept": "text/event-stream"}),
    ("GET", "/v1/builds/%s/logs?since=0", {}),
    ("GET", "/v1/builds/%s/artifacts", {}),
    ("GET", "/v1/builds/%s/artifacts/files/app.zip", {}),
    ("POST", "/v1/builds/%s/cancel", {}),
    ("GET", "/v1/builds/%s/result", {}),
]
for method, path, headers in routes:
    st, body, _ = as_(GLOBEX, method, path % a_id, headers=headers, raw=True)
    st_u, body_u, _ = as_(GLOBEX, method, path % UNKNOWN, headers=headers, raw=True)
    same = body.replace(a_id.encode(), b"ID") == body_u.replace(UNKNOWN.encode(), b"ID")
    what = "%s %s%s" % (method, path % "ID", " (SSE)" if headers else "")
    T.check("globex %s on acme's build => 404, as for an unknown id" % what,
            st == 404 and st_u == 404 and same and b"acme" not in body, (st, body, body_u))
st, body = as_(ACME, "GET", "/v1/builds/%s/artifacts/files/app.zip" % a_id)
T.check("the owner gets the route's own answer (no such artifact)",
        st == 404 and body["error"] == "no such artifact", body)
for method, path, headers in routes[:6]:
    st, body, _ = as_(ACME, method, path % a_id, headers=headers, raw=True)
    what = "%s %s%s" % (method, path % "ID", " (SSE)" if headers else "")
    T.check("acme %s on its own build => 200" % what, st == 200, body[:200])

# cancel: another tenant's cancel changes nothing; the owner's works
st, body = submit(ACME, {"source": GIT, "build_args": {"SLOW": "1"}})
slow = body.get("id", "b-z") if st == 202 else "b-z"
st, body = as_(GLOBEX, "POST", "/v1/builds/%s/cancel" % slow)
T.check("globex cannot cancel acme's build (404)", st == 404, body)
st, b = as_(ACME, "GET", "/v1/builds/" + slow)
T.check("acme's build was not canceled by it", st == 200 and b.get("status") != "canceled", b)
st, body = as_(ACME, "POST", "/v1/builds/%s/cancel" % slow)
T.check("acme cancels its own build (200 or 409 when already over)", st in (200, 409), body)
wait(ACME, slow)

# --- lists ---
st, body = as_(GLOBEX, "GET", "/v1/builds")
ids = [b["id"] for b in body.get("builds", [])] if st == 200 else []
T.check("globex lists only its build", ids == [g_id], body)
st, body = as_(ACME, "GET", "/v1/builds?limit=1")
first = [b["id"] for b in body.get("builds", [])] if st == 200 else []
cur = body.get("next_cursor") if st == 200 else None
st, body = as_(ACME, "GET", "/v1/builds?limit=5&cursor=%s" % cur)
rest = [b["id"] for b in body.get("builds", [])] if st == 200 else []
T.check("acme's pages list its builds only", sorted(first + rest) == sorted([a_id, slow]),
        (first, rest))
st, body = as_(GLOBEX, "GET", "/v1/builds?status=succeeded")
T.check("a status filter stays within the tenant",
        st == 200 and [b["id"] for b in body["builds"]] == [g_id], body)

# --- the tenant is the server's to set ---
st, body = submit(GLOBEX, {"source": GIT, "tenant": "acme"})
T.check("a request naming a tenant => 400 naming the field",
        st == 400 and "'tenant'" in body.get("error", ""), body)

# --- entitlements: acme's own list replaces the (empty) policy ---
st, body = submit(ACME, {"source": GIT, "allow": ["network.host"]})
T.check("acme may ask for network.host", st == 202, body)
acme_host = body.get("id") if st == 202 else None
st, body = submit(GLOBEX, {"source": GIT, "allow": ["network.host"]})
T.check("globex may not (400 naming it)",
        st == 400 and "network.host" in body.get("error", ""), body)
if acme_host:
    b = wait(ACME, acme_host)
    T.check("acme's network.host build ran", b and b.get("status") == "succeeded", b)

# --- uploaded contexts belong to their uploader ---
ctx_body = tar_gz({"Dockerfile": b"FROM scratch\n"})
st, body = as_(ACME, "POST", "/v1/contexts", ctx_body)
T.check("acme uploads a context", st == 201, body)
ctx = body.get("context", "ctx-x") if st == 201 else "ctx-x"
st, body = submit(GLOBEX, {"source": {"context": ctx}})
st_u, body_u = submit(GLOBEX, {"source": {"context": "ctx-00000000000000ff"}})
T.check("globex naming acme's context => 404, as for an unknown one",
        st == 404 and st_u == 404 and "source.context" in body.get("error", ""), (body, body_u))
st, body = submit(ACME, {"source": {"context": ctx}})
T.check("acme builds its own context", st == 202, body)
if st == 202:
    b = wait(ACME, body["id"])
    T.check("the context build ran", b and b.get("status") == "succeeded", b)

# --- /metrics ---
st, text, _ = as_(GLOBEX, "GET", "/metrics", raw=True)
lines = [l for l in text.decode().splitlines() if l.startswith("kiln_builds{")]
total = sum(float(l.rsplit(" ", 1)[1]) for l in lines)
T.check("globex's /metrics counts its builds only (1)", st == 200 and total == 1, lines)
T.check("no other tenant is named in /metrics", b"acme" not in text, text[:300])
st, text, _ = as_(None, "GET", "/metrics", raw=True)
lines = [l for l in text.decode().splitlines() if l.startswith("kiln_builds{")]
total = sum(float(l.rsplit(" ", 1)[1]) for l in lines)
st_l, la = as_(ACME, "GET", "/v1/builds?limit=500")
T.check("/metrics without a token: the server's totals, no tenant named",
        st == 200 and total == len(la["builds"]) + 1 and b"acme" not in text
        and b"globex" not in text, lines)

# --- a webhook project's builds are its tenant's ---
push = json.dumps({"ref": "refs/heads/main", "after": "a" * 40,
                   "repository": {"full_name": "acme/site",
                                  "clone_url": "https://git.example.test/acme/site.git"}}).encode()
sig = "sha256=" + hmac.new(b"gh-secret-1", push, hashlib.sha256).hexdigest()
st, body = srv.request("POST", "/v1/hooks/github", push, token=None,
                       headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": sig,
                                "Content-Type": "application/json"})
T.check("the push queues a build", st == 202, body)
hook_id = body.get("id", "b-w") if st == 202 else "b-w"
st, b = as_(ACME, "GET", "/v1/builds/" + hook_id)
T.check("the push's build is the project's tenant's (acme)",
        st == 200 and b.get("tenant") == "acme", b)
st, b = as_(GLOBEX, "GET", "/v1/builds/" + hook_id)
T.check("globex does not see it (404)", st == 404, b)
wait(ACME, hook_id)
srv.term()

# --- a bad config names the tenant and key, and the server does not start ---
for bad, want in [
    ({"tenants": [{"name": "acme", "tokens": [ACME]}, {"name": "beta", "tokens": [ACME]}]},
     "tenant 'beta'.tokens[0]: the same token is also tenant 'acme''s"),
    ({"tenants": [{"name": "acme", "tokens": [ACME], "outputz": {}}]},
     "tenant 'acme': unknown key 'outputz'"),
    ({"tenants": [{"name": "acme", "tokens": [ACME]}],
      "projects": [{"name": "p", "github": "o/p", "secret": "s", "tenant": "nobody"}]},
     "projects[0].tenant: no tenant 'nobody'"),
]:
    bs = Server(os.path.join(T.tmp, "bad"), config=bad, build_command=fake)
    r = subprocess.run(bs.args, capture_output=True, text=True, timeout=30)
    T.check("bad config refused: %s" % want, r.returncode != 0 and want in r.stderr
            and ACME not in r.stderr, r.stderr)

# --- the old single-tenant forms are tenant "default" ---
old = Server(os.path.join(T.tmp, "old"), config={"tokens": [TOKEN]}, build_command=fake,
             env={"KILN_API_TOKENS": "env-token-0123456789", "FAKE_SLEEP": "0.05"}).start()
st, body = old.submit({"source": GIT})
T.check("top-level tokens still work", st == 202, body)
b = old.wait_status(body.get("id", "b-x"), FINAL) if st == 202 else None
T.check("the build is tenant default's", b and b.get("tenant") == "default", b)
st, body = old.request("GET", "/v1/builds", token="env-token-0123456789")
T.check("KILN_API_TOKENS still works and sees the same tenant's builds",
        st == 200 and len(body["builds"]) == 1, body)
old.term()
noauth = Server(os.path.join(T.tmp, "noauth"), build_command=fake, extra=["--no-auth"],
                env={"FAKE_SLEEP": "0.05"}).start()
st, body = noauth.request("POST", "/v1/builds", {"source": GIT}, token=None)
T.check("--no-auth still takes builds", st == 202, body)
b = noauth.wait_status(body.get("id", "b-x"), FINAL) if st == 202 else None
T.check("a --no-auth build is tenant default's", b and b.get("tenant") == "default", b)
noauth.term()

# --- queue mode: the job carries its tenant to the worker ---
endpoint, jobs, events, aws_env = fauxqs_queues("kiln-tenants")
qargs = os.path.join(T.tmp, "qargs.log")
qsrv = Server(os.path.join(T.tmp, "qroot"), config=config,
              extra=["--queue", jobs, "--events-queue", events,
                     "--context-store", "s3://kiln-tenants/staged/"], env=aws_env).start()
worker = start_fake_worker("qw", jobs, events, aws_env, fake,
                           {"FAKE_SLEEP": "0.05", "FAKE_STEPS": "1", "FAKE_ARGSLOG": qargs})
st, body = qsrv.request("POST", "/v1/contexts", ctx_body, token=ACME)
T.check("queue mode: acme uploads a context", st == 201, body)
qctx = body.get("context", "ctx-x") if st == 201 else "ctx-x"
st, body = qsrv.request("POST", "/v1/builds", {"source": {"context": qctx}}, token=GLOBEX)
T.check("queue mode: globex naming it => 404", st == 404, body)
st, body = qsrv.request("POST", "/v1/builds", {"source": {"context": qctx}}, token=ACME)
T.check("queue mode: acme's build queued", st == 202, body)
qid = body.get("id", "b-q") if st == 202 else "b-q"
end = time.time() + 120
b = None
while time.time() < end:
    st, b = qsrv.request("GET", "/v1/builds/" + qid, token=ACME)
    if st == 200 and b.get("status") in FINAL:
        break
    time.sleep(0.2)
T.check("queue mode: the worker built it (succeeded, tenant acme)",
        b and b.get("status") == "succeeded" and b.get("tenant") == "acme", b)
qa = open(qargs).read() if os.path.exists(qargs) else ""
T.check("queue mode: the worker ran it in acme's cache namespace",
        '"namespace":"acme"' in qa, qa)
st, body = qsrv.request("GET", "/v1/builds/" + qid, token=GLOBEX)
T.check("queue mode: globex gets 404", st == 404, body)
st, body = qsrv.request("GET", "/v1/builds", token=GLOBEX)
T.check("queue mode: globex's list is empty", st == 200 and body["builds"] == [], body)
worker.terminate()
worker.wait(timeout=60)
qsrv.term()
T.done()
