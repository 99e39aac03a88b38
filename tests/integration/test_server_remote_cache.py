"""The S3 layer cache of tenants' builds end to end through `kiln serve` (real builds; S3 is
fauxqs behind a recording proxy; a loopback docker-registry). The server has no per-tenant
remote cache setting: the operator gives every build `--build-option=--cache-to/--cache-from
type=s3,bucket=B,prefix=P` and the server's cache namespace (the tenant's name) puts each
tenant's cache under `kiln-ns/TENANT/P/`, read and written with the tenant's own AWS keys.

- server 1 (kiln root R1): tenant acme builds a Dockerfile with two RUN steps writing random
  values; its layer cache lands under kiln-ns/acme/P/ (layers.json + blobs), signed with
  acme's key
- server 2 (a fresh kiln root R2, same config: a new ECS worker): acme builds the same
  context: every step is a cache hit (nothing runs: no new values), no layer is downloaded (no
  blob GET at all; the cached layers are acme's lazy records under R2/ns/acme/lazy, source
  "s3-ns acme SPEC", not blobs of R2)
- acme's build of it with a registry output on R2: the push fetches the lazy layers from
  acme's prefix; the pushed image copies with skopeo (every blob's digest checked) and its
  layers hold server 1's random values: the bytes came from S3
- globex on R2, same Dockerfile and context: no hit of acme's cache (its steps run, other
  values), no record under R2/ns/globex naming acme's source, nothing of acme's prefix read
  with globex's key
- a request cannot name a cache: "cache" (remote_from naming acme's prefix, namespace acme) and
  "cache_namespace" are 400 naming the field, and no build is made
- queue mode: `kiln worker --config` on a fresh kiln root R3 builds acme's job from a
  `kiln serve --queue`: every RUN a cache hit, acme's layers.json read with acme's key, no blob
  GET, the layers acme's lazy records under R3/ns/acme/lazy"""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
import awslib  # noqa: E402
from kilntest import KILN, T, start_registry  # noqa: E402
from server_common import Server, busybox_layout, tar_gz  # noqa: E402

BUCKET, PREFIX = "kcache", "layers"
SPEC = "type=s3,bucket=%s,prefix=%s" % (BUCKET, PREFIX)
TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}
KEYS = {"acme": "AKIDACMELAZY0001", "globex": "AKIDGLOBEXLAZY01"}

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
REG = "127.0.0.1:%d" % start_registry()
direct, proxy, _ = awslib.start_services(T)
awslib.s3_create_bucket(direct, BUCKET)


def creds_file(tenant):
    p = os.path.join(T.tmp, tenant + "-aws")
    with open(p, "w") as f:
        f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s-secret/0123\n"
                % (KEYS[tenant], tenant))
    os.chmod(p, 0o600)
    return p


