"""Output confinement on a real `kiln serve`: file outputs (local, oci, docker, tar, function)
are written only into the build's own artifacts directory: an absolute, escaping, encoded or
nested dest, an unknown type or option, a malformed pushed name or tag is 400 naming the output
before any build exists, and nothing is written on the host; a relative dest is built into the
artifacts directory and served by the artifacts route (never through the image's symlinks).
Two tenants with output prefixes: a push (name, tag, image push=true) outside the tenant's
registry prefixes, another registry host, an s3 dest outside its s3 prefixes or a notify
target not its own is 403 naming the output and the rule before any build exists, and nothing
reaches the registry; a push inside them builds and lands; bad prefixes and a project whose
outputs leave its tenant's stop the server at startup, named."""
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import KILN, T, free_port  # noqa: E402
from server_common import (Server, fauxqs_queues, real_build_server, tar_gz,  # noqa: E402
                           write_fake_build)

ACME = "acme-token-0123456789"
BETA = "beta-token-9876543210"
ACME_EVENTS = "sqs://http://127.0.0.1:9/000000000000/acme-events"


def tenants(reg):
    return [{"name": "acme", "tokens": [ACME],
             "outputs": {"registry": [reg + "/acme/"], "s3": ["s3://sites/acme/"],
                         "notify": [ACME_EVENTS]}},
            {"name": "beta", "tokens": [BETA], "outputs": {"registry": [reg + "/beta/"]}}]


layout, reg, srv = real_build_server(tenants=tenants)

# host paths a hostile request aims at: none may be created or written
marker_dir = os.path.join(T.tmp, "host-marker")
marker_file = os.path.join(T.tmp, "host-marker-file")


def n_builds():
    st, body = srv.request("GET", "/v1/builds?limit=500")
    return len(body["builds"]) if st == 200 else -1


def host_untouched():
    return not os.path.lexists(marker_dir) and not os.path.lexists(marker_file)


ctx = srv.upload_dockerfile(
    "FROM oci:%s:1\nRUN mkdir /www && echo built > /www/index.html && ln -s %s /evil\n"
    % (layout, marker_dir))

# --- refused before anything runs: 400 naming the output ---
REFUSED = [
    ("absolute local dest", [{"type": "local", "dest": marker_dir}],
     "field 'outputs[0].dest': '%s' is absolute" % marker_dir),
    ("absolute oci dest", [{"type": "oci", "dest": marker_file, "tar": True}],
     "outputs[0].dest"),
    ("escaping docker dest", [{"type": "docker", "dest": "../../../.." + marker_file}],
     "field 'outputs[0].dest': '../../../..%s' has a '..' segment" % marker_file),
    ("escaping dest inside the path", [{"type": "local", "dest": "site/../../.."}],
     "has a '..' segment"),
    ("encoded dest", [{"type": "tar", "dest": "%2e%2e/x.tar"}],
     "field 'outputs[0].dest': '%2e%2e/x.tar' has the character '%'"),
    ("dest with an empty segment", [{"type": "local", "dest": "a//b"}], "empty path segment"),
    ("a file output inside another's directory",
     [{"type": "local", "dest": "site"}, {"type": "local", "dest": "site/evil/x"}],
     "field 'outputs[1].dest': 'site/evil/x' and outputs[0].dest 'site'"),
    ("two file outputs on one path",
     [{"type": "oci", "dest": "img"}, {"type": "docker", "dest": "img"}], "outputs[1].dest"),
    ("an option another type would read", [{"type": "function", "dest": "f.zip",
                                            "x-dest": marker_file}],
     "field 'outputs[0].x-dest': not an option of type=function (dest)"),
    ("a dest on a registry output", [{"type": "registry", "name": reg + "/acme/app",
                                      "dest": marker_file}],
     "field 'outputs[0].dest': not an option of type=registry"),
    ("an unknown type", [{"type": "cacheonly"}], "unknown output type 'cacheonly'"),
    ("a file output without dest", [{"type": "local"}], "type=local needs a dest"),
    ("a pushed name with '..'", [{"type": "registry", "name": reg + "/acme/../other/app"}],
     "field 'outputs[0].name': invalid image reference"),
    ("a pushed name with %2e", [{"type": "image", "name": reg + "/acme/%2e%2e/app",
                                 "push": True}], "field 'outputs[0].name'"),
    ("an s3 dest with '..'", [{"type": "s3", "dest": "s3://sites/acme/../other"}],
     "field 'outputs[0].dest': 's3://sites/acme/../other' has a '..' key segment"),
    ("an s3 dest with %2e", [{"type": "s3", "dest": "s3://sites/acme/%2e%2e/x"}],
     "outputs[0].dest"),
]
before = n_builds()
for name, outputs, want in REFUSED:
    st, body = srv.submit({"source": {"context": ctx}, "outputs": outputs})
    err = body.get("error", "") if isinstance(body, dict) else str(body)
    T.check("%s => 400 naming it" % name, st == 400 and want in err, (st, body, want))
