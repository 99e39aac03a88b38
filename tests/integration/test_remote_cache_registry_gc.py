"""A registry cache image's bound (docker-registry on loopback): `--cache-to
type=registry,ref=R,max-size=S` leaves out the least recently saved cache mounts when the
packs of every id the image carries pass S (the oldest first, its packs out of the image);
`kiln cache gc --cache-to type=registry,ref=R,max-size=S` rewrites the image the same way
and deletes the old manifest (a registry with deletes off keeps it, and the output says its
blobs go at the registry's own garbage collection; gc pushes the rewritten image by digest,
re-reads the tag and moves it with the next request, and writes no tag when the re-read
finds another image); a build on a fresh root after gc still
restores what was kept and hits the layer cache; two concurrent saves to one ref leave a
readable cache image (every blob its config names is in the registry, a build restores from
it)."""
import json
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, new_context  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402
from registry_fixtures import FaultProxy  # noqa: E402

RPORT = start_registry()
REG = "127.0.0.1:%d" % RPORT
BASE = make_base(os.path.join(T.tmp, "root-base"))
REF = REG + "/app/cache:1"
PACK_MT = "application/vnd.kiln.cachemount.pack.v1"
ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def get(url, accept=ACCEPT):
    return urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}))


def image(reg=REG, repo="app/cache", tag="1"):
    """(manifest, config, manifest digest) of the cache image."""
    r = get("http://%s/v2/%s/manifests/%s" % (reg, repo, tag))
    digest = r.headers["Docker-Content-Digest"]
    man = json.load(r)
    cfg = json.load(get("http://%s/v2/%s/blobs/%s" % (reg, repo, man["config"]["digest"]), "*/*"))
    return man, cfg, digest


def ids(cfg):
    """The cache ids in the image, by the sums their manifests name (one file per id here)."""
    return sorted(cfg.get("kiln.mounts.v1", {}).keys())


def build(root, df, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), "--insecure-registry", REG,
                "--progress", "plain", *args, new_context(T.tmp, df))


def fill(cid, salt=""):
    """A Dockerfile filling cache id cid with 1,000,000 random bytes and their sum."""
    return """FROM %s
RUN --mount=type=cache,id=%s,target=/c sh -c 'echo %s%s; head -c 1000000 /dev/urandom > /c/f && \
sha256sum /c/f > /c/SUMS'
""" % (BASE, cid, cid, salt)


def check(cid, salt=""):
    return """FROM %s
RUN --mount=type=cache,id=%s,target=/c sh -c 'echo check%s; sha256sum -c /c/SUMS'
""" % (BASE, cid, salt)


CAP = "type=registry,ref=%s,max-size=2500K" % REF
prev = None
for cid in ("a", "b", "c"):
    r = build("root-" + cid, fill(cid), "--cache-from", "type=registry,ref=" + REF,
              "--cache-to", CAP)
    T.check("build filling cache id %s saves to the registry cache" % cid,
            r.returncode == 0 and "cache mount %s: saved" % cid in r.stderr, r.stderr[-2000:])
    time.sleep(1.1)  # the saved times have one-second steps: a, b, c in this order
man, cfg, d1 = image()
saved = cfg.get("kiln.mounts.saved.v1", {})
packs = [l for l in man["layers"] if l["mediaType"] == PACK_MT]
T.check("3 x 1 MB past max-size=2500K: the oldest id (a) left out, b and c kept with their times",
        len(ids(cfg)) == 2 and len(packs) == 2 and sorted(saved) == ids(cfg)
        and "1 least recently saved cache mounts left out" in r.stderr,
        (ids(cfg), saved, r.stderr[-1500:]))
r = build("root-check-a", check("a"), "--cache-from", "type=registry,ref=" + REF)
T.check("a build mounting the evicted id finds it empty (nothing restored)",
        r.returncode != 0 and "cache mount a: restored" not in r.stderr, r.stderr[-1500:])
r = build("root-check-b", check("b"), "--cache-from", "type=registry,ref=" + REF)
T.check("a build mounting a kept id restores it whole",
        r.returncode == 0 and "cache mount b: restored" in r.stderr, r.stderr[-1500:])