config = {
    "policy": {"allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout]},
    "tenants": [{"name": t, "tokens": [TOKENS[t]],
                 "outputs": {"registry": ["%s/%s/" % (REG, t)]},
                 "credentials": {"aws": {"credentials_file": creds_file(t)}}}
                for t in ("acme", "globex")],
}
# the server's environment has the endpoint and region only: the tenants' keys sign
ENV = {"AWS_ENDPOINT_URL": proxy.url, "AWS_REGION": "us-east-1", "HOME": T.tmp,
       "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}
for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(k, None)


def server(n):
    """kiln serve number n on its own fresh kiln root T.tmp/kroot<n>, the same config."""
    return Server(os.path.join(T.tmp, "root%d" % n), workers=1, config=config, env=ENV,
                  extra=["--kiln-root=" + os.path.join(T.tmp, "kroot%d" % n),
                         "--build-option=--insecure-registry=" + REG,
                         "--build-option=--cache-to=" + SPEC,
                         "--build-option=--cache-from=" + SPEC]).start()


RND = "$(busybox od -An -tx1 -N8 /dev/urandom | busybox tr -d ' \\n')"
DF = ("FROM oci:%s:1\nRUN echo \"A=%s\" > /a && cat /a\nRUN echo \"B=%s\" > /b && cat /b\n"
      % (layout, RND, RND))
CONTEXT = tar_gz({"Dockerfile": DF.encode()})


def build(srv, tenant, outputs=None):
    """One build of CONTEXT as tenant: (final record, log text, proxy requests meanwhile)."""
    st, body = srv.request("POST", "/v1/contexts", token=TOKENS[tenant], body=CONTEXT)
    if st != 201:
        return {"status": "upload %d" % st, "body": body}, "", []
    proxy.clear()
    req = {"source": {"context": body["context"]}}
    if outputs:
        req["outputs"] = outputs
    rec, log = srv.build_to_end(req, token=TOKENS[tenant])
    return rec, log, proxy.requests()


def values(log):
    """The random values the RUN steps printed (or None when a step did not run)."""
    a = re.search(r"(?m)^#\d+ A=([0-9a-f]{16})$", log)
    b = re.search(r"(?m)^#\d+ B=([0-9a-f]{16})$", log)
    return (a.group(1) if a else None, b.group(1) if b else None)


def ok(rec):
    return rec.get("status") == "succeeded"


def key_of(r):
    m = re.search(r"Credential=([A-Z0-9]+)/", r["headers"].get("authorization", ""))
    return m.group(1) if m else None


def paths(reqs, method=None):
    return [r["path"] for r in reqs if method is None or r["method"] == method]


def lazy_records(kroot, tenant):
    """{hex: source} of tenant's lazy blob records under kroot."""
    d = os.path.join(kroot, "ns", tenant, "lazy")
    out = {}
    for name in os.listdir(d) if os.path.isdir(d) else []:
        try:
            with open(os.path.join(d, name)) as f:
                out[name] = json.load(f).get("source", "")
        except (OSError, ValueError):
            out[name] = ""
    return out


ACME_KEYS = "/%s/kiln-ns/acme/%s/" % (BUCKET, PREFIX)

# ---- 1. server 1: acme builds, its layer cache goes to S3 under kiln-ns/acme/
s1 = server(1)
rec1, log1, reqs1 = build(s1, "acme")
v1 = values(log1)
T.check("server 1: acme's build succeeds, both RUN steps run", ok(rec1) and None not in v1,
        (rec1, log1[-2000:]))
put_paths = paths(reqs1, "PUT")
T.check("server 1: acme's layer cache is written under kiln-ns/acme/P/ (layers.json, blobs)",
        ACME_KEYS + "layers.json" in put_paths
        and any(p.startswith(ACME_KEYS + "blobs/sha256/") for p in put_paths)
        and all(p.startswith("/%s/kiln-ns/acme/" % BUCKET) for p in paths(reqs1)),
        str(paths(reqs1)))
T.check("server 1: every S3 request of acme's build is signed with acme's key",
        reqs1 and all(key_of(r) == KEYS["acme"] for r in reqs1),
        str([(r["path"], key_of(r)) for r in reqs1]))
s1.term()
try:
    with urllib.request.urlopen("%s/%s/kiln-ns/acme/%s/layers.json" % (direct, BUCKET, PREFIX),
                                timeout=30) as resp:
        idx = json.load(resp)
    layer_hex = sorted({x["digest"].split(":", 1)[1] for x in idx.get("layers", [])})
except (OSError, ValueError, KeyError) as e:
    layer_hex = []
    T.diag("layers.json: %s" % e)
T.check("acme's layers.json names the two RUN layers", len(layer_hex) == 2, str(layer_hex))

# ---- 2. server 2, a fresh kiln root: acme's same build is all cache hits, downloads no layer
R2 = os.path.join(T.tmp, "kroot2")
s2 = server(2)
rec2, log2, reqs2 = build(s2, "acme")
T.check("server 2 (fresh root): acme's build succeeds with every RUN a cache hit (server 1's "
        "values, nothing ran)",
        ok(rec2) and values(log2) == (None, None) and "#2 CACHED" in log2 and "#3 CACHED" in log2
        and "2 layers named to fetch when needed" in log2, (rec2, log2[-2000:]))
T.check("server 2: acme's build read its layers.json and downloaded no layer (no blob GET)",
        ACME_KEYS + "layers.json" in paths(reqs2, "GET")
        and not [p for p in paths(reqs2, "GET") if "/blobs/" in p],
        str([(r["method"], r["path"]) for r in reqs2]))
recs2 = lazy_records(R2, "acme")
T.check("server 2: the cached layers are acme's lazy records (source s3-ns acme SPEC) under "
        "R2/ns/acme/lazy, not blobs of R2",
        layer_hex and all(recs2.get(h) == "s3-ns acme " + SPEC for h in layer_hex)
        and not any(os.path.exists(os.path.join(R2, "blobs", "sha256", h)) for h in layer_hex)
        and not any(os.path.exists(os.path.join(R2, "lazy", h)) for h in layer_hex),
        (recs2, layer_hex))

# ---- 3. acme's build pushed from R2: the lazy layers come from acme's prefix
IMAGE = "%s/acme/app:1" % REG
rec3, log3, reqs3 = build(s2, "acme", [{"type": "registry", "name": IMAGE}])
got = [p.rsplit("/", 1)[1] for p in paths(reqs3, "GET") if p.startswith(ACME_KEYS + "blobs/")]
T.check("server 2: acme's build with a registry output succeeds, still all cache hits",
        ok(rec3) and values(log3) == (None, None), (rec3, log3[-2000:]))
T.check("the push fetched the lazy layers from acme's prefix, signed with acme's key",
        layer_hex and all(h in got for h in layer_hex)
        and all(key_of(r) == KEYS["acme"] for r in reqs3), str(paths(reqs3)))
oci = os.path.join(T.tmp, "pulled")
cp = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "docker://" + IMAGE,
                     "oci:" + oci + ":1"], capture_output=True, text=True, timeout=300)