st, body = srv.submit({"source": {"context": ctx}, "tags": [reg + "/acme/app:1", "a/../b:1"]})
T.check("a tag with '..' => 400 naming tags[1]", st == 400 and
        "field 'tags[1]'" in body.get("error", ""), (st, body))
T.check("no build was created by a refused request", n_builds() == before, n_builds())
T.check("nothing written on the host", host_untouched(), os.listdir(T.tmp))

# --- a relative dest: built into the artifacts directory, served by the artifacts route ---
st, body = srv.submit({"source": {"context": ctx}, "outputs": [
    {"type": "local", "dest": "site"}, {"type": "oci", "dest": "image.tar", "tar": True},
    {"type": "tar", "dest": "fs/rootfs.tar"}]})
T.check("file outputs with relative dests => 202", st == 202, body)
bid = body.get("id", "")
b = srv.wait_status(bid, ("succeeded", "failed", "canceled"), timeout=600)
T.check("the build succeeded", b and b["status"] == "succeeded",
        (b, srv.request("GET", "/v1/builds/%s/logs" % bid)[1]))
st, a = srv.request("GET", "/v1/builds/%s/artifacts" % bid)
paths = {f["path"] for f in a.get("files", [])} if st == 200 else set()
T.check("artifacts list the local output's files and the oci archive",
        "site/www/index.html" in paths and "image.tar" in paths, (st, sorted(paths)[:20]))
st, data, _ = srv.request("GET", "/v1/builds/%s/artifacts/files/site/www/index.html" % bid,
                          raw=True)
T.check("a file of the local output is served", st == 200 and data == b"built\n", (st, data))
st, data, _ = srv.request("GET", "/v1/builds/%s/artifacts/files/fs/rootfs.tar" % bid, raw=True)
try:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        index = tf.extractfile(members["www/index.html"]).read()
except Exception as e:  # noqa: BLE001
    members, index = {"error": str(e)}, b""
T.check("the tar output is the filesystem, its symlink a link", st == 200 and
        index == b"built\n" and members["evil"].issym() and
        members["evil"].linkname == marker_dir, (st, list(members)[:20]))
art = os.path.join(srv.root, "artifacts", bid)
T.check("the image's symlink is kept as a link inside the artifacts directory",
        os.readlink(os.path.join(art, "site", "evil")) == marker_dir, os.listdir(art))
st, body = srv.request("GET", "/v1/builds/%s/artifacts/files/site/evil" % bid)
T.check("the artifacts route does not follow the image's symlink", st == 404, (st, body))
T.check("the stored outputs keep the request's dest",
        json.dumps(b.get("outputs")) == json.dumps([{"type": "local", "dest": "site"},
                                                    {"type": "oci", "dest": "image.tar",
                                                     "tar": True},
                                                    {"type": "tar", "dest": "fs/rootfs.tar"}]),
        b.get("outputs"))
T.check("still nothing written on the host", host_untouched(), os.listdir(T.tmp))

# --- tenants: pushes, uploads and notifications only within the tenant's outputs ---


def catalog():
    with urllib.request.urlopen("http://%s/v2/_catalog" % reg, timeout=30) as r:
        return json.load(r)["repositories"]


