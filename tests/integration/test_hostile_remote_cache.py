"""Hostile remote caches (S3 in fauxqs): a cache mount manifest planted in the bucket is
untrusted input. Paths with "..", absolute paths and a path through a link are refused, a
blob whose bytes do not match its digest, a manifest naming a missing blob or one larger
than max-size is not restored: each is a warning naming the cache id, the S3 location and
what is wrong, the step runs with an empty cache, and the host marker is neither read nor
written. A namespaced (tenant) build reads only keys under kiln-ns/<tenant>/ whatever prefix
it asks for, and a server build may not choose the S3 endpoint. The layer cache: a layer a fully
cached build names without fetching (a lazy blob) that S3 answers with other bytes fails the
export needing it, naming the blob and its source. A tenant's (cache namespace's) lazy
blobs are its own records with its own source: a tenant's index naming another tenant's layer
is named lazily, but its bytes (an export, a RUN step on the unpacked tree) are fetched from
that tenant's own prefix even when the shared root holds them, and fail naming the blob when
the prefix lacks them; a fully cached tenant build on a fresh root downloads no layer; a lazy
fetch whose source is gone fails naming the blob, leaving nothing half-written; a namespace's
record naming another namespace's source is refused."""
import hashlib
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilnbuild import HostMarker, make_base, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402
import awslib  # noqa: E402

BUCKET = "hcache"
direct, proxy, ENV = awslib.start_services(T)
awslib.s3_create_bucket(direct, BUCKET)
os.chmod(T.tmp, 0o711)
BASE = make_base(os.path.join(T.tmp, "root-base"))
HM = HostMarker(prefix="RCACHE-MARKER-")
N = [0]


def put(key, data):
    awslib.s3_put(direct, BUCKET, key, data)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def plant(prefix, cid, entries, blobs):
    """A manifest for cache id cid under prefix naming blobs ({bytes: uploaded?})."""
    table = []
    for data, upload in blobs:
        table.append(["sha256:" + sha(data), len(data)])
        if upload:
            put("%s/blobs/sha256/%s" % (prefix, sha(data)), data)
    man = {"kiln.cachemount.v1": 1, "blobs": table, "entries": entries}
    put("%s/mounts/%s.json" % (prefix, sha(cid.encode())), json.dumps(man).encode())


def fentry(path, data, blob=0, off=0):
    return {"p": path, "t": "f", "m": 420, "u": 0, "g": 0, "mt": 1, "s": len(data),
            "h": "sha256:" + sha(data), "c": [[blob, off, len(data)]]}


def build(prefix, cid, check, *extra, root=None, spec=""):
    """Builds a step mounting cache cid at /c running check; returns the result."""
    N[0] += 1
    d = os.path.join(T.tmp, "ctx%d" % N[0])
    os.makedirs(d)
    write_tree(d, {"Dockerfile": "FROM %s\nRUN --mount=type=cache,id=%s,target=/c sh -c '%s'\n"
                   % (BASE, cid, check)})
    return kiln("build", "--root", root or os.path.join(T.tmp, "root%d" % N[0]), *extra,
                "--cache-from", "type=s3,bucket=%s,prefix=%s%s" % (BUCKET, prefix, spec), d, env=ENV)


EMPTY = 'test -z "$(ls -A /c)"'
PAYLOAD = ("planted " + HM.mark + "\n").encode()
rel_w = os.path.relpath(HM.w, "/")
cases = [
    ("dotdot", [fentry("../../../../../../../../%s/planted" % rel_w, PAYLOAD)],
     '"..\" component'),
    ("absolute", [fentry("/" + rel_w + "/planted", PAYLOAD)], "is absolute"),
    ("throughlink", [{"p": "esc", "t": "l", "m": 511, "u": 0, "g": 0, "mt": 1, "l": HM.w},
                     fentry("esc/planted", PAYLOAD)],
     "link esc: other entries are under it"),
]
for name, entries, want in cases:
    plant("h-" + name, "evil", entries, [(PAYLOAD, True)])
    r = build("h-" + name, "evil", EMPTY)
    msg = "WARNING: cache mount evil from s3://%s/h-%s" % (BUCKET, name)
    T.check("%s: the build runs with an empty cache" % name, r.returncode == 0, r.stderr[-1500:])
    T.check("%s: the warning names the cache, the location and the path" % name,
            msg in r.stderr and want in r.stderr and "runs with the cache empty" in r.stderr,
            r.stderr[-1500:])
    T.check("%s: the host marker is neither read nor written" % name,
            HM.untouched() and HM.mark not in r.stdout + r.stderr, str(HM.state()))

