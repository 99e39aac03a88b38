"""Cache mounts in a registry cache (docker-registry on loopback): `--cache-to
type=registry,ref=R` pushes, with the step cache, every RUN --mount=type=cache id the build
used (its packs as blobs of the cache image, its manifest in the image's config);
`--cache-from type=registry,ref=R` on a fresh root restores it before the first step that
runs with it. A second build with the cache unchanged pushes no new blob; another tenant's
namespace cannot use the packs it did not pull itself. Packs are fetched lazily (counted
through a recording proxy in front of the registry): a fresh root whose mounting step is
cached fetches no pack, one whose step runs fetches each pack once, and a push of the cache
to another repository fetches the unused id's packs only because that repository lacks them.
The cache image's layers are not downloaded at import either: a fully cached build on a fresh
root names them (lazy blobs of the cache image), an OCI output then fetches each once."""
import os
import sys
import urllib.request
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilnbuild import make_base, new_context  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402
import awslib  # noqa: E402

RPORT = start_registry()
REG = "127.0.0.1:%d" % RPORT
BASE = make_base(os.path.join(T.tmp, "root-base"))
REF = REG + "/app/cache:1"


def ctx(df, files=None):
    return new_context(T.tmp, df, files)


def build(root, context, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), "--insecure-registry", REG, *args,
                context)


FILL = """FROM %s
RUN --mount=type=cache,id=deps,target=/c sh -c 'cd /c && mkdir -p pkgs && \
head -c 2500000 /dev/urandom > pkgs/big && echo small > pkgs/small && \
ln -s pkgs/small link && sha256sum pkgs/big pkgs/small > SUMS'
""" % BASE
r = build("rootA", ctx(FILL), "--cache-to", "type=registry,ref=%s,mode=max" % REF)
T.check("worker A: the build pushes its cache mount with the registry cache",
        r.returncode == 0 and "cache mount deps: saved" in r.stderr, r.stderr[-2000:])

man = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://%s/v2/app/cache/manifests/1" % REG,
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})))
packs = [l for l in man["layers"] if l["mediaType"] == "application/vnd.kiln.cachemount.pack.v1"]
T.check("the cache image lists the mount's pack as a blob of its own media type",
        len(packs) == 1 and packs[0]["size"] > 2500000, json.dumps(man)[:1500])

CHECK = """FROM %s
RUN --mount=type=cache,id=deps,target=/c sh -c 'cd /c && sha256sum -c SUMS && \
test "$(readlink link)" = pkgs/small'
""" % BASE
r = build("rootB", ctx(CHECK), "--cache-from", "type=registry,ref=%s" % REF)
T.check("worker B (empty root): the cache mount is restored from the registry cache, whole",
        r.returncode == 0 and "cache mount deps: restored" in r.stderr
        and "from the registry cache" in r.stderr, r.stderr[-2000:])

# unchanged: worker B saves the same content again, no new pack in the cache image
r = build("rootB", ctx(CHECK.replace("sha256sum -c", "true && sha256sum -c")),
          "--cache-from", "type=registry,ref=%s" % REF, "--cache-to", "type=registry,ref=%s" % REF)
man2 = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://%s/v2/app/cache/manifests/1" % REG,
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})))
packs2 = [l for l in man2["layers"] if l["mediaType"] == "application/vnd.kiln.cachemount.pack.v1"]
T.check("an unchanged cache mount is saved as unchanged, the same pack kept",
        r.returncode == 0 and "cache mount deps: unchanged" in r.stderr
        and [p["digest"] for p in packs2] == [p["digest"] for p in packs], r.stderr[-2000:])

# a fresh root whose mounting step is a cache hit uses no cache mount: the pushed image keeps
# the imported mount (its manifest and pack), it is not replaced by an empty one
again = ctx(CHECK.replace("sha256sum -c", "true && sha256sum -c"))
r = build("rootC", again, "--cache-from", "type=registry,ref=%s" % REF,
          "--cache-to", "type=registry,ref=%s" % REF)
man3 = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://%s/v2/app/cache/manifests/1" % REG,
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})))
packs3 = [l for l in man3["layers"] if l["mediaType"] == "application/vnd.kiln.cachemount.pack.v1"]
T.check("a build that did not use the cache mount pushes the imported one again, unchanged",
        r.returncode == 0 and "#2 CACHED" in r.stderr and "cache mount deps" not in r.stderr
        and [p["digest"] for p in packs3] == [p["digest"] for p in packs], r.stderr[-1500:])

