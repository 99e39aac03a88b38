"""Hostile registry caches, lazily fetched packs: a cache id's pack is fetched from the
registry when a step mounts the id (not at --cache-from import), through a proxy that
answers the pack's GET with other bytes of the same size (not its digest) or with bytes of
another size. Either is a warning naming the cache id, the registry cache and the pack, the
step runs with an empty cache (a longer answer is cut at the pack's size), nothing of the bad bytes is kept in the root (store or
mount) and the host marker is neither read nor written. A pack answered with an error status
(500, 404, 401) is the same warning naming the status; a second --cache-from is tried when the
first is unreachable or cannot give the pack, and the cache then comes from the second. (A manifest naming paths with ".."
or through a link goes through the same decode and restore as the S3 cache's, covered by
test_hostile_remote_cache.) The cache image's layers are named at import (lazy blobs): a layer
answered with other bytes fails the output needing it naming the blob, nothing of it kept; a
tenant's output fetches the layer itself even when another tenant's fetch put its bytes in the
shared root."""
import json
import os
import socket
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilnbuild import HostMarker, make_base, new_context  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402
import awslib  # noqa: E402

RPORT = start_registry()
REG = "127.0.0.1:%d" % RPORT
os.chmod(T.tmp, 0o711)
BASE = make_base(os.path.join(T.tmp, "root-base"))
HM = HostMarker(prefix="RPACK-MARKER-")
REF = REG + "/hostile/cache:1"
GOOD = "good-" + os.urandom(6).hex()

FILL = """FROM %s
RUN --mount=type=cache,id=deps,target=/c sh -c 'echo %s > /c/f && head -c 4000 /dev/zero > /c/z'
""" % (BASE, GOOD)
r = kiln("build", "--root", os.path.join(T.tmp, "rootA"), "--insecure-registry", REG,
         "--cache-to", "type=registry,ref=%s,mode=max" % REF, new_context(T.tmp, FILL))
T.check("the cache image with its cache mount is pushed", r.returncode == 0
        and "cache mount deps: saved" in r.stderr, r.stderr[-1500:])
man = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://%s/v2/hostile/cache/manifests/1" % REG,
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})))
pack = [l for l in man["layers"] if l["mediaType"] == "application/vnd.kiln.cachemount.pack.v1"][0]
PACK, SIZE = pack["digest"], pack["size"]

proxy = awslib.Proxy(RPORT)
PREG = "127.0.0.1:%d" % proxy.port
EMPTY = 'test -z "$(ls -A /c)"'
N = [0]


def build_from(registries, check):
    """A build on a fresh root with a --cache-from of the cache image at each registry, in
    order, whose step mounts the cache id and runs check."""
    N[0] += 1
    root = os.path.join(T.tmp, "rootP%d" % N[0])
    df = "FROM %s\nRUN --mount=type=cache,id=deps,target=/c sh -c '%s'\n" % (BASE, check)
    args = ["build", "--root", root, "--progress", "plain"]
    for reg in registries:
        args += ["--insecure-registry", reg,
                 "--cache-from", "type=registry,ref=%s/hostile/cache:1" % reg]
    return kiln(*args, new_context(T.tmp, df)), root


def build(check):
    return build_from([PREG], check)


def kept(root, needle):
    """Files under root holding needle (the bad bytes kept anywhere: store, mount)."""
    g = subprocess.run(["grep", "-rlsF", needle, root], capture_output=True, text=True)
    return g.stdout.split()


W = "WARNING: cache mount deps from the registry cache: "
DIGEST = W + "blob %s from %s/hostile/cache: content does not match its digest" % (PACK, PREG)
LARGER = W + "response from http://%s/v2/hostile/cache/blobs/%s larger than %d bytes: " % (
    PREG, PACK, SIZE)