# a blob whose bytes are not its digest's
plant("h-digest", "evil", [fentry("x", PAYLOAD)], [(PAYLOAD, False)])
put("h-digest/blobs/sha256/%s" % sha(PAYLOAD), b"other bytes of the same claim....")
r = build("h-digest", "evil", EMPTY)
T.check("a blob not matching its digest: warning, empty cache",
        r.returncode == 0 and "does not match its digest" in r.stderr, r.stderr[-1500:])

# a manifest naming a blob that is missing (a writer that died before its blobs): not used
plant("h-missing", "evil", [fentry("a", b"aaaa"), fentry("b", PAYLOAD, blob=1)],
      [(b"aaaa", True), (PAYLOAD, False)])
r = build("h-missing", "evil", EMPTY)
T.check("a manifest naming a missing blob: warning naming it, nothing half restored",
        r.returncode == 0 and "/blobs/sha256/%s: missing" % sha(PAYLOAD) in r.stderr,
        r.stderr[-1500:])

# sizes: a manifest claiming more than max-size is refused before anything is fetched
plant("h-big", "evil", [fentry("big", b"x" * 3000)], [(b"x" * 3000, True)])
proxy.clear()
r2 = build("h-big", "evil", EMPTY, spec=",max-size=1K")
T.check("a manifest over max-size=1K is refused naming the bound, nothing fetched",
        r2.returncode == 0 and "max-size of 1024 bytes" in r2.stderr
        and not [q for q in proxy.requests()[-3:] if "/blobs/" in q["path"]], r2.stderr[-1500:])

# tenants: a namespaced build reads only kiln-ns/<its name>/...
plant("shared", "npm", [fentry("stolen", PAYLOAD)], [(PAYLOAD, True)])
plant("kiln-ns/tenantB/shared", "npm", [fentry("stolen", PAYLOAD)], [(PAYLOAD, True)])
proxy.clear()
r = build("shared", "npm", EMPTY, "--cache-namespace", "tenantA")
paths = [q["path"] for q in proxy.requests()]
T.check("tenant A with prefix=shared: its step sees an empty cache (not the planted ones)",
        r.returncode == 0 and HM.mark not in r.stdout + r.stderr, r.stderr[-1500:])
T.check("tenant A read only keys under kiln-ns/tenantA/",
        paths and all(p.startswith("/%s/kiln-ns/tenantA/shared/" % BUCKET) for p in paths),
        str(paths))
proxy.clear()
r = build("kiln-ns/tenantB/shared", "npm", EMPTY, "--cache-namespace", "tenantA")
paths = [q["path"] for q in proxy.requests()]
T.check("tenant A naming tenant B's prefix still reads under kiln-ns/tenantA/ only",
        r.returncode == 0 and paths
        and all(p.startswith("/%s/kiln-ns/tenantA/" % BUCKET) for p in paths), str(paths))
r = build("shared", "npm", "test -f /c/stolen")
T.check("(control) a build without a namespace restores the planted cache of prefix=shared",
        r.returncode == 0 and "cache mount npm: restored" in r.stderr, r.stderr[-1500:])

# the layer cache: a fully cached build leaves the layers it names in S3 (lazy blobs); their
# bytes are checked when something needs them, and a tenant's index never reaches another's
def get(key):
    with urllib.request.urlopen("%s/%s/%s" % (direct, BUCKET, key), timeout=30) as resp:
        return resp.read()