T.check("the pushed image copies with skopeo (every blob's digest checked)", cp.returncode == 0,
        cp.stderr[-1500:])


def layer_files():
    """{path: bytes} of every regular file in the pulled image's layers."""
    out = {}
    try:
        with open(os.path.join(oci, "index.json")) as f:
            mdig = json.load(f)["manifests"][0]["digest"].split(":", 1)[1]
        with open(os.path.join(oci, "blobs", "sha256", mdig)) as f:
            man = json.load(f)
        for lay in man["layers"]:
            p = os.path.join(oci, "blobs", "sha256", lay["digest"].split(":", 1)[1])
            with tarfile.open(p) as tf:
                for m in tf.getmembers():
                    if m.isfile():
                        out[m.name.lstrip("./")] = tf.extractfile(m).read()
    except (OSError, ValueError, KeyError, tarfile.TarError) as e:
        T.diag("pulled image: %s" % e)
    return out


files = layer_files() if cp.returncode == 0 else {}
T.check("the pushed layers hold server 1's values: the bytes came from S3",
        files.get("a") == ("A=%s\n" % v1[0]).encode()
        and files.get("b") == ("B=%s\n" % v1[1]).encode(),
        (sorted(files), files.get("a"), files.get("b"), v1))
T.check("R2 now holds the fetched layers as blobs",
        layer_hex
        and all(os.path.exists(os.path.join(R2, "blobs", "sha256", h)) for h in layer_hex),
        layer_hex)

# ---- 4. globex on R2: no hit of acme's cache
rec4, log4, reqs4 = build(s2, "globex")
v4 = values(log4)
T.check("globex's build of the same context on R2 misses acme's cache: its steps run (other "
        "values)",
        ok(rec4) and None not in v4 and v4 != v1, (rec4, log4[-2000:], v1))