bad = ("planted " + HM.mark + " ").ljust(SIZE, "x")
cases = [
    ("other bytes, same size", bad, DIGEST),
    ("fewer bytes", bad[:SIZE // 2], DIGEST),
    ("more bytes", bad + "y" * 4096, LARGER),
]
for name, body, want in cases:
    proxy.clear()
    proxy.add_rule(lambda m, p, h: m == "GET" and PACK in p, 200, body)
    r, root = build(EMPTY)
    gets = [q for q in proxy.requests() if q["method"] == "GET" and PACK in q["path"]]
    T.check("%s: the pack is fetched when the step mounts the id (%d GET)" % (name, len(gets)),
            len(gets) >= 1, str([(q["method"], q["path"]) for q in proxy.requests()]))
    T.check("%s: the build runs, the step with an empty cache" % name, r.returncode == 0,
            r.stderr[-1500:])
    T.check("%s: the warning names the cache id, the registry cache and what is wrong" % name,
            [l for l in r.stderr.splitlines() if l.startswith(want)
             and l.endswith(" (the step runs with the cache empty)")], r.stderr[-1500:])
    if want == LARGER:  # the system error text once, not "File too large: File too large"
        warn = [l for l in r.stderr.splitlines() if l.startswith(LARGER)]
        T.check("%s: the warning gives the system error once" % name,
                len(warn) == 1 and warn[0].count("File too large") == 1, str(warn))
    T.check("%s: nothing of the bad bytes is kept in the root" % name,
            not kept(root, HM.mark), str(kept(root, HM.mark)))
    T.check("%s: the host marker is neither read nor written" % name,
            HM.untouched() and HM.mark not in r.stdout, str(HM.state()))

# an error status for the pack (a registry that lost it, broke, or wants other credentials):
# the step runs with the cache empty, the warning names the pack, where from and the status
ERRBODY = "planted-error-" + os.urandom(6).hex()
for status in (500, 404, 401):
    proxy.clear()
    proxy.add_rule(lambda m, p, h: m == "GET" and PACK in p, status,
                   '{"errors":[{"code":"X","message":"%s"}]}' % ERRBODY)
    r, root = build(EMPTY)
    name = "pack answered %d" % status
    warn = [l for l in r.stderr.splitlines() if l.startswith(W)]
    T.check("%s: the build runs, the step with an empty cache" % name, r.returncode == 0,
            r.stderr[-1500:])
    T.check("%s: one warning naming the pack, the registry cache and the status" % name,
            len(warn) == 1 and PACK in warn[0] and "%s/hostile/cache" % PREG in warn[0]
            and str(status) in warn[0]
            and warn[0].endswith(" (the step runs with the cache empty)"), r.stderr[-1500:])
    print("# " + " | ".join(warn))
    T.check("%s: the warning says no system error twice" % name,
            all(l.count(": ") < 2 or l.split(": ")[-1] != l.split(": ")[-2] for l in warn),
            str(warn))
    T.check("%s: nothing of the answer is kept in the root" % name,
            not kept(root, ERRBODY), str(kept(root, ERRBODY)))
    T.check("%s: the host marker is neither read nor written" % name,
            HM.untouched() and HM.mark not in r.stdout, str(HM.state()))

# a second --cache-from is tried when the first cannot give the pack: the first unreachable
# (nothing listens), or the first broken (its pack answered 500); the cache then comes from
# the second, seen passing through a proxy of its own
proxy2 = awslib.Proxy(RPORT)
PREG2 = "127.0.0.1:%d" % proxy2.port
_s = socket.socket()  # a port that was free: nothing listens there
_s.bind(("127.0.0.1", 0))
DEAD = "127.0.0.1:%d" % _s.getsockname()[1]
_s.close()
for name, first in (("first unreachable", DEAD), ("first answers the pack 500", PREG)):
    proxy.clear()
    proxy.add_rule(lambda m, p, h: m == "GET" and PACK in p, 500, "broken")
    proxy2.clear()
    r, root = build_from([first, PREG2], "grep -qx %s /c/f" % GOOD)
    got2 = [q for q in proxy2.requests() if q["method"] == "GET" and PACK in q["path"]]
    T.check("%s: the build runs with the cache restored from the second --cache-from" % name,
            r.returncode == 0 and "cache mount deps: restored" in r.stderr and got2,
            r.stderr[-1500:])
    T.check("%s: no warning about the pack (the second served it)" % name,
            not [l for l in r.stderr.splitlines() if l.startswith(W)], r.stderr[-1500:])
    if first == PREG:
        got1 = [q for q in proxy.requests() if q["method"] == "GET" and PACK in q["path"]]
        T.check("%s: the first was asked for the pack before the second" % name, got1,
                str(proxy.requests()))

# neither can give it: one warning naming both cache images and why, the step runs empty
proxy.clear()
proxy.add_rule(lambda m, p, h: m == "GET" and PACK in p, 500, "broken")
proxy2.clear()
proxy2.add_rule(lambda m, p, h: m == "GET" and PACK in p, 404, "gone")
r, root = build_from([PREG2, PREG], EMPTY)
warn = [l for l in r.stderr.splitlines() if l.startswith(W)]
print("# " + " | ".join(warn))
T.check("both fail: the build runs, one warning naming the pack from each cache image",
        r.returncode == 0 and len(warn) == 1 and warn[0].count(PACK) >= 2
        and PREG2 + "/hostile/cache" in warn[0] and PREG + "/hostile/cache" in warn[0]
        and "404" in warn[0] and "500" in warn[0], r.stderr[-1500:])

# control: the same proxy without the rule serves the real pack, restored whole
proxy.clear()
r, root = build("grep -qx %s /c/f" % GOOD)
T.check("(control) the real pack through the same proxy restores the mount, found in the root",
        r.returncode == 0 and "cache mount deps: restored" in r.stderr and kept(root, GOOD),
        r.stderr[-1500:])

# ---- the cache image's layers, named at import (lazy blobs): a layer the registry answers
# with other bytes fails the output that needs it, naming the blob; per tenant, the bytes
# another tenant fetched into the shared root are not used: each fetches (and checks) them
LREF = "hostile/lz:1"
r = kiln("build", "--root", os.path.join(T.tmp, "rootL0"), "--insecure-registry", REG,
         "--cache-to", "type=registry,ref=%s/%s,mode=max" % (REG, LREF),
         new_context(T.tmp, "FROM %s\nRUN head -c 200000 /dev/urandom > /big\n" % BASE))
lman = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://%s/v2/hostile/lz/manifests/1" % REG,
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})))
LAYER = [l for l in lman["layers"]
         if l["mediaType"] != "application/vnd.kiln.cachemount.pack.v1"][0]