def delete(key):
    req = urllib.request.Request("%s/%s/%s" % (direct, BUCKET, key), method="DELETE")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def no_layout(name):
    """Whether T.tmp/name holds no file (a failed OCI output: no layout, no blob)."""
    return not any(files for _, _, files in os.walk(os.path.join(T.tmp, name)))


def refused(r, hexd, source, out, root, ns):
    """Whether build r failed naming blob hexd and source, wrote no output out and did not
    make the blob namespace ns's."""
    return (r.returncode != 0 and "sha256:" + hexd in r.stderr and source in r.stderr
            and no_layout(out) and not os.path.exists(os.path.join(root, "ns", ns, "blobs", hexd)))


def read_lazy(root, ns, hexd):
    """The lazy blob record of namespace ns for blob hexd under root, or ""."""
    try:
        with open(os.path.join(root, "ns", ns, "lazy", hexd)) as f:
            return json.load(f).get("source", "")
    except (OSError, ValueError):
        return ""


LDF = "FROM %s\nRUN echo layer-%s > /f && cat /f\n"


def lbuild(root, tag, *extra):
    d = os.path.join(T.tmp, "lctx-" + tag)
    if not os.path.isdir(d):
        os.makedirs(d)
        write_tree(d, {"Dockerfile": LDF % (BASE, tag)})
    return kiln("build", "--root", os.path.join(T.tmp, root), "--progress", "plain", *extra, d,
                env=ENV)