def submit_as(token, body):
    return srv.request("POST", "/v1/builds", body, token=token)


def n_builds_of(token):
    st, body = srv.request("GET", "/v1/builds?limit=500", token=token)
    return len(body["builds"]) if st == 200 else -1


port = reg.split(":")[1]
TENANT_REFUSED = [
    ("acme pushes to beta's namespace", ACME,
     {"outputs": [{"type": "registry", "name": reg + "/beta/app:1"}]}, 403,
     ["field 'outputs[0].name': '%s/beta/app:1' is %s/beta/app, outside the registry prefixes "
      "(%s/acme/)" % (reg, reg, reg), "tenant 'acme'", "\"registry\": [...]"]),
    ("a prefix matches whole segments (acmex)", ACME,
     {"outputs": [{"type": "registry", "name": reg + "/acmex/app:1"}]}, 403,
     ["outputs[0].name", "acmex/app"]),
    ("type=image,push=true outside", ACME,
     {"outputs": [{"type": "image", "name": reg + "/beta/img", "push": True}]}, 403,
     ["outputs[0].name"]),
    ("type=image,push=\"1\" outside", ACME,
     {"outputs": [{"type": "image", "name": reg + "/beta/img", "push": "1"}]}, 403,
     ["outputs[0].name"]),
    ("a tag outside, pushed by the registry output", ACME,
     {"outputs": [{"type": "registry", "name": reg + "/acme/app:3"}],
      "tags": [reg + "/acme/app:4", reg + "/beta/app:4"]}, 403, ["field 'tags[1]'"]),
    ("a tag outside, without a pushing output", ACME, {"tags": [reg + "/beta/app:5"]}, 403,
     ["field 'tags[0]'"]),
    ("another registry host (localhost for 127.0.0.1)", ACME,
     {"outputs": [{"type": "registry", "name": "localhost:%s/acme/app:1" % port}]}, 403,
     ["localhost:%s/acme/app" % port]),
    ("another port", ACME,
     {"outputs": [{"type": "registry", "name": "127.0.0.1:%d/acme/app:1" % (int(port) + 1)}]},
     403, ["outputs[0].name"]),
    ("docker.io by default", ACME, {"outputs": [{"type": "registry", "name": "acme/app"}]},
     403, ["docker.io/acme/app"]),
    ("an encoded '..' in a pushed name", ACME,
     {"outputs": [{"type": "registry", "name": reg + "/acme/%2e%2e/beta/app"}]}, 400,
     ["outputs[0].name"]),
    ("a '..' in a pushed name", ACME,
     {"outputs": [{"type": "registry", "name": reg + "/acme/../beta/app"}]}, 400,
     ["outputs[0].name"]),
    ("an s3 dest outside", ACME,
     {"outputs": [{"type": "s3", "dest": "s3://sites/acmex/www"}]}, 403,
     ["field 'outputs[0].dest': 's3://sites/acmex/www' is outside the s3 prefixes "
      "(s3://sites/acme/)", "\"s3\": [...]"]),
    ("an s3 dest in another bucket", ACME,
     {"outputs": [{"type": "s3", "dest": "s3://other/acme/www"}]}, 403, ["outputs[0].dest"]),
    ("an s3 dest escaping with '..'", ACME,
     {"outputs": [{"type": "s3", "dest": "s3://sites/acme/../beta/www"}]}, 400,
     ["outputs[0].dest"]),
    ("a notify target not the tenant's", ACME,
     {"notify": [ACME_EVENTS + "-x"]}, 403, ["field 'notify[0]'", "\"notify\": [...]"]),
    ("beta lists no s3: no upload", BETA,
     {"outputs": [{"type": "s3", "dest": "s3://sites/beta/www"}]}, 403,
     ["none: no upload allowed", "tenant 'beta'"]),
    ("beta lists no notify: none", BETA, {"notify": [ACME_EVENTS]}, 403,
     ["none: no notify allowed"]),
    ("beta pushes to acme's namespace", BETA,
     {"outputs": [{"type": "registry", "name": reg + "/acme/app:9"}]}, 403,
     ["tenant 'beta'", "(%s/beta/)" % reg]),
]
before = {ACME: n_builds_of(ACME), BETA: n_builds_of(BETA)}
for name, token, body, status, wants in TENANT_REFUSED:
    # refused before the source is looked at: a git URL no build could reach
    body = dict(body, source={"git": "https://git.example.test/app.git"})
    st, b = submit_as(token, body)
    err = b.get("error", "") if isinstance(b, dict) else str(b)
    T.check("%s => %d naming it" % (name, status),
            st == status and all(w in err for w in wants), (st, b, wants))