LCTX = new_context(T.tmp, "FROM %s\nRUN head -c 200000 /dev/urandom > /big\n" % BASE)


def lbuild(root, *extra):
    return kiln("build", "--root", os.path.join(T.tmp, root), "--progress", "plain",
                "--insecure-registry", PREG, "--cache-from",
                "type=registry,ref=%s/%s" % (PREG, LREF), *extra, LCTX)


def layer_gets():
    return [q for q in proxy.requests() if q["method"] == "GET" and LAYER["digest"] in q["path"]]


LBAD = ("planted " + HM.mark + " ").ljust(LAYER["size"], "x")
proxy.clear()
proxy.add_rule(lambda m, p, h: m == "GET" and LAYER["digest"] in p, 200, LBAD)
r = lbuild("rootL1")
T.check("a cache image whose layer the registry answers with other bytes: the fully cached "
        "build names it without fetching it", r.returncode == 0 and "#2 CACHED" in r.stderr
        and not layer_gets(), r.stderr[-1500:])
r = lbuild("rootL1", "-o", "type=oci,dest=" + os.path.join(T.tmp, "lout1"))
T.check("an OCI output of it fetches the layer: fails naming the blob, the cache image and the "
        "mismatch; nothing of the bad bytes kept in the root",
        r.returncode != 0 and LAYER["digest"] in r.stderr and "does not match" in r.stderr
        and "%s/hostile/lz@sha256:" % PREG in r.stderr and not kept(os.path.join(T.tmp, "rootL1"), HM.mark)
        and not os.path.exists(os.path.join(T.tmp, "rootL1", "blobs", "sha256",
                                            LAYER["digest"].split(":")[1])), r.stderr[-1500:])
proxy.clear()
r = lbuild("rootNS", "--cache-namespace", "tenantA", "-o",
           "type=oci,dest=" + os.path.join(T.tmp, "loutA"))
T.check("tenant A on a fresh root: its output fetches the layer once (its own lazy record)",
        r.returncode == 0 and len(layer_gets()) == 1, r.stderr[-1500:])
proxy.clear()
proxy.add_rule(lambda m, p, h: m == "GET" and LAYER["digest"] in p, 200, LBAD)
r = lbuild("rootNS", "--cache-namespace", "tenantB", "-o",
           "type=oci,dest=" + os.path.join(T.tmp, "loutB"))
T.check("tenant B on that root (A's bytes in the shared store): B's output fetches the layer "
        "itself, and the registry's other bytes fail it naming the blob",
        r.returncode != 0 and len(layer_gets()) >= 1 and LAYER["digest"] in r.stderr
        and "does not match" in r.stderr
        and not os.path.exists(os.path.join(T.tmp, "rootNS", "ns", "tenantB", "blobs",
                                            LAYER["digest"].split(":")[1])), r.stderr[-1500:])
T.check("the host marker is untouched by the layer cases", HM.untouched(), str(HM.state()))
T.done()