# a tenant namespace restores only what it pulled itself: the packs are pulled again for it
r = build("rootB", ctx(CHECK.replace("sha256sum -c", "true; sha256sum -c")),
          "--cache-namespace", "tenantA", "--cache-from", "type=registry,ref=%s" % REF)
T.check("a namespaced build on the same root restores from the packs it pulled",
        r.returncode == 0 and "cache mount deps: restored" in r.stderr, r.stderr[-2000:])

# ---- lazy packs, counted through a recording proxy in front of the registry
proxy = awslib.Proxy(RPORT)
PREG = "127.0.0.1:%d" % proxy.port
PREF = PREG + "/app/cache:1"
PACK = packs[0]["digest"]


def pack_gets(path_part=PACK):
    return [q for q in proxy.requests() if q["method"] == "GET" and path_part in q["path"]]


def pbuild(root, context, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), "--insecure-registry", REG,
                "--insecure-registry", PREG, "--progress", "plain", *args, context)


proxy.clear()
r = pbuild("rootP1", again, "--cache-from", "type=registry,ref=" + PREF)
T.check("fresh root, the mounting step cached: the cache image is read, its pack never fetched",
        r.returncode == 0 and "#2 CACHED" in r.stderr and pack_gets("/manifests/")
        and not pack_gets(), str([(q["method"], q["path"]) for q in proxy.requests()]))
proxy.clear()
r = pbuild("rootP2", ctx(CHECK.replace("sha256sum -c", "true  && sha256sum -c")),
           "--cache-from", "type=registry,ref=" + PREF)
T.check("fresh root, the mounting step runs: its pack fetched once, the mount restored whole",
        r.returncode == 0 and "cache mount deps: restored" in r.stderr and len(pack_gets()) == 1,
        r.stderr[-1500:] + str([(q["method"], q["path"]) for q in proxy.requests()]))
proxy.clear()
REF2 = REG + "/app/cache2:1"
r = pbuild("rootP3", again, "--cache-from", "type=registry,ref=" + PREF,
           "--cache-to", "type=registry,ref=" + REF2)
man4 = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://%s/v2/app/cache2/manifests/1" % REG,
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})))
T.check("a cache pushed to another repository carries the unused id's pack, fetched once for it",
        r.returncode == 0 and PACK in [l["digest"] for l in man4["layers"]]
        and len(pack_gets()) == 1, r.stderr[-1500:])
r = build("rootP4", ctx(CHECK.replace("sha256sum -c", "true   && sha256sum -c")),
          "--cache-from", "type=registry,ref=" + REF2)
T.check("that cache restores the mount whole on a fresh root",
        r.returncode == 0 and "cache mount deps: restored" in r.stderr, r.stderr[-1500:])

# ---- the cache image's layers are named at import, fetched (digest-checked) when needed
LZ = ctx("FROM %s\nRUN head -c 300000 /dev/urandom > /big && echo lz > /f\n" % BASE)
r = build("rootL0", LZ, "--cache-to", "type=registry,ref=%s/app/lz:1,mode=max" % REG)
lman = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://%s/v2/app/lz/manifests/1" % REG,
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})))
LAY = [l["digest"] for l in lman["layers"]
       if l["mediaType"] != "application/vnd.kiln.cachemount.pack.v1"]
L1 = os.path.join(T.tmp, "rootL1")


def in_root(root, d, sub="blobs/sha256"):
    return os.path.exists(os.path.join(root, sub, d.split(":")[1]))


proxy.clear()
r = pbuild("rootL1", LZ, "--cache-from", "type=registry,ref=%s/app/lz:1" % PREG)
T.check("fresh root fully cached from a registry cache: its layers named, none downloaded",
        r.returncode == 0 and LAY and "#2 CACHED" in r.stderr
        and "%d layers named to fetch when needed" % len(LAY) in r.stderr
        and not any(pack_gets(d) for d in LAY)
        and all(in_root(L1, d, "lazy") and not in_root(L1, d) for d in LAY),
        r.stderr[-1500:] + str([(q["method"], q["path"]) for q in proxy.requests()]))
proxy.clear()
r = pbuild("rootL1", LZ, "-o", "type=oci,dest=" + os.path.join(T.tmp, "lzout"))
T.check("an OCI output of that build fetches each layer once from the cache image",
        r.returncode == 0 and all(len(pack_gets(d)) == 1 for d in LAY)
        and all(in_root(L1, d) and in_root(os.path.join(T.tmp, "lzout"), d) for d in LAY),
        r.stderr[-1500:] + str([(q["method"], q["path"]) for q in proxy.requests()]))
T.done()