T.check("no build was created by a refused request",
        n_builds_of(ACME) == before[ACME] and n_builds_of(BETA) == before[BETA],
        (before, n_builds_of(ACME), n_builds_of(BETA)))
T.check("nothing reached the registry", not any(
    r.startswith("beta/") or r.startswith("acmex/") for r in catalog()), catalog())

# a push within the prefixes builds and lands (an uploaded context is its uploader's)
st, c = srv.request("POST", "/v1/contexts", token=ACME, body=tar_gz(
    {"Dockerfile": ("FROM oci:%s:1\nRUN echo acme > /who\n" % layout).encode()}))
T.check("acme uploads a context", st == 201, c)
name = reg + "/acme/app:1"
st, b = submit_as(ACME, {"source": {"context": c.get("context", "")},
                         "outputs": [{"type": "registry", "name": name}],
                         "tags": [reg + "/acme/app:2"]})
T.check("acme pushes under its prefix => 202", st == 202, b)
bid = b.get("id", "x") if st == 202 else "x"
end = time.time() + 600
while True:
    st2, b2 = srv.request("GET", "/v1/builds/" + bid, token=ACME)
    if st2 != 200 or b2.get("status") in ("succeeded", "failed", "canceled") or time.time() > end:
        break
    time.sleep(0.2)
T.check("acme's push succeeded", st2 == 200 and b2.get("status") == "succeeded", (st2, b2))
sk = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "docker://" + reg + "/acme/app:2"],
                    capture_output=True, text=True)
T.check("the tag under acme's prefix is in the registry", sk.returncode == 0, sk.stderr)

# --- queue mode: a refused request never reaches the job queue ---
endpoint, jobs, events, aws_env = fauxqs_queues("kiln-outputs")
import awslib  # noqa: E402  (tests/aws, on sys.path above)
qsrv = Server(os.path.join(T.tmp, "qroot"), config={"tenants": tenants(reg)},
              extra=["--queue", jobs, "--events-queue", events,
                     "--context-store", "s3://kiln-outputs/staged/"], env=aws_env).start()
GIT = {"git": "https://git.example.test/acme/app.git"}
for name, token, body, status, want in [
        ("queue mode: a push outside the prefixes", ACME,
         {"outputs": [{"type": "registry", "name": reg + "/beta/app"}]}, 403, "outputs[0].name"),
        ("queue mode: a tag outside", BETA, {"tags": [reg + "/acme/app"]}, 403, "tags[0]"),
        ("queue mode: an absolute file dest", ACME,
         {"outputs": [{"type": "local", "dest": marker_dir}]}, 400, "outputs[0].dest"),
        ("queue mode: an s3 dest outside", ACME,
         {"outputs": [{"type": "s3", "dest": "s3://sites/beta/"}]}, 403, "outputs[0].dest")]:
    st, b = qsrv.request("POST", "/v1/builds", dict(body, source=GIT), token=token)
    T.check("%s => %d" % (name, status), st == status and want in b.get("error", ""), (st, b))
T.check("queue mode: no job was sent for a refused request",
        awslib.sqs_receive(endpoint, jobs, wait=1) == [], "a job message")
st, b = qsrv.request("POST", "/v1/builds", {"source": GIT, "outputs": [
    {"type": "registry", "name": reg + "/acme/app:q"}, {"type": "local", "dest": "site"}]},
    token=ACME)
