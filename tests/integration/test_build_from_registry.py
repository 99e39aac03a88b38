"""FROM a registry image on a fresh root (an ephemeral worker): the manifest and config are
fetched at once, the layers in the background while the build goes on (engine/remote_base),
each unpacked as soon as it has arrived, several at once.

- a RUN over a 4-layer image pulled from docker-registry sees every layer's files; the OCI
  output holds every layer blob
- a fully cached build on a fresh root (registry cache) unpacks no layer (no tree under
  build/lowers) and still ends with every blob of the image in the store (its OCI output)
- a base layer still downloading is unpacked as its bytes arrive (the pull's on_blob_stream):
  through a proxy holding back the second half of the big layer's blob until the first file
  of that layer is being written in the build's lower dir; the RUN then sees it whole
- the same layer answered with other bytes of its size: the build fails, no lower dir of it
  (nor its temp tree) and no blob kept
- a layer the registry no longer serves: the RUN fails naming the layer, and so does a
  fully cached build (its image could not be complete); nothing hangs"""
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, new_context, read_image  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402
from registry_fixtures import FaultProxy  # noqa: E402

os.chmod(T.tmp, 0o711)
BASE = make_base(os.path.join(T.tmp, "root-base"))
port = start_registry()
REG = "127.0.0.1:%d" % port
IMG = REG + "/t/img:1"


def build(root, df, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), "--progress", "plain",
                "--insecure-registry", REG, *args, new_context(T.tmp, df), timeout=600)


def out(r):
    return r.stdout + r.stderr


r = build("root-push", """FROM %s
RUN echo a > /la
RUN echo b > /lb
RUN head -c 3000000 /dev/urandom > /big
""" % BASE, "-t", IMG, "--push")
T.check("a 4-layer image pushed to docker-registry", r.returncode == 0, out(r)[-1500:])

USE = """FROM %s
RUN cat /la /lb > /out && wc -c < /big >> /out
""" % IMG
lay1 = os.path.join(T.tmp, "lay1")
r = build("root1", USE, "-o", "type=oci,dest=" + lay1, "--cache-to",
          "type=registry,ref=%s/t/cache:1,mode=max" % REG)
ok = r.returncode == 0
if ok:
    man, cfg = read_image(lay1)
    missing = [l["digest"] for l in man["layers"]
               if not os.path.exists(os.path.join(lay1, "blobs", "sha256", l["digest"][7:]))]
T.check("fresh root: a RUN over the pulled image sees every layer", ok and not missing
        and len(man["layers"]) == 5, out(r)[-2000:])
r2 = kiln("build", "--root", os.path.join(T.tmp, "root1"), "--progress", "plain",
          "--insecure-registry", REG, "-o", "type=local,dest=" + os.path.join(T.tmp, "fs1"),
          new_context(T.tmp, USE))
T.check("the RUN's output has both small layers' files and the big one's size",
        r2.returncode == 0 and open(os.path.join(T.tmp, "fs1", "out")).read() == "a\nb\n3000000\n",
        out(r2)[-1500:])

# a fully cached build on a fresh root: nothing unpacked, every blob there at the end
lay2 = os.path.join(T.tmp, "lay2")
r = build("root2", USE, "--cache-from", "type=registry,ref=%s/t/cache:1" % REG,
          "-o", "type=oci,dest=" + lay2)
trees = [p for p in glob.glob(os.path.join(T.tmp, "root2", "build", "lowers", "*"))
         if os.path.isdir(p)]
ok = r.returncode == 0 and "#2 CACHED" in r.stderr
if ok:
    man2, _ = read_image(lay2)
    ok = man2["layers"] == man["layers"] and all(
        os.path.exists(os.path.join(lay2, "blobs", "sha256", l["digest"][7:])) for l in man2["layers"])
T.check("fresh root, every step cached: no layer unpacked, every blob in the output",
        ok and not trees, out(r)[-2000:] + str(trees))

# a base layer unpacked while it downloads: its blob's second half held back until the
# layer's file is being written under build/lowers (a build that waited for the whole blob
# would never get there: the proxy then sends the rest after its 120 s and says so)
proxy = FaultProxy(port)
PX = "127.0.0.1:%d" % proxy.port
big = man["layers"][3]["digest"][7:]
partial = os.path.join(T.tmp, "root5", "build", "lowers", ".tmp-*", "big")
rule = {"method": "GET", "path": big, "action": "hold", "count": 1,
        "until": lambda: any(os.path.getsize(f) > 0 for f in glob.glob(partial))}
proxy.rules = [rule]
t0 = time.time()
r = kiln("build", "--root", os.path.join(T.tmp, "root5"), "--progress", "plain",
         "--insecure-registry", PX, "-o", "type=local,dest=" + os.path.join(T.tmp, "fs5"),
         new_context(T.tmp, USE.replace(REG, PX)), timeout=600)
T.check("fresh root: a base layer is unpacked while its blob still downloads (the first file "
        "written before the second half of the blob was sent), the RUN sees it whole",
        r.returncode == 0 and rule.get("held") is True and
        open(os.path.join(T.tmp, "fs5", "out")).read() == "a\nb\n3000000\n",
        out(r)[-1500:] + " held=%s after %.1fs" % (rule.get("held"), time.time() - t0))

# the same layer answered with other bytes of its size: the stream's unpack fails (inflate or
# the digest at the commit) and no lower dir of it is kept, not even its temp tree
with open(os.path.join(lay1, "blobs", "sha256", big), "rb") as f:
    bad = bytearray(f.read())
bad[len(bad) // 2] ^= 0xFF
proxy.rules = [{"method": "GET", "path": big, "count": -1,
                "action": ("body", "application/octet-stream", bytes(bad))}]
r = kiln("build", "--root", os.path.join(T.tmp, "root6"), "--progress", "plain",
         "--insecure-registry", PX, new_context(T.tmp, USE.replace(REG, PX).replace("/out", "/out6")),
         timeout=600)
lowers = os.path.join(T.tmp, "root6", "build", "lowers")
kept = [p for p in glob.glob(os.path.join(lowers, "*")) + glob.glob(os.path.join(lowers, ".tmp-*"))
        if os.path.isdir(p) and os.path.exists(os.path.join(p, "big"))]
T.check("a streamed base layer with other bytes of its size fails the build; nothing of it is kept",
        r.returncode != 0 and big[:12] in r.stderr and not kept and
        not os.path.exists(os.path.join(T.tmp, "root6", "blobs", "sha256", big)), out(r)[-1500:] + str(kept))
proxy.close()

# the registry loses a layer of the base
victim = man["layers"][3]["digest"][7:]  # the image's own 3 MB layer (below the RUN's)
files = glob.glob(os.path.join(T.tmp, "registry.*", "data", "docker", "registry", "v2", "blobs",
                               "sha256", victim[:2], victim, "data"))
T.check("the layer's file is found in the registry's storage", len(files) == 1, str(files))
for f in files:
    os.remove(f)
r = build("root3", USE.replace("/out", "/out2"))
T.check("fresh root, a layer the registry lost: the RUN fails naming the layer",
        r.returncode != 0 and victim[:12] in r.stderr and "RUN" in r.stderr, out(r)[-2000:])
r = build("root4", USE, "--cache-from", "type=registry,ref=%s/t/cache:1" % REG)
T.check("fresh root, every step cached, a base layer lost: the build fails naming it",
        r.returncode != 0 and victim[:12] in r.stderr, out(r)[-2000:])
T.done()
