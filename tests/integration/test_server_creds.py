"""Per-tenant credentials on a real `kiln serve` (and `kiln worker --config`), seen from the
build's own child processes: a stand-in build records its environment and the credential
files it is handed. A tenant with its own registry / AWS credentials gets them as 0600 files
in a 0700 directory named by path (never a secret in its environment or command line) and
none of the server's; a tenant without credentials gets none; tenant default (single-tenant
installs) and a tenant with "inherit": true get the server's own. A bad "credentials" entry
stops the server naming the tenant and key. Queue mode: the worker's --config gives jobs
their tenant's credentials; without it only tenant default's jobs get the worker's own."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T, kiln  # noqa: E402
from server_common import Server, fauxqs_queues, start_fake_worker, tar_gz  # noqa: E402

DUMP = os.path.join(T.tmp, "dump")
os.makedirs(DUMP)
# a stand-in for kiln job run: records, per tenant (its spec's cache namespace), what it was
# given
FAKE = r"""#!/bin/sh
ns=$(cat <&3 | sed -n 's/.*"namespace":"\([^"]*\)".*/\1/p')
[ -n "$ns" ] || ns=default
meta=""
prev=""
for a; do
  [ "$prev" = --metadata-file ] && meta=$a
  prev=$a
done
d="$DUMP_DIR/$ns"
mkdir -p "$d"
env > "$d/env"
cat /proc/$$/cmdline | tr '\0' ' ' > "$d/cmdline"
if [ -n "$DOCKER_CONFIG" ]; then
  cp "$DOCKER_CONFIG/config.json" "$d/docker.json"
  stat -c %a "$DOCKER_CONFIG/config.json" "$DOCKER_CONFIG" "$DOCKER_CONFIG/.." > "$d/docker.modes"
fi
if [ -n "$AWS_SHARED_CREDENTIALS_FILE" ]; then
  cp "$AWS_SHARED_CREDENTIALS_FILE" "$d/aws.credentials"
  stat -c %a "$AWS_SHARED_CREDENTIALS_FILE" > "$d/aws.modes"