r = lbuild("lroot1", "x", "--cache-to", "type=s3,bucket=%s,prefix=lz" % BUCKET)
idx = json.loads(get("lz/layers.json")) if r.returncode == 0 else {"layers": [{"digest": "x:"}]}
lhex = idx["layers"][0]["digest"].split(":")[1]
good = get("lz/blobs/sha256/" + lhex) if r.returncode == 0 else b""
bad = bytearray(good)
bad[len(bad) // 2] ^= 0xFF
put("lz/blobs/sha256/" + lhex, bytes(bad))
r = lbuild("lroot2", "x", "--cache-from", "type=s3,bucket=%s,prefix=lz" % BUCKET)
T.check("layer cache whose layer S3 answers with other bytes: the fully cached build names it "
        "without fetching it (a lazy blob)", r.returncode == 0 and "#2 CACHED" in r.stderr and
        os.path.exists(os.path.join(T.tmp, "lroot2", "lazy", lhex)), r.stderr[-1500:])
r = lbuild("lroot2", "x", "-o", "type=oci,dest=" + os.path.join(T.tmp, "lout2"))
T.check("an OCI output of it fetches the layer: fails naming the blob, its S3 source and the "
        "mismatch; nothing of it kept",
        r.returncode != 0 and "sha256:" + lhex in r.stderr and "does not match" in r.stderr
        and "bucket=%s,prefix=lz" % BUCKET in r.stderr
        and not os.path.exists(os.path.join(T.tmp, "lroot2", "blobs", "sha256", lhex)),
        r.stderr[-1500:])
# tenant B's layer cache; tenant A's index (under its own keys) names B's layers, which the
# shared root already holds (B built there): A's build must not use them without A's prefix
# serving their bytes
r = lbuild("lshared", "b", "--cache-namespace", "tenantB", "--cache-to",
           "type=s3,bucket=%s,prefix=p" % BUCKET)
bidx = get("kiln-ns/tenantB/p/layers.json") if r.returncode == 0 else b"{}"
bhex = json.loads(bidx).get("layers", [{"digest": "x:"}])[0]["digest"].split(":")[1]
put("kiln-ns/tenantA/p/layers.json", bidx)
r = lbuild("lshared", "b", "--cache-namespace", "tenantA", "--cache-from",
           "type=s3,bucket=%s,prefix=p" % BUCKET)
LSH = os.path.join(T.tmp, "lshared")
T.check("tenant A's index naming tenant B's layer (in the shared root, not in A's prefix): A's "
        "fully cached build names it as A's own lazy blob (A's source), not as A's blob",
        r.returncode == 0 and "#2 CACHED" in r.stderr
        and "s3-ns tenantA" in read_lazy(LSH, "tenantA", bhex)
        and not os.path.exists(os.path.join(LSH, "lazy", bhex))
        and not os.path.exists(os.path.join(LSH, "ns", "tenantA", "blobs", bhex))
        and os.path.exists(os.path.join(LSH, "blobs", "sha256", bhex)), r.stderr[-1500:])
r = lbuild("lshared", "b", "--cache-namespace", "tenantA", "--cache-from",
           "type=s3,bucket=%s,prefix=p" % BUCKET, "-o", "type=oci,dest=" + os.path.join(T.tmp, "lA"))
T.check("an OCI output of A's build needs the layer: the shared root's bytes are not A's, A's "
        "prefix lacks them: fails naming the blob and A's prefix, no output, A not given the blob",
        refused(r, bhex, "kiln-ns/tenantA/p", "lA", LSH, "tenantA"), r.stderr[-1500:])
d = os.path.join(T.tmp, "lctx-b-run")
write_tree(d, {"Dockerfile": LDF % (BASE, "b") + "RUN cat /f > /g\n"})
r = kiln("build", "--root", LSH, "--progress", "plain", "--cache-namespace", "tenantA",
         "--cache-from", "type=s3,bucket=%s,prefix=p" % BUCKET, d, env=ENV)
T.check("a RUN step of A's on top of it (B's unpacked tree is in the shared root): fails naming "
        "the blob, never mounts B's tree",
        r.returncode != 0 and "sha256:" + bhex in r.stderr and "#3 DONE" not in r.stderr
        and not os.path.exists(os.path.join(LSH, "ns", "tenantA", "blobs", bhex)), r.stderr[-1500:])
r = lbuild("lshared", "b", "--cache-namespace", "tenantB", "-o",
           "type=oci,dest=" + os.path.join(T.tmp, "lB"))
T.check("(control) tenant B's own build of it exports its layer",
        r.returncode == 0 and os.path.exists(os.path.join(T.tmp, "lB", "blobs", "sha256", bhex)),
        r.stderr[-1500:])

# two tenants on a fresh root (an ephemeral worker): A's fully cached build downloads no layer
# (A's own lazy records); B's index naming A's layer digest never reaches A's record or bytes
r = lbuild("lA0", "a", "--cache-namespace", "tenantA", "--cache-to",
           "type=s3,bucket=%s,prefix=q" % BUCKET)
aidx = get("kiln-ns/tenantA/q/layers.json") if r.returncode == 0 else b"{}"
ahex = json.loads(aidx).get("layers", [{"digest": "x:"}])[0]["digest"].split(":")[1]
FR = os.path.join(T.tmp, "lfresh")
r = lbuild("lfresh", "a", "--cache-namespace", "tenantA", "--cache-from",
           "type=s3,bucket=%s,prefix=q" % BUCKET)
T.check("tenant A's fully cached build on a fresh root downloads no layer: A's own lazy record",
        r.returncode == 0 and "#2 CACHED" in r.stderr and "1 layers named to fetch" in r.stderr
        and not os.path.exists(os.path.join(FR, "blobs", "sha256", ahex))
        and "kiln-ns/tenantA" not in read_lazy(FR, "tenantA", ahex)  # the spec, not the key
        and "s3-ns tenantA type=s3,bucket=%s,prefix=q" % BUCKET in read_lazy(FR, "tenantA", ahex),
        r.stderr[-1500:])
put("kiln-ns/tenantB/q/layers.json", aidx)
r = lbuild("lfresh", "a", "--cache-namespace", "tenantB", "--cache-from",
           "type=s3,bucket=%s,prefix=q" % BUCKET, "-o", "type=oci,dest=" + os.path.join(T.tmp, "fB1"))
T.check("tenant B's index naming A's layer digest: B's export fetches from B's prefix only, fails "
        "naming the blob; A's record gives B nothing (no blob in the root, A's record unchanged)",
        refused(r, ahex, "kiln-ns/tenantB/q", "fB1", FR, "tenantB")
        and not os.path.exists(os.path.join(FR, "blobs", "sha256", ahex))
        and "s3-ns tenantA" in read_lazy(FR, "tenantA", ahex)
        and "s3-ns tenantB" in read_lazy(FR, "tenantB", ahex), r.stderr[-1500:])
r = lbuild("lfresh", "a", "--cache-namespace", "tenantA", "-o",
           "type=oci,dest=" + os.path.join(T.tmp, "fA"))
T.check("A's export fetches A's layer from A's prefix (digest checked): A's blob now",
        r.returncode == 0 and os.path.exists(os.path.join(T.tmp, "fA", "blobs", "sha256", ahex))
        and os.path.exists(os.path.join(FR, "ns", "tenantA", "blobs", ahex)), r.stderr[-1500:])
r = lbuild("lfresh", "a", "--cache-namespace", "tenantB", "-o",
           "type=oci,dest=" + os.path.join(T.tmp, "fB2"))
T.check("B again, A's bytes now in the shared root: still fails naming the blob (B's prefix must "
        "serve them), no output",
        refused(r, ahex, "kiln-ns/tenantB/q", "fB2", FR, "tenantB"), r.stderr[-1500:])
# a record of B's naming A's source (planted: only kiln writes there): the fetch refuses a
# source of another namespace, naming both, and never reads A's prefix for B
with open(os.path.join(FR, "ns", "tenantA", "lazy", ahex)) as f:
    arec = f.read()
with open(os.path.join(FR, "ns", "tenantB", "lazy", ahex), "w") as f:
    f.write(arec)
r = lbuild("lfresh", "a", "--cache-namespace", "tenantB", "-o",
           "type=oci,dest=" + os.path.join(T.tmp, "fB3"))
T.check("a record of tenant B's naming tenant A's source: refused naming the blob and both "
        "namespaces, no output", refused(r, ahex, "s3-ns tenantA", "fB3", FR, "tenantB")
        and "a source of cache namespace tenantA, not of tenantB" in r.stderr, r.stderr[-1500:])
# the source gone: A's layer deleted from A's prefix after a fully cached build named it
r = lbuild("lgone", "a", "--cache-namespace", "tenantA", "--cache-from",
           "type=s3,bucket=%s,prefix=q" % BUCKET)
delete("kiln-ns/tenantA/q/blobs/sha256/" + ahex)
GR = os.path.join(T.tmp, "lgone")
r2 = lbuild("lgone", "a", "--cache-namespace", "tenantA", "-o",
            "type=oci,dest=" + os.path.join(T.tmp, "gA"))
T.check("a lazy fetch whose source is gone fails naming the blob and the source; nothing "
        "half-written (no output, no blob, no temp file)",
        r.returncode == 0 and r2.returncode != 0 and "sha256:" + ahex in r2.stderr
        and "missing" in r2.stderr and "kiln-ns/tenantA/q" in r2.stderr
        and no_layout("gA")
        and not os.path.exists(os.path.join(GR, "blobs", "sha256", ahex))
        and os.listdir(os.path.join(GR, "tmp")) == [], r.stderr[-800:] + r2.stderr[-1500:])

# the endpoint of a server build is the operator's
r = kiln("build", "--server-mode", "--root", os.path.join(T.tmp, "root-srv"), "--cache-from",
         "type=s3,bucket=%s,endpoint=http://127.0.0.1:9" % BUCKET, os.path.join(T.tmp, "ctx1"),
         env=ENV)
T.check("server mode: endpoint= is refused naming the option",
        r.returncode != 0 and "endpoint= is not allowed in a server build" in r.stderr,
        r.stderr[-800:])
T.check("the host marker is untouched after every case", HM.untouched())
T.done()