T.check("globex's build read and wrote only under kiln-ns/globex/, with globex's key",
        reqs4 and all(p.startswith("/%s/kiln-ns/globex/" % BUCKET) for p in paths(reqs4))
        and all(key_of(r) == KEYS["globex"] for r in reqs4), str(paths(reqs4)))
recs4 = lazy_records(R2, "globex")
T.check("R2/ns/globex holds no lazy record naming acme's source nor acme's layers",
        not any("acme" in s for s in recs4.values()) and not any(h in recs4 for h in layer_hex),
        recs4)

# ---- 5. hostile: a request naming a cache is refused, naming the field
ctx = s2.request("POST", "/v1/contexts", token=TOKENS["globex"], body=CONTEXT)[1]["context"]
st0, listed0 = s2.request("GET", "/v1/builds", token=TOKENS["globex"])
for field, value, want in (
        ("cache", {"remote_from": ["type=s3,bucket=%s,prefix=kiln-ns/acme/%s" % (BUCKET, PREFIX)]},
         "field 'cache': unknown field"),
        ("cache", {"namespace": "acme", "remote_from": [SPEC]}, "field 'cache': unknown field"),
        ("cache_namespace", "acme", "field 'cache_namespace': unknown field")):
    st, body = s2.request("POST", "/v1/builds", {"source": {"context": ctx}, field: value},
                          token=TOKENS["globex"])
    T.check("globex's request with %s=%s is 400 naming the field" % (field, json.dumps(value)),
            st == 400 and body == {"error": want}, (st, body))
st1, listed1 = s2.request("GET", "/v1/builds", token=TOKENS["globex"])
T.check("the refused requests made no build", st0 == st1 == 200 and listed0 == listed1,
        (listed0, listed1))
s2.term()

# ---- queue mode: a `kiln worker --config` on a fresh kiln root R3 (a new ECS worker) builds
# acme's job from the queue of a `kiln serve --queue`: all cache hits, no layer downloaded
jobs = awslib.sqs_create_queue(direct, "kiln-lazy-jobs", {"VisibilityTimeout": "30"})
events = awslib.sqs_create_queue(direct, "kiln-lazy-events")
awslib.s3_create_bucket(direct, "kstage")
# the server's and the worker's own keys (queues, context store): never the tenants'
OWN = dict(ENV, AWS_ACCESS_KEY_ID=awslib.TEST_KEY_ID, AWS_SECRET_ACCESS_KEY=awslib.TEST_SECRET)
s3q = Server(os.path.join(T.tmp, "root3"), workers=1, config=config, env=OWN,
             extra=["--queue", jobs, "--events-queue", events,
                    "--context-store", "s3://kstage/staged/"]).start()
wcfg = os.path.join(T.tmp, "root3.config.json")
R3 = os.path.join(T.tmp, "kroot3")
wlog = open(os.path.join(T.tmp, "worker.log"), "w")
# the worker's policy is the config's (allow_addresses, oci_dirs): no --allow-address and no
# KILN_IMAGES_DIR here, which is where FROM oci: could read otherwise
wenv = dict(os.environ, **OWN)
wenv.pop("KILN_IMAGES_DIR", None)
worker = T.spawn([KILN, "worker", "--queue", jobs, "--events-queue", events, "--config", wcfg,
                  "--root", os.path.join(T.tmp, "wroot"), "--kiln-root", R3,
                  "--wait-seconds", "1",
                  "--build-option=--cache-to=" + SPEC, "--build-option=--cache-from=" + SPEC],
                 stdout=wlog, stderr=subprocess.STDOUT, env=wenv)
rec5, log5, reqs5 = build(s3q, "acme")
cache5 = [r for r in reqs5 if r["path"].startswith("/%s/" % BUCKET)]
T.check("queue mode: the worker on a fresh root builds acme's job with every RUN a cache hit",
        ok(rec5) and rec5.get("tenant") == "acme" and values(log5) == (None, None)
        and "#2 CACHED" in log5 and "#3 CACHED" in log5, (rec5, log5[-2000:]))