# ---- kiln cache gc of the registry cache
r = kiln("cache", "gc", "--insecure-registry", REG, "--dry-run", "--cache-to",
         "type=registry,ref=%s,max-size=1500K" % REF)
man_d, _, d_dry = image()
T.check("gc --dry-run: reports one id to leave out, writes nothing",
        r.returncode == 0 and "1 would be left out" in r.stdout and d_dry == d1,
        r.stdout + r.stderr)
r = kiln("cache", "gc", "--insecure-registry", REG, "--cache-to",
         "type=registry,ref=%s,max-size=1500K" % REF)
man2, cfg2, d2 = image()
packs2 = [l["digest"] for l in man2["layers"] if l["mediaType"] == PACK_MT]
T.check("gc max-size=1500K: b (older) left out, c kept, the image rewritten under the tag",
        r.returncode == 0 and "1 left out" in r.stdout and len(ids(cfg2)) == 1 and d2 != d1
        and len(packs2) == 1 and packs2[0] in [p["digest"] for p in packs]
        and "old manifest deleted" in r.stdout, r.stdout + r.stderr)
try:
    get("http://%s/v2/app/cache/manifests/%s" % (REG, d1))
    old_gone = False
except urllib.error.HTTPError as e:
    old_gone = e.code == 404
T.check("the old manifest is deleted from the registry (DELETE allowed)", old_gone)
layers2 = [l for l in man2["layers"] if l["mediaType"] != PACK_MT]
T.check("the layer cache's layers and entries are kept as they were",
        layers2 == [l for l in man["layers"] if l["mediaType"] != PACK_MT]
        and cfg2["kiln.cache.v1"] == cfg["kiln.cache.v1"], json.dumps(man2)[:800])
r = kiln("cache", "gc", "--insecure-registry", REG, "--cache-to",
         "type=registry,ref=%s,max-size=1500K" % REF)
T.check("gc again: nothing to rewrite, the tag unchanged",
        r.returncode == 0 and "nothing to rewrite" in r.stdout and image()[2] == d2,
        r.stdout + r.stderr)
r = build("root-after-gc", check("c"), "--cache-from", "type=registry,ref=" + REF)
T.check("a build on a fresh root after gc restores the kept id c whole",
        r.returncode == 0 and "cache mount c: restored" in r.stderr, r.stderr[-1500:])
r = build("root-after-gc2", fill("c"), "--cache-from", "type=registry,ref=" + REF)
T.check("...and the step cache kept by gc is hit (c's filling step CACHED on a fresh root)",
        r.returncode == 0 and "CACHED" in r.stderr and "cache mount c" not in r.stderr,
        r.stderr[-1500:])
r = build("root-after-gc3", check("b"), "--cache-from", "type=registry,ref=" + REF)
T.check("the id gc left out is not restored",
        r.returncode != 0 and "cache mount b: restored" not in r.stderr, r.stderr[-1500:])

# ---- a registry with deletes off: the old manifest stays, the output says why
NPORT = start_registry(delete=False)
NREG = "127.0.0.1:%d" % NPORT
NREF = NREG + "/app/cache:1"
for cid in ("x", "y"):
    r = kiln("build", "--root", os.path.join(T.tmp, "root-n" + cid), "--insecure-registry", NREG,
             "--progress", "plain", "--cache-from", "type=registry,ref=" + NREF, "--cache-to",
             "type=registry,ref=" + NREF, new_context(T.tmp, fill(cid)))
    T.check("no-delete registry: build %s saves" % cid, r.returncode == 0, r.stderr[-1500:])
    time.sleep(1.1)
_, _, nd1 = image(NREG)
# gc through a proxy logging its requests; first with the tag answered as another image at its
# re-read (a save that landed meanwhile): nothing may be tagged then
proxy = FaultProxy(NPORT)
PX = "127.0.0.1:%d" % proxy.port
cur = get("http://%s/v2/app/cache/manifests/1" % NREG).read()
TAG_GET = r"/v2/app/cache/manifests/1$"
proxy.rules = [{"method": "GET", "path": TAG_GET, "action": ("header", "X-Kiln-Test", "1"), "count": 1},
               {"method": "GET", "path": TAG_GET, "action": ("body", ACCEPT, cur + b" "), "count": 1}]