T.check("queue mode: a request within the prefixes => 202", st == 202, b)
msgs = awslib.sqs_receive(endpoint, jobs, wait=5, max_messages=1)
job = json.loads(msgs[0]["Body"]) if msgs else {}
T.check("queue mode: its job carries tenant acme and the request's outputs",
        job.get("request", {}).get("tenant") == "acme" and
        job.get("request", {}).get("outputs", [{}])[0].get("name") == reg + "/acme/app:q",
        job)

# a job that bypassed serve (written to the queue as acme's, pushing to beta's namespace): a
# `kiln worker --config` with the tenants fails it before anything runs
forged = json.loads(msgs[0]["Body"]) if msgs else {"id": "b-x", "request": {}}
forged["request"]["outputs"][0]["name"] = reg + "/beta/app:forged"
awslib._json_call(endpoint, "SendMessage", {
    "QueueUrl": jobs, "MessageBody": json.dumps(forged),
    "MessageAttributes": {"kiln-build-id": {"DataType": "String", "StringValue": forged["id"]}}})
fake = write_fake_build(T.tmp)
wargs = os.path.join(T.tmp, "worker-args.log")
wenv = dict(os.environ, **aws_env, FAKE_ARGSLOG=wargs)
wlog = open(os.path.join(T.tmp, "worker.log"), "w")
worker = T.spawn([KILN, "worker", "--queue", jobs, "--events-queue", events, "--root",
                  os.path.join(T.tmp, "qw"), "--build-command", fake, "--config",
                  os.path.join(T.tmp, "qroot") + ".config.json", "--visibility-timeout", "3",
                  "--wait-seconds", "1", "--drain-timeout", "30"],
                 stdout=wlog, stderr=subprocess.STDOUT, env=wenv)
end = time.time() + 120
while True:
    st, fb = qsrv.request("GET", "/v1/builds/" + forged["id"], token=ACME)
    if st != 200 or fb.get("status") in ("succeeded", "failed", "canceled") or time.time() > end:
        break
    time.sleep(0.2)
T.check("queue mode: the worker fails a forged job pushing outside acme's prefixes",
        st == 200 and fb.get("status") == "failed" and fb.get("reason") == "invalid_job" and
        "outputs[0].name" in (fb.get("error") or "") and "tenant 'acme'" in (fb.get("error") or ""),
        (st, fb, open(wlog.name).read()[-2000:]))
T.check("queue mode: nothing ran for it", not os.path.exists(wargs), wargs)
worker.terminate()
worker.wait(timeout=60)
qsrv.term()

# --- bad rules stop the server at startup, named ---


def serve_fails(config, want, name):
    path = os.path.join(T.tmp, "bad-%d.json" % free_port())
    with open(path, "w") as f:
        json.dump(config, f)
    r = subprocess.run([KILN, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--root",
                        os.path.join(T.tmp, "bad-root"), "--config", path],
                       capture_output=True, text=True, timeout=60)
    T.check(name, r.returncode != 0 and want in r.stderr, (r.returncode, r.stderr))


serve_fails({"tenants": [{"name": "acme", "tokens": [ACME],
                          "outputs": {"registry": ["ghcr.io/acme/../beta/"]}}]},
            "tenant 'acme'.outputs.registry[0]: 'ghcr.io/acme/../beta/'",
            "a registry prefix with '..' stops the server")
serve_fails({"tenants": [{"name": "acme", "tokens": [ACME],
                          "outputs": {"s3": ["s3://sites/%2e%2e/"]}}]},
            "tenant 'acme'.outputs.s3[0]", "an encoded s3 prefix stops the server")
serve_fails({"tenants": [{"name": "acme", "tokens": [ACME],
                          "outputs": {"registry": ["ghcr.io/acme/"]}}],
             "projects": [{"name": "site", "github": "acme/site", "secret": "gh-secret-1",
                           "tenant": "acme", "build": {"outputs": [
                               {"type": "registry", "name": "ghcr.io/beta/site"}]}}]},
            "projects[0].build: field 'outputs[0].name': 'ghcr.io/beta/site'",
            "a project pushing outside its tenant's prefixes stops the server")

T.done()