T.check("queue mode: the worker read acme's layers.json, no blob, with acme's key",
        ACME_KEYS + "layers.json" in paths(cache5, "GET")
        and not [p for p in paths(cache5, "GET") if "/blobs/" in p]
        and all(key_of(r) == KEYS["acme"] for r in cache5), str(paths(cache5)))
recs5 = lazy_records(R3, "acme")
T.check("queue mode: the cached layers are acme's lazy records under R3/ns/acme/lazy, not blobs",
        layer_hex and all(recs5.get(h) == "s3-ns acme " + SPEC for h in layer_hex)
        and not any(os.path.exists(os.path.join(R3, "blobs", "sha256", h)) for h in layer_hex),
        (recs5, layer_hex))
# a layout outside the config's oci_dirs: refused by the worker's build, naming the allowed
# directory (the worker read policy.oci_dirs; before, it allowed KILN_IMAGES_DIR or kiln's
# own image directory whatever the config said)
other = os.path.join(T.tmp, "other-layout")
shutil.copytree(layout, other)
st, body = s3q.request("POST", "/v1/contexts", token=TOKENS["acme"],
                       body=tar_gz({"Dockerfile": ("FROM oci:%s:1\nRUN true\n" % other).encode()}))
rec6, log6 = s3q.build_to_end({"source": {"context": body.get("context") if st == 201 else ""}},
                              token=TOKENS["acme"]) if st == 201 else ({"status": st}, "")
T.check("queue mode: FROM oci: outside the config's oci_dirs is refused by the worker, naming "
        "the allowed directory", rec6.get("status") == "failed"
        and "is not in a directory server builds may read OCI layouts from" in log6
        and layout in log6, (rec6, log6[-1500:]))
worker.terminate()
worker.wait(timeout=120)
# policy.isolation of the worker's config, with no --isolation: its steps run as kiln serve's
# would, here chroot (host uid 0, no user namespace: the step's uid_map is the host's whole
# range); before, a worker took it from --isolation only and ran the sandbox
with open(wcfg) as f:
    cfg2 = json.load(f)
cfg2.setdefault("policy", {})["isolation"] = "chroot"
wcfg2 = os.path.join(T.tmp, "worker-chroot.config.json")
with open(wcfg2, "w") as f:
    json.dump(cfg2, f)
wlog2 = os.path.join(T.tmp, "worker2.log")
with open(wlog2, "w") as wl2:
    worker2 = T.spawn([KILN, "worker", "--queue", jobs, "--events-queue", events, "--config", wcfg2,
                       "--root", os.path.join(T.tmp, "wroot2"), "--kiln-root", R3, "--wait-seconds", "1"],
                      stdout=wl2, stderr=subprocess.STDOUT, env=wenv)
st, body = s3q.request("POST", "/v1/contexts", token=TOKENS["acme"],
                       body=tar_gz({"Dockerfile": ("FROM oci:%s:1\nRUN cat /proc/self/uid_map\n" % layout)
                                    .encode()}))
rec7, log7 = s3q.build_to_end({"source": {"context": body.get("context") if st == 201 else ""}},
                              token=TOKENS["acme"]) if st == 201 else ({"status": st}, "")
worker2.terminate()
worker2.wait(timeout=120)
with open(wlog2) as f:
    wtext2 = f.read()
T.check("queue mode: a worker without --isolation runs its steps with its config's policy.isolation "
        "(chroot: no user namespace, the host's whole uid range)",
        ok(rec7) and re.search(r"\b0\s+0\s+4294967295\b", log7) is not None, (rec7, log7[-1500:]))
T.check("queue mode: the worker says at start that its config's isolation is chroot",
        "isolation chroot: build steps run as real root" in wtext2, wtext2[-1500:])
s3q.term()
T.done()
