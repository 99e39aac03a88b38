"""FROM a registry image on a fresh root (an ephemeral worker): the manifest and config are
fetched at once, the layers in the background while the build goes on (engine/remote_base),
each unpacked as soon as it has arrived, several at once.

- a RUN over a 4-layer image pulled from docker-registry sees every layer's files; the OCI
  output holds every layer blob; each base layer's blob has its uncompressed size noted from
  its unpack (the image's size never inflates it again)
- a fully cached build on a fresh root (registry cache) unpacks no layer (no tree under
  build/lowers) and its OCI output has every blob of the image (fetched for the export)
- a fully cached build writing only to the store downloads no base layer: each is a lazy
  blob of the registry image (oci/store_lazy); `kiln save` fetches them, and fails naming
  the blob when the registry answers it with other bytes (nothing kept, no archive); `kiln
  push` of such an image to another repository fetches and pushes its layers, or mounts them
  (cross-repository) when the destination is the base's registry
- a base reachable only through the build's --registry-mirror (its own registry is not
  listening): the lazy record keeps the mirror (no credentials), and a later `kiln save`
  without any registry flag fetches the layers through that mirror
- a base layer still downloading is unpacked as its bytes arrive (the pull's on_blob_stream):
  through a proxy holding back the second half of the big layer's blob until the first file
  of that layer is being written in the build's lower dir; the RUN then sees it whole
- the same layer answered with other bytes of its size: the build fails, no lower dir of it
  (nor its temp tree) and no blob kept
- a layer the registry no longer serves: the RUN fails naming the layer; a fully cached build
  into the store succeeds (it needs no layer), its OCI export and `kiln save` fail naming the
  layer; nothing hangs
- tenants (--cache-namespace): a fully cached build on a fresh root downloads no base layer
  (its own lazy records); its output fetches them; another tenant's output on the same root
  fetches them again itself, although the shared store holds the bytes"""
import glob
import gzip
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, new_context, read_image  # noqa: E402
from kilntest import T, free_port, kiln, start_registry  # noqa: E402
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

