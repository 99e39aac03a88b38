"""Hostile registry caches, lazily fetched packs: a cache id's pack is fetched from the
registry when a step mounts the id (not at --cache-from import), through a proxy that
answers the pack's GET with other bytes of the same size (not its digest) or with bytes of
another size. Either is a warning naming the cache id, the registry cache and the pack, the
step runs with an empty cache (a longer answer is cut at the pack's size), nothing of the bad bytes is kept in the root (store or
mount) and the host marker is neither read nor written. (A manifest naming paths with ".."
or through a link goes through the same decode and restore as the S3 cache's, covered by
test_hostile_remote_cache.)"""
import json
import os
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


def build(check):
    N[0] += 1
    root = os.path.join(T.tmp, "rootP%d" % N[0])
    df = "FROM %s\nRUN --mount=type=cache,id=deps,target=/c sh -c '%s'\n" % (BASE, check)
    r = kiln("build", "--root", root, "--insecure-registry", PREG, "--progress", "plain",
             "--cache-from", "type=registry,ref=%s/hostile/cache:1" % PREG,
             new_context(T.tmp, df))
    return r, root


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
    T.check("%s: nothing of the bad bytes is kept in the root" % name,
            not kept(root, HM.mark), str(kept(root, HM.mark)))
    T.check("%s: the host marker is neither read nor written" % name,
            HM.untouched() and HM.mark not in r.stdout, str(HM.state()))

# control: the same proxy without the rule serves the real pack, restored whole
proxy.clear()
r, root = build("grep -qx %s /c/f" % GOOD)
T.check("(control) the real pack through the same proxy restores the mount, found in the root",
        r.returncode == 0 and "cache mount deps: restored" in r.stderr and kept(root, GOOD),
        r.stderr[-1500:])
T.done()
