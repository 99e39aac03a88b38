"""Per-tenant credentials on real builds: two tenants, each with its own htpasswd-protected
docker-registry and its own AWS keys (S3 against fauxqs, through a recording proxy that shows
which access key id signed each request). Tenant acme pushes to its registry with its login;
tenant globex, whose outputs allow acme's registry prefix, cannot push there (no acme login,
and not the server's own, which could): the registry refuses it and nothing lands. acme's S3
upload and notify are signed with acme's key; globex, with no AWS credentials, uploads nothing
(never signed with the server's key); tenant default (the single-tenant form) keeps the
server's own. No password or secret key appears in any /proc/*/cmdline or environ of the
build's processes while they run, in kiln.db, the build logs or the server's log."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
import awslib  # noqa: E402
from kilntest import T, start_registry  # noqa: E402
from registry_fixtures import htpasswd  # noqa: E402
from server_common import Server, busybox_layout, tar_gz  # noqa: E402

A_PASS = "acme-REGISTRY-pass-7f3a91"
B_PASS = "globex-REGISTRY-pass-0c4e22"
ACME_KEY, ACME_SECRET = "AKIDACMETENANT01", "acmeAWSsecret/0123+xyzSECRET"
SERVER_KEY, SERVER_SECRET = awslib.TEST_KEY_ID, awslib.TEST_SECRET
TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789",
          "default": "default-token-0123456789"}
SECRETS = [A_PASS, B_PASS, ACME_SECRET, SERVER_SECRET]


def put(name, text):
    p = os.path.join(T.tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o600)
    return p


layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
for d in ("ha", "hb"):
    os.makedirs(os.path.join(T.tmp, d))
A = "127.0.0.1:%d" % start_registry("auth:\n  htpasswd:\n    realm: a\n    path: %s\n"
                                    % htpasswd(os.path.join(T.tmp, "ha"), "acme", A_PASS))
B = "127.0.0.1:%d" % start_registry("auth:\n  htpasswd:\n    realm: b\n    path: %s\n"
                                    % htpasswd(os.path.join(T.tmp, "hb"), "globex", B_PASS))
direct, proxy, aws_env = awslib.start_services(T)
awslib.s3_create_bucket(direct, "tenants")
queue = awslib.sqs_create_queue(direct, "acme-events")

# the server's own credentials: AWS keys in its environment and a docker login for acme's
# registry (so a push there by globex could only fail because they are not handed over)
server_docker = os.path.join(T.tmp, "server-docker")
os.makedirs(server_docker)
put("server-docker/config.json", json.dumps({"auths": {A: {"username": "acme",
                                                           "password": A_PASS}}}))
acme_aws = put("acme-aws", "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
               % (ACME_KEY, ACME_SECRET))
a_pw = put("acme-registry.pw", A_PASS + "\n")
b_auth = put("globex-auth.json", json.dumps({"auths": {B: {"username": "globex",
                                                           "password": B_PASS}}}))
config = {
    "tokens": [TOKENS["default"]],
    "policy": {"allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout]},
    "tenants": [
        {"name": "acme", "tokens": [TOKENS["acme"]],
         "outputs": {"registry": [A + "/acme/"], "s3": ["s3://tenants/acme/"],
                     "notify": ["sqs://" + queue]},
         "credentials": {"registry": {"hosts": {A: {"username": "acme", "password_file": a_pw}}},
                         "aws": {"credentials_file": acme_aws}}},
        {"name": "globex", "tokens": [TOKENS["globex"]],
         "outputs": {"registry": [A + "/acme/", B + "/globex/"], "s3": ["s3://tenants/globex/"]},
         "credentials": {"registry": {"auth_file": b_auth}}},
    ],
}
env = dict(aws_env)
env.update({"DOCKER_CONFIG": server_docker, "AWS_MAX_ATTEMPTS": "1"})
root = os.path.join(T.tmp, "root")
srv = Server(root, workers=1, config=config, env=env,
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root"),
                    "--build-option=--insecure-registry=" + A,
                    "--build-option=--insecure-registry=" + B]).start()

# --- a watcher: every process the server starts, while the tenants' builds run (a child
# between fork and exec still is a copy of the server, command line included: skipped) ---
seen = []
stop = threading.Event()
server_pid = srv.proc.pid
server_cmdline = open("/proc/%d/cmdline" % server_pid, "rb").read()


def descendants(top):
    parent = {}
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as f:
                parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out = set()
    for pid in parent:
        p, hops = pid, 0
        while p in parent and p > 1 and hops < 64:
            p, hops = parent[p], hops + 1
            if p == top:
                out.add(pid)
                break
    return out


def watch():
    while not stop.is_set():
        for pid in descendants(server_pid):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
                with open("/proc/%d/environ" % pid, "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            if cmdline == server_cmdline:
                continue
            # the server runs `kiln job run` (the build in its child), older ones `kiln build`
            if b"\0build\0" in cmdline or b"\0job\0run\0" in cmdline:
                builds_seen[phase[0]] = builds_seen.get(phase[0], 0) + 1
            for what, data in (("cmdline", cmdline), ("environ", environ)):
                for s in SECRETS:
                    if s.encode() in data:
                        seen.append((phase[0], pid, what, s[:8], cmdline[:200]))
        time.sleep(0.02)


phase = ["tenants"]
builds_seen = {}
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()

DOCKERFILE = ("FROM oci:%s:1 AS b\nRUN mkdir /out && echo tenant-site > /out/index.html && "
              "sleep 1\nFROM scratch\nCOPY --from=b /out /\n" % layout)


def build(tenant, body, dockerfile=DOCKERFILE):
    """Submits body with a context of dockerfile as tenant; returns (final build, log)."""
    st, r = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": dockerfile.encode()}),
                        token=TOKENS[tenant])
    if st != 201:
        return {"submit": (st, r)}, ""
    body = dict(body, source={"context": r["context"]})
    st, r = srv.request("POST", "/v1/builds", body, token=TOKENS[tenant])
    if st != 202:
        return {"submit": (st, r)}, ""
    bid = r["id"]
    st, log, _ = srv.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True, token=TOKENS[tenant],
                             timeout=600)
    end = time.time() + 120
    b = None
    while time.time() < end:
        st, b = srv.request("GET", "/v1/builds/" + bid, token=TOKENS[tenant])
        if b.get("status") in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    return b, log.decode(errors="replace")


def signers(reqs):
    """The access key ids that signed these proxied requests."""
    out = set()
    for r in reqs:
        a = r["headers"].get("authorization", "")
        if "Credential=" in a:
            out.add(a.split("Credential=")[1].split("/")[0])
    return out


def skopeo(ref, user, password):
    return subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds",
                           "%s:%s" % (user, password), "docker://" + ref],
                          capture_output=True, text=True)


# --- acme: push with acme's login, S3 and notify with acme's keys ---
proxy.clear()
b, log = build("acme", {"outputs": [{"type": "registry", "name": A + "/acme/site:1"},
                                    {"type": "s3", "dest": "s3://tenants/acme/www"}],
                        "notify": ["sqs://" + queue]})
T.check("acme's build succeeded", b.get("status") == "succeeded", (b, log[-3000:]))
sk = skopeo(A + "/acme/site:1", "acme", A_PASS)
T.check("acme's image is in acme's registry", sk.returncode == 0, sk.stderr)
puts = [r for r in proxy.requests() if r["method"] == "PUT" and "/tenants/acme/www" in r["path"]]
T.check("acme's S3 upload happened", len(puts) >= 1, proxy.requests())
T.check("acme's S3 upload and notify are signed with acme's key only",
        signers(proxy.requests()) == {ACME_KEY}, signers(proxy.requests()))
T.check("acme's notify reached its queue (signed by acme)",
        any(r["headers"].get("x-amz-target") == "AmazonSQS.SendMessage"
            for r in proxy.requests()), [r["path"] for r in proxy.requests()])

# --- globex: acme's registry is an allowed prefix, but globex has no acme login ---
proxy.clear()
b, log = build("globex", {"outputs": [{"type": "registry", "name": A + "/acme/stolen:1"}]})
T.check("globex's push to acme's registry fails", b.get("status") == "failed", b)
T.check("the failure is the registry's refusal (no credentials for it)",
        "401" in log or "unauthorized" in log.lower() or "credentials" in log.lower(), log[-2000:])
sk = skopeo(A + "/acme/stolen:1", "acme", A_PASS)
T.check("nothing landed in acme's registry", sk.returncode != 0, sk.stdout)
b, log = build("globex", {"outputs": [{"type": "registry", "name": B + "/globex/site:1"}]})
T.check("globex pushes to its own registry with its own login", b.get("status") == "succeeded",
        (b, log[-2000:]))
T.check("globex's image is in globex's registry",
        skopeo(B + "/globex/site:1", "globex", B_PASS).returncode == 0, "")
proxy.clear()
b, log = build("globex", {"outputs": [{"type": "s3", "dest": "s3://tenants/globex/www"}]})
T.check("globex (no AWS credentials) cannot upload to S3", b.get("status") == "failed", b)
T.check("... and says it has no AWS credentials", "no AWS credentials" in log, log[-2000:])
T.check("... and nothing was signed with the server's key", SERVER_KEY not in
        signers(proxy.requests()), signers(proxy.requests()))
# --- hostile: a build's steps never reach its tenant's credential files ---
HOSTILE = ("FROM oci:%s:1\nRUN env; cat /proc/self/environ /proc/1/environ; "
           "cat %s/secrets/*/.creds/docker/config.json; ls -la %s/secrets; "
           "cat /root/.docker/config.json %s/config.json; echo hostile-done\n"
           % (layout, root, root, server_docker))
b, log = build("globex", {"outputs": [{"type": "registry", "name": B + "/globex/h:1"}]}, HOSTILE)
T.check("hostile: the step ran (and the push with globex's login still works)",
        "hostile-done" in log and b.get("status") == "succeeded", (b, log[-2000:]))
T.check("hostile: the step saw no login (globex's own or the server's) and no credential path",
        B_PASS not in log and A_PASS not in log and "DOCKER_CONFIG" not in log and
        ".creds/docker/config.json:" not in log.replace("No such file", ""), log[-3000:])
T.check("hostile: the step's reads of the host's credential files found nothing",
        log.count("No such file or directory") >= 3, log[-3000:])
st, r = srv.request("POST", "/v1/builds", {"source": {"git": "https://example.com/r.git"},
                                           "secrets": {".creds": "x"}}, token=TOKENS["globex"])
T.check("hostile: a request secret cannot be called .creds (400 naming it)",
        st == 400 and ".creds" in json.dumps(r), (st, r))

T.check("the watcher saw the tenants' kiln build processes", builds_seen.get("tenants", 0) > 0,
        builds_seen)
T.check("no registry password or AWS secret in the cmdline or environ of any process the "
        "server started during the tenants' builds", [x for x in seen if x[0] == "tenants"] == [],
        seen[:5])

# --- tenant default (the single-tenant form) keeps the server's own ---
phase[0] = "default"
proxy.clear()
b, log = build("default", {"outputs": [{"type": "s3", "dest": "s3://tenants/default/www"}]})
stop.set()
watcher.join()
T.check("tenant default's S3 upload is signed with the server's key",
        b.get("status") == "succeeded" and signers(proxy.requests()) == {SERVER_KEY},
        (b, signers(proxy.requests()), log[-2000:]))
T.check("the watcher does see a secret where one is (default's build inherits the server's "
        "environment, its AWS secret key included)",
        any(x[0] == "default" and x[2] == "environ" and x[3] == SERVER_SECRET[:8] for x in seen),
        builds_seen)

# --- at rest: nothing in kiln.db, logs, the server's log; the secrets dirs are gone ---
leak = []
for d, _, files in os.walk(root):
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            data = fh.read()
        leak += [(os.path.join(d, f), s[:8]) for s in SECRETS if s.encode() in data]
T.check("no secret in kiln.db (with -wal), the build logs or anything under the root", leak == [],
        leak)
slog = srv.server_log()
T.check("no secret in the server's log", not any(s in slog for s in SECRETS), "")
T.check("the builds' secrets directories are gone", os.listdir(os.path.join(root, "secrets")) == [],
        os.listdir(os.path.join(root, "secrets")))
srv.term()
T.done()