def usize_memos(root, layers):
    """(layer blob, its user.kiln.usize memo, its uncompressed size) of each gzip layer blob in
    root's store."""
    res = []
    for l in layers:
        p = os.path.join(T.tmp, root, "blobs", "sha256", l["digest"][7:])
        with open(p, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                continue
        try:
            memo = int(os.getxattr(p, "user.kiln.usize"))
        except OSError:
            memo = None
        with gzip.open(p, "rb") as f:
            n = 0
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                n += len(b)
        res.append((l["digest"], memo, n))
    return res


# each base layer unpacked for a RUN has its uncompressed size noted by the unpack, so the
# image's size at the end of the build inflates no base layer a second time: seen on a build
# whose RUN fails (no image, so nothing measured the layers afterwards)
r3 = build("root-memo", "FROM %s\nRUN false\n" % IMG)
memos = usize_memos("root-memo", man["layers"][:4]) if ok else []
T.check("fresh root: every base layer unpacked for a RUN has its uncompressed size noted",
        r3.returncode != 0 and len(memos) == 4 and all(m == n for _, m, n in memos),
        repr(memos) + out(r3)[-1000:])
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

# a fully cached build on a fresh root downloads no base layer: it names them as lazy blobs
# of the registry image (oci/store_lazy). The registry then answers the big layer with other
# bytes of its size: `kiln save` (which needs them) fails naming the blob, and keeps nothing
proxy.hits.clear()
r = build("root7", USE.replace(REG, PX), "--insecure-registry", PX, "--cache-from",
          "type=registry,ref=%s/t/cache:1" % REG, "-t", "lazy:7")
lazy = sorted(os.listdir(os.path.join(T.tmp, "root7", "lazy"))) if r.returncode == 0 else []
T.check("fresh root, every step cached: the build downloads no base layer (each named as a lazy "
        "blob of the registry image)", r.returncode == 0 and not proxy.hits and big in lazy
        and not os.path.exists(os.path.join(T.tmp, "root7", "blobs", "sha256", big))
        and "layers not downloaded" in r.stderr, out(r)[-1500:] + str(lazy) + str(proxy.hits))
sv = kiln("save", "--root", os.path.join(T.tmp, "root7"), "-o", os.path.join(T.tmp, "s7.tar"),
          "lazy:7", timeout=600)
T.check("kiln save of that image fetches its layers: the one answered with other bytes fails "
        "naming the blob and its source; nothing of it kept, no archive written",
        sv.returncode != 0 and "sha256:" + big in sv.stderr and "does not match" in sv.stderr
        and "t/img@sha256:" in sv.stderr
        and not os.path.exists(os.path.join(T.tmp, "root7", "blobs", "sha256", big))
        and not os.path.exists(os.path.join(T.tmp, "s7.tar")), sv.stderr[-1500:])
print("# " + sv.stderr.strip().splitlines()[-1][:400])
proxy.rules = []
sv = kiln("save", "--root", os.path.join(T.tmp, "root7"), "-o", os.path.join(T.tmp, "s7.tar"),
          "lazy:7", timeout=600)
T.check("the registry answering right again: kiln save fetches the lazy layers and writes the "
        "archive", sv.returncode == 0 and os.path.getsize(os.path.join(T.tmp, "s7.tar")) > 3000000
        and os.path.exists(os.path.join(T.tmp, "root7", "blobs", "sha256", big)), sv.stderr[-1500:])
# kiln push of a lazy image: the blobs the destination lacks are fetched from their sources
# (the base's from the registry, through the proxy again) and pushed; the pushed image reads back
# whole
r = build("root8", USE.replace(REG, PX), "--insecure-registry", PX, "--cache-from",
          "type=registry,ref=%s/t/cache:1" % REG, "-t", "lazy:8")
pu = kiln("push", "--root", os.path.join(T.tmp, "root8"), "--insecure-registry", REG, "lazy:8",
          REG + "/t/pushed:1", timeout=600)
lay8 = os.path.join(T.tmp, "lay8")
pl = kiln("pull", "--root", os.path.join(T.tmp, "root8b"), "--insecure-registry", REG,
          "-o", "type=oci,dest=" + lay8, REG + "/t/pushed:1", timeout=600)
ok = r.returncode == 0 and pu.returncode == 0 and pl.returncode == 0
if ok:
    man8, _ = read_image(lay8)
    ok = man8["layers"] == man["layers"] and all(
        os.path.exists(os.path.join(lay8, "blobs", "sha256", l["digest"][7:])) for l in man8["layers"])
T.check("kiln push of a lazy image to another repository: its layers fetched and pushed; pulled "
        "back whole", ok, out(r)[-800:] + out(pu)[-800:] + out(pl)[-800:])
# the same image built straight from the registry, pushed to another repository of that
# registry: its lazy base layers are mounted from the base's repository, never downloaded
r = build("root9", USE, "--cache-from", "type=registry,ref=%s/t/cache:1" % REG, "-t", "lazy:9")
pu = kiln("push", "--root", os.path.join(T.tmp, "root9"), "--insecure-registry", REG, "lazy:9",
          REG + "/t/pushed:2", timeout=600)
lay9 = os.path.join(T.tmp, "lay9")
pl = kiln("pull", "--root", os.path.join(T.tmp, "root9b"), "--insecure-registry", REG,
          "-o", "type=oci,dest=" + lay9, REG + "/t/pushed:2", timeout=600)
base_hex = [l["digest"][7:] for l in man["layers"][:4]]
fetched = [h for h in base_hex if os.path.exists(os.path.join(T.tmp, "root9", "blobs", "sha256", h))]
ok = r.returncode == 0 and pu.returncode == 0 and pl.returncode == 0 and not fetched
if ok:
    man9, _ = read_image(lay9)
    ok = man9["layers"] == man["layers"]
T.check("kiln push of a lazy image to another repository of its base's registry: the base's "
        "layers mounted from there (none downloaded); pulled back whole",
        ok, out(r)[-600:] + out(pu)[-800:] + out(pl)[-600:] + " fetched=" + str(fetched))
# tenants (--cache-namespace, every server build): a fully cached build on a fresh root
# downloads no base layer either (the namespace's own lazy records); its output fetches them;
# another tenant's output on that root fetches the layers itself although the root holds them
proxy.rules = []
TR = os.path.join(T.tmp, "rootT")
TUSE = USE.replace(REG, PX)


def big_gets():
    return [q for q in proxy.log if q[0] == "GET" and big in q[1]]


def tbuild(ns, *extra):
    return build("rootT", TUSE, "--insecure-registry", PX, "--cache-namespace", ns,
                 "--cache-from", "type=registry,ref=%s/t/cache:1" % REG, *extra)


proxy.log.clear()
r = tbuild("tenantA")
tlazy = os.listdir(os.path.join(TR, "ns", "tenantA", "lazy")) if r.returncode == 0 else []
T.check("a tenant's fully cached build on a fresh root downloads no base layer (each its own "
        "lazy record, none shared)", r.returncode == 0 and not big_gets() and big in tlazy
        and not os.path.exists(os.path.join(TR, "lazy", big))
        and not os.path.exists(os.path.join(TR, "blobs", "sha256", big)),
        out(r)[-1500:] + str(tlazy) + str(big_gets()))
r = tbuild("tenantA", "-o", "type=oci,dest=" + os.path.join(T.tmp, "layTA"))
T.check("its OCI output fetches the base's layers (the big one once), now the tenant's",
        r.returncode == 0 and len(big_gets()) == 1
        and os.path.exists(os.path.join(T.tmp, "layTA", "blobs", "sha256", big))
        and os.path.exists(os.path.join(TR, "ns", "tenantA", "blobs", big)), out(r)[-1500:])
proxy.log.clear()
r = tbuild("tenantB", "-o", "type=oci,dest=" + os.path.join(T.tmp, "layTB"))
T.check("tenant B's output on that root (A's bytes in the shared store) fetches the layer itself "
        "(B's registry must serve it)", r.returncode == 0 and len(big_gets()) == 1
        and os.path.exists(os.path.join(TR, "ns", "tenantB", "blobs", big)),
        out(r)[-1500:] + str(big_gets()))

# a base reached only through the build's mirror: FROM names a registry nothing listens on,
# --registry-mirror sends it to the proxy before REG. The lazy layers' records keep that mirror,
# so a later `kiln save` with no registry flag fetches them through it (the default settings
# would try the dead registry and fail)
DEAD = "127.0.0.1:%d" % free_port()
r = build("root10", USE.replace(REG, DEAD), "--registry-mirror", "%s=%s" % (DEAD, PX),
          "--insecure-registry", PX, "--cache-from", "type=registry,ref=%s/t/cache:1" % REG,
          "-t", "lazy:10")
rec = {}
if r.returncode == 0 and os.path.exists(os.path.join(T.tmp, "root10", "lazy", big)):
    with open(os.path.join(T.tmp, "root10", "lazy", big)) as f:
        rec = json.load(f)
records = "".join(open(p).read() for p in glob.glob(os.path.join(T.tmp, "root10", "lazy", "*")))
T.check("fresh root, FROM through a mirror, every step cached: the lazy record names the "
        "image's own registry and keeps the mirror and its plain HTTP (no credentials)",
        r.returncode == 0 and rec.get("source", "").startswith("registry %s/t/img@" % DEAD)
        and rec.get("registry", {}).get("mirrors") == ["%s=%s" % (DEAD, PX)]
        and rec["registry"].get("insecure") == [PX] and "auth" not in records,
        out(r)[-1500:] + json.dumps(rec))
proxy.log.clear()
sv = kiln("save", "--root", os.path.join(T.tmp, "root10"), "-o", os.path.join(T.tmp, "s10.tar"),
          "lazy:10", timeout=600)
T.check("kiln save with no registry flag fetches the lazy layers through the build's mirror",
        sv.returncode == 0 and os.path.getsize(os.path.join(T.tmp, "s10.tar")) > 3000000
        and any(big in path for _, path, _ in proxy.log)
        and os.path.exists(os.path.join(T.tmp, "root10", "blobs", "sha256", big)),
        sv.stderr[-1500:] + str(proxy.log[-5:]))
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
r = build("root4", USE, "--cache-from", "type=registry,ref=%s/t/cache:1" % REG, "-t", "lazy:4")
T.check("fresh root, every step cached, a base layer lost: the build needs no layer and succeeds",
        r.returncode == 0, out(r)[-2000:])
r = build("root4", USE, "--cache-from", "type=registry,ref=%s/t/cache:1" % REG, "-o",
          "type=oci,dest=" + os.path.join(T.tmp, "lay4"))
T.check("the same with an OCI output (which needs every blob): fails naming the lost layer",
        r.returncode != 0 and victim[:12] in r.stderr, out(r)[-2000:])
sv = kiln("save", "--root", os.path.join(T.tmp, "root4"), "-o", os.path.join(T.tmp, "s4.tar"),
          "lazy:4", timeout=600)
T.check("kiln save of the lazy image fails naming the lost layer (no archive written)",
        sv.returncode != 0 and victim[:12] in sv.stderr
        and not os.path.exists(os.path.join(T.tmp, "s4.tar")), sv.stderr[-1500:])
T.done()