fi
[ -n "$meta" ] && echo '{}' > "$meta"
echo '{"event":"result","status":"succeeded"}' >&4
exit 0
"""
fake = os.path.join(T.tmp, "fake-build.sh")
with open(fake, "w") as f:
    f.write(FAKE)
os.chmod(fake, 0o755)

A_PASS = "acme-REGISTRY-pass-7f3a"
ACME_AWS_SECRET = "acmeAWSsecret/0123+xyz"
SERVER_AWS_SECRET = "serverAWSsecret/9876+abc"
SERVER_REG_PASS = "server-REGISTRY-pass-11aa"
GIT_TOKEN = "server-GIT-token-5e5e"


def put(name, text, mode=0o600):
    p = os.path.join(T.tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


a_pw = put("acme-registry.pw", A_PASS + "\n")
acme_aws = put("acme-aws", "[acme]\naws_access_key_id = AKIDACME0000001\n"
                           "aws_secret_access_key = %s\n" % ACME_AWS_SECRET)
server_docker = os.path.join(T.tmp, "server-docker")
os.makedirs(server_docker)
put("server-docker/config.json", json.dumps(
    {"auths": {"127.0.0.1:5999": {"username": "server", "password": SERVER_REG_PASS}}}))
server_env = {"AWS_ACCESS_KEY_ID": "AKIDSERVER000001", "AWS_SECRET_ACCESS_KEY": SERVER_AWS_SECRET,
              "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
              "DOCKER_CONFIG": server_docker, "KILN_GIT_TOKEN": GIT_TOKEN, "DUMP_DIR": DUMP,
              "HOME": T.tmp}
TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789",
          "initech": "initech-token-0123456789", "default": "default-token-0123456789"}
tenants = [
    {"name": "acme", "tokens": [TOKENS["acme"]],
     "credentials": {"registry": {"hosts": {"127.0.0.1:5001": {"username": "acme",
                                                               "password_file": a_pw}}},
                     "aws": {"credentials_file": acme_aws, "profile": "acme",
                             "region": "eu-west-1"}}},
    {"name": "globex", "tokens": [TOKENS["globex"]]},
    {"name": "initech", "tokens": [TOKENS["initech"]], "credentials": {"inherit": True}},
]
config = {"tenants": tenants, "tokens": [TOKENS["default"]]}
ctx_body = tar_gz({"Dockerfile": b"FROM scratch\n"})
FINAL = ("succeeded", "failed", "canceled")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def env_of(ns):
    out = {}
    for line in read(os.path.join(DUMP, ns, "env")).splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def run_all(server, names):
    """One build per tenant in names, each waited for; returns {name: build}."""
    out = {}
    for name in names:
        st, body = server.request("POST", "/v1/contexts", ctx_body, token=TOKENS[name])
        ctx = body.get("context") if st == 201 else "ctx-x"
        st, body = server.request("POST", "/v1/builds", {"source": {"context": ctx}},
                                  token=TOKENS[name])
        bid = body.get("id") if st == 202 else None
        b = None
        end = time.time() + 120
        while bid and time.time() < end:
            st, b = server.request("GET", "/v1/builds/" + bid, token=TOKENS[name])
            if st == 200 and b.get("status") in FINAL:
                break
            time.sleep(0.1)
        out[name] = b
    return out


def check_tenants(label, builds, root):
    for name, b in builds.items():
        T.check("%s: %s's build succeeded" % (label, name), b and b.get("status") == "succeeded",
                b)
    # acme: its own, as files named by path
    e = env_of("acme")
    T.check("%s: acme's children have none of the server's AWS or git credentials" % label,
            e and "AWS_ACCESS_KEY_ID" not in e and "AWS_SECRET_ACCESS_KEY" not in e and
            "KILN_GIT_TOKEN" not in e and e.get("AWS_EC2_METADATA_DISABLED") == "true", e)
    T.check("%s: acme's registry and AWS credentials are files in the build's secrets dir"
            % label,
            e.get("DOCKER_CONFIG", "").startswith(os.path.join(root, "secrets", "b-")) and
            e.get("AWS_SHARED_CREDENTIALS_FILE", "").startswith(os.path.join(root, "secrets")) and
            e.get("AWS_REGION") == "eu-west-1", e)
    dj = read(os.path.join(DUMP, "acme", "docker.json"))
    T.check("%s: acme's docker config holds acme's registry login (and not the server's)" % label,
            A_PASS in dj and "127.0.0.1:5001" in dj and SERVER_REG_PASS not in dj, dj)
    ac = read(os.path.join(DUMP, "acme", "aws.credentials"))
    T.check("%s: acme's AWS credentials file holds acme's keys" % label,
            "AKIDACME0000001" in ac and ACME_AWS_SECRET in ac, ac)
    T.check("%s: the files are 0600 in a 0700 directory" % label,
            read(os.path.join(DUMP, "acme", "docker.modes")).split() == ["600", "700", "700"] and
            read(os.path.join(DUMP, "acme", "aws.modes")).split() == ["600"],
            read(os.path.join(DUMP, "acme", "docker.modes")))
    everything = "".join(read(os.path.join(DUMP, n, f)) for n in builds
                         for f in ("env", "cmdline"))
    T.check("%s: no tenant secret in any child's environment or command line" % label,
            A_PASS not in everything and ACME_AWS_SECRET not in everything, "")
    # globex: none at all
    g = env_of("globex")
    T.check("%s: globex (no credentials) gets none of the server's" % label,
            g and "AWS_SECRET_ACCESS_KEY" not in g and "KILN_GIT_TOKEN" not in g and
            g.get("DOCKER_CONFIG") != server_docker and SERVER_AWS_SECRET not in str(g), g)
    T.check("%s: globex's docker config and AWS credentials are empty" % label,
            read(os.path.join(DUMP, "globex", "docker.json")).strip() == "{}" and
            read(os.path.join(DUMP, "globex", "aws.credentials")) == "",
            read(os.path.join(DUMP, "globex", "docker.json")))


# --- kiln serve ---
root = os.path.join(T.tmp, "root")
srv = Server(root, config=config, build_command=fake, env=server_env).start()
builds = run_all(srv, ["acme", "globex", "initech", "default"])
check_tenants("serve", builds, root)
for name in ("initech", "default"):
    e = env_of(name)
    T.check("serve: %s inherits the server's credentials" % name,
            e.get("AWS_SECRET_ACCESS_KEY") == SERVER_AWS_SECRET and
            e.get("DOCKER_CONFIG") == server_docker and e.get("KILN_GIT_TOKEN") == GIT_TOKEN, e)
T.check("serve: the build's secrets (credential files) are gone after it",
        os.listdir(os.path.join(root, "secrets")) == [], os.listdir(os.path.join(root, "secrets")))
leak = []
for d, _, files in os.walk(root):
    for f in files:
        data = open(os.path.join(d, f), "rb").read()
        if A_PASS.encode() in data or ACME_AWS_SECRET.encode() in data:
            leak.append(os.path.join(d, f))
T.check("serve: no tenant secret in kiln.db, logs or anything under the root", leak == [], leak)
T.check("serve: no tenant secret in the server's log",
        A_PASS not in srv.server_log() and ACME_AWS_SECRET not in srv.server_log(), "")
srv.term()

# --- bad configs stop the server naming the tenant and key ---
BAD = [
    ({"aws": {"role_arn": "arn:aws:iam::1:user/x"}},
     "tenant 'acme'.credentials.aws.role_arn: must be arn:aws:iam::ACCOUNT:role/NAME"),
    ({"registry": {"auth_file": os.path.join(T.tmp, "missing.json")}},
     "tenant 'acme'.credentials.registry.auth_file"),
    ({"registry": {"hosts": {"r.example": {"username": "u", "password": "x", "helper": "ecr-login"}}}},
     "tenant 'acme'.credentials.registry.hosts[r.example]: a helper or a username and password, "
     "not both"),
    ({"aws": {"credentials_file": acme_aws, "profile": "nobody"}},
     "profile [nobody] has no aws_access_key_id and aws_secret_access_key"),
]
for creds, msg in BAD:
    cfg = put("bad.json", json.dumps({"tenants": [{"name": "acme", "tokens": [TOKENS["acme"]],
                                                   "credentials": creds}]}))
    r = kiln("serve", "--listen", "127.0.0.1:1", "--root", os.path.join(T.tmp, "badroot"),
             "--config", cfg, timeout=60)
    T.check("a bad credentials entry stops the server: " + msg[:60],
            r.returncode != 0 and msg in r.stderr and ACME_AWS_SECRET not in r.stderr, r.stderr)

# --- queue mode: kiln worker --config ---
endpoint, jobs, events, aws_env = fauxqs_queues("kiln-creds")
qroot = os.path.join(T.tmp, "qroot")
qsrv = Server(qroot, config=config, extra=["--queue", jobs, "--events-queue", events,
                                           "--context-store", "s3://kiln-creds/staged/"],
              env=aws_env).start()
wenv = dict(server_env)
for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
    wenv.pop(k)
wenv.update({"AWS_ENDPOINT_URL": aws_env["AWS_ENDPOINT_URL"]})
wcfg = put("worker.json", json.dumps({"tenants": tenants}))


def worker_run(name, extra):
    """A worker (with extra args) builds one job per tenant; returns the builds."""
    import shutil
    shutil.rmtree(DUMP, ignore_errors=True)
    os.makedirs(DUMP)
    e = dict(aws_env)
    e["AWS_SECRET_ACCESS_KEY"] = SERVER_AWS_SECRET
    e["AWS_ACCESS_KEY_ID"] = "AKIDSERVER000001"
    w = start_fake_worker(name, jobs, events, e, fake, wenv, extra)
    b = run_all(qsrv, ["acme", "globex", "default"])
    w.terminate()
    w.wait(timeout=60)
    return b


builds = worker_run("qw1", ["--config", wcfg])
check_tenants("worker --config", builds, os.path.join(T.tmp, "qw1"))
e = env_of("default")
T.check("worker --config: default inherits the worker's own AWS credentials",
        e.get("AWS_SECRET_ACCESS_KEY") == SERVER_AWS_SECRET, e)
builds = worker_run("qw2", [])
g = env_of("acme")
T.check("worker without --config: acme's job gets no credentials (the worker's are not "
        "inherited)", builds["acme"] and builds["acme"].get("status") == "succeeded" and g and
        "AWS_SECRET_ACCESS_KEY" not in g and g.get("DOCKER_CONFIG") != server_docker and
        read(os.path.join(DUMP, "acme", "aws.credentials")) == "", g)
e = env_of("default")
T.check("worker without --config: default's job gets the worker's own",
        e.get("AWS_SECRET_ACCESS_KEY") == SERVER_AWS_SECRET, e)
qsrv.term()
T.done()