r = kiln("cache", "gc", "--insecure-registry", PX, "--cache-to",
         "type=registry,ref=%s/app/cache:1,max-size=1200K" % PX)
T.check("a save between gc's read and its re-read of the tag: gc fails saying so, the tag unchanged",
        r.returncode != 0 and "changed while it was collected" in r.stderr and image(NREG)[2] == nd1,
        r.stdout + r.stderr)
T.check("...and it never PUT the tag (the rewritten image went by digest only)",
        not [q for q in proxy.log if q[0] == "PUT" and q[1].endswith("/manifests/1")], proxy.log[-6:])
proxy.rules, proxy.log[:] = [], []
r = kiln("cache", "gc", "--insecure-registry", PX, "--cache-to",
         "type=registry,ref=%s/app/cache:1,max-size=1200K" % PX)
proxy.close()
_, ncfg, nd2 = image(NREG)
kept_old = get("http://%s/v2/app/cache/manifests/%s" % (NREG, nd1)).status == 200
T.check("deletes off: the image rewritten, the old manifest left with the registry's own gc named",
        r.returncode == 0 and nd2 != nd1 and len(ids(ncfg)) == 1 and kept_old
        and "registry's own garbage collection" in r.stdout, r.stdout + r.stderr)
log = [q[:2] for q in proxy.log]
by_digest = [i for i, q in enumerate(log) if q == ("PUT", "/v2/app/cache/manifests/" + nd2)]
tag_put = [i for i, q in enumerate(log) if q == ("PUT", "/v2/app/cache/manifests/1")]
T.check("gc pushes the rewritten image by digest, then re-reads the tag and moves it with the very "
        "next request (one PUT)",
        len(by_digest) == 1 and len(tag_put) == 1 and by_digest[0] < tag_put[0] - 1 and
        log[tag_put[0] - 1] == ("GET", "/v2/app/cache/manifests/1"), log)

# ---- two concurrent saves of one ref
CREF = REG + "/app/conc:1"
results = {}


def save(cid):
    results[cid] = build("root-conc-" + cid, fill(cid, "-conc"),
                         "--cache-to", "type=registry,ref=" + CREF)


threads = [threading.Thread(target=save, args=(c,)) for c in ("p", "q")]
for t in threads:
    t.start()
for t in threads:
    t.join()
T.check("two concurrent saves to one ref both succeed",
        all(results[c].returncode == 0 for c in results),
        [results[c].stderr[-800:] for c in results])
cman, ccfg, _ = image(repo="app/conc")
missing = []
for m in ccfg.get("kiln.mounts.v1", {}).values():
    for d, _size in m["blobs"]:
        try:
            urllib.request.urlopen(urllib.request.Request(
                "http://%s/v2/app/conc/blobs/%s" % (REG, d), method="HEAD"))
        except urllib.error.HTTPError:
            missing.append(d)
T.check("the cache image left is one complete save: one id, every pack it names in the registry",
        len(ids(ccfg)) == 1 and not missing, (ids(ccfg), missing))
r1 = build("root-conc-r1", check("p", "-conc"), "--cache-from", "type=registry,ref=" + CREF)
r2 = build("root-conc-r2", check("q", "-conc"), "--cache-from", "type=registry,ref=" + CREF)
T.check("a fresh root restores the winner's cache mount whole (exactly one of p, q)",
        (r1.returncode == 0) != (r2.returncode == 0)
        and ("cache mount p: restored" in r1.stderr or "cache mount q: restored" in r2.stderr),
        r1.stderr[-800:] + r2.stderr[-800:])
r = kiln("cache", "gc", "--insecure-registry", REG, "--cache-to",
         "type=registry,ref=" + CREF)
T.check("gc of the concurrently saved cache reads it whole (nothing to rewrite)",
        r.returncode == 0 and "nothing to rewrite" in r.stdout, r.stdout + r.stderr)
T.done()
