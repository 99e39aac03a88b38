"""Hostile lazy-blob records (oci/store_lazy, engine/remote_lazy): a fully cached build on a
fresh root names its registry base's layers as lazy blobs, each record keeping how the build
reached the registry (its mirrors, plain-HTTP hosts, CAs: oci/registry_settings). A record
whose settings would send the fetch elsewhere than the recording build went is refused: a
mirror of another registry than the record's source, a mirror with a scheme or userinfo,
plain HTTP for a host that is neither the source nor one of its mirrors, a relative CA path,
an unknown key. `kiln save` then fails naming the blob and what in the settings is wrong,
contacts no host the record names (a listener counts connections), writes no archive and
keeps no blob; the untouched records fetch fine. Records never hold credentials: the build's
docker config auth for the registry does not appear in them.

Records are written without an fsync (a crash may lose one or cut it short, never make it
name other bytes): records cut short (as a crash before their bytes reached the disk leaves
them) make `kiln save` fail naming the record as not readable; records lost or cut are made
again, complete, by the next build of the same commit, and the image then saves.

The fetch follows the address policy of whoever needs the bytes, not the recording build's
(oci/store_lazy kiln_store_set_fetch_policy): a server-mode build with --allow-address for the
loopback registry records a layer; the next server-mode build on the root without the allowance
is refused naming the blob, the registry and the address, keeps no blob and no temp file; with
it the build fetches and succeeds; a recorded mirror its policy refuses is not contacted."""
import base64
import glob
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, new_context  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

os.chmod(T.tmp, 0o711)
BASE = make_base(os.path.join(T.tmp, "root-base"))
REG = "127.0.0.1:%d" % start_registry()
IMG = REG + "/h/img:1"

# a listener that counts connections: where a hostile record would send the fetch
trap = socket.socket()
trap.bind(("127.0.0.1", 0))
trap.listen(16)
TRAP = "127.0.0.1:%d" % trap.getsockname()[1]
hits = []


def serve():
    while True:
        try:
            c, _ = trap.accept()
        except OSError:
            return
        hits.append(1)
        c.close()


threading.Thread(target=serve, daemon=True).start()

# docker config with an auth for the registry: it must never reach a record
DOCKER = os.path.join(T.tmp, "docker")
os.makedirs(DOCKER)
SECRET = "lazy-secret-" + os.urandom(4).hex()
with open(os.path.join(DOCKER, "config.json"), "w") as f:
    json.dump({"auths": {REG: {"auth": base64.b64encode(("u:" + SECRET).encode()).decode()}}}, f)
ENV = {"DOCKER_CONFIG": DOCKER}


def build(root, df, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), "--progress", "plain",
                "--insecure-registry", REG, *args, new_context(T.tmp, df), timeout=600, env=ENV)


r = build("root-push", "FROM %s\nRUN head -c 100000 /dev/urandom > /big\n" % BASE, "-t", IMG,
          "--push")
T.check("an image pushed to docker-registry", r.returncode == 0, r.stderr[-1500:])
USE = "FROM %s\nRUN wc -c < /big > /n\n" % IMG
CACHE = "type=registry,ref=%s/h/cache:1" % REG
r = build("rootA", USE, "--cache-to", CACHE + ",mode=max")
T.check("the cache pushed", r.returncode == 0, r.stderr[-1500:])
r = build("rootB", USE, "--cache-from", CACHE, "-t", "lazy:1")
LAZY = os.path.join(T.tmp, "rootB", "lazy")
recs = sorted(glob.glob(os.path.join(LAZY, "*")))
orig = {p: open(p).read() for p in recs}
T.check("fresh root, every step cached: the base's layers are lazy records with the build's "
        "settings, none holding the docker config's auth",
        r.returncode == 0 and len(recs) >= 2
        and all(json.loads(t).get("registry", {}).get("insecure") == [REG] for t in orig.values())
        and not any(SECRET in t or "auth" in t for t in orig.values()),
        r.stderr[-1500:] + str(orig))

CASES = [
    ("a mirror of another registry", {"mirrors": ["127.0.0.1:1=" + TRAP]}, "is not one of"),
    ("a mirror with a scheme", {"mirrors": ["%s=http://%s" % (REG, TRAP)]},
     "is not HOST[:PORT][/PREFIX]"),
    ("a mirror with userinfo", {"mirrors": ["%s=u:p@%s" % (REG, TRAP)]},
     "is not HOST[:PORT][/PREFIX]"),
    ("plain HTTP for another host", {"insecure": [REG, TRAP]}, "is neither"),
    ("a relative CA path", {"ca": "ca.pem"}, "absolute path"),
    ("an unknown key", {"proxy": TRAP}, "unknown key"),
    ("settings that are not an object", ["x"], "registry settings"),
]
tar = os.path.join(T.tmp, "s.tar")
for name, settings, says in CASES:
    for p in recs:
        j = json.loads(orig[p])
        j["registry"] = settings
        with open(p, "w") as f:
            json.dump(j, f)
    del hits[:]
    sv = kiln("save", "--root", os.path.join(T.tmp, "rootB"), "-o", tar, "lazy:1", timeout=300)
    fetched = [p for p in recs
               if os.path.exists(os.path.join(T.tmp, "rootB", "blobs", "sha256", os.path.basename(p)))]
    T.check("a lazy record with %s: kiln save fails naming the blob and the settings, the host it "
            "names is not contacted, nothing written" % name,
            sv.returncode != 0 and ("registry settings" in sv.stderr or "not readable" in sv.stderr)
            and (says in sv.stderr or "not readable" in sv.stderr) and "sha256:" in sv.stderr
            and not hits and not os.path.exists(tar) and not fetched,
            sv.stderr[-800:] + " hits=%d fetched=%s" % (len(hits), fetched))
for p in recs:
    with open(p, "w") as f:
        f.write(orig[p])
sv = kiln("save", "--root", os.path.join(T.tmp, "rootB"), "-o", tar, "lazy:1", timeout=300)
T.check("the records as the build wrote them: kiln save fetches the layers and writes the archive",
        sv.returncode == 0 and os.path.getsize(tar) > 100000 and not hits, sv.stderr[-800:])


def rebuild_records(what):
    r = build("rootB", USE, "--cache-from", CACHE, "-t", "lazy:1")
    now = {p: open(p).read() for p in recs if os.path.exists(p)}
    sv = kiln("save", "--root", os.path.join(T.tmp, "rootB"), "-o", tar, "lazy:1", timeout=300)
    T.check("records %s: the next build of the same commit writes them again, complete, and "
            "the image saves" % what, r.returncode == 0 and now == orig and sv.returncode == 0
            and os.path.getsize(tar) > 100000, r.stderr[-600:] + sv.stderr[-600:])


# a crash before the records' bytes reached the disk: each cut short (or empty)
os.remove(tar)
for p in [q for q in glob.glob(os.path.join(T.tmp, "rootB", "blobs", "sha256", "*"))
          if os.path.basename(q) in [os.path.basename(r) for r in recs]]:
    os.remove(p)
for i, p in enumerate(recs):
    with open(p, "w") as f:
        f.write(orig[p][:len(orig[p]) * (i % 2) // 2])
sv = kiln("save", "--root", os.path.join(T.tmp, "rootB"), "-o", tar, "lazy:1", timeout=300)
T.check("lazy records cut short: kiln save fails naming a record as not readable, writes nothing",
        sv.returncode != 0 and "lazy blob record sha256:" in sv.stderr and "not readable" in sv.stderr
        and not os.path.exists(tar), sv.stderr[-800:])
rebuild_records("cut short")
# records lost: the blobs fetched by the save above dropped with them
for p in recs:
    os.remove(p)
    b = os.path.join(T.tmp, "rootB", "blobs", "sha256", os.path.basename(p))
    if os.path.exists(b):
        os.chmod(b, 0o644)
        os.remove(b)
sv = kiln("save", "--root", os.path.join(T.tmp, "rootB"), "-o", tar + "2", "lazy:1", timeout=300)
T.check("lazy records lost: kiln save fails naming the missing blob, writes nothing",
        sv.returncode != 0 and "sha256:" in sv.stderr and not os.path.exists(tar + "2"),
        sv.stderr[-800:])
rebuild_records("lost")

# The fetch follows the address policy of whoever asks for the bytes, not the recording
# build's: a server-mode build (public addresses only, plus its --allow-address) records the
# layers of a loopback registry cache with the allowance; the next build on the root that needs
# their bytes without it is refused (as its own FROM would be), with it fetches them, and a
# mirror its policy refuses is never contacted. The base is a local layout, so nothing but the
# lazy fetch reaches a registry in the second build.
LAYOUT = BASE.split(":")[1]
SRV = ["--server-mode", "--oci-dir", LAYOUT]
ALLOW = ["--allow-address", "127.0.0.1/32"]
PCACHE = "type=registry,ref=%s/h/pcache:1" % REG
STEP = "FROM %s\nRUN head -c 100000 /dev/urandom > /big\n" % BASE
NEXT = STEP + "RUN wc -c < /big > /n\n"
r = build("rootP0", STEP, "--cache-to", PCACHE + ",mode=max")
T.check("policy: the step's cache pushed to the loopback registry", r.returncode == 0,
        r.stderr[-1500:])


def recorded(root):
    """A server-mode build allowed loopback, every step cached from the registry: the step's
    layer is a lazy record of the cache image (its path list)."""
    r = build(root, STEP, *SRV, *ALLOW, "--cache-from", PCACHE)
    recs = sorted(glob.glob(os.path.join(T.tmp, root, "lazy", "*")))
    T.check("policy (%s): a server-mode build with --allow-address 127.0.0.1/32 records the "
            "cached layer as a lazy blob of the registry" % root,
            r.returncode == 0 and recs
            and all(REG in json.loads(open(p).read())["source"] for p in recs),
            r.stderr[-1500:] + str(recs))
    return recs


def held(root, recs):
    """The recorded blobs whose bytes are in root's store."""
    return [p for p in recs
            if os.path.exists(os.path.join(T.tmp, root, "blobs", "sha256", os.path.basename(p)))]


recs = recorded("rootPa")
r = build("rootPa", NEXT, *SRV)
tmpdir = os.path.join(T.tmp, "rootPa", "tmp")
T.check("policy: the next server-mode build without the allowance is refused the lazy fetch, "
        "naming the blob, the registry and the address; no blob, no temp file left",
        r.returncode != 0 and "fetching lazy blob sha256:" in r.stderr and REG in r.stderr
        and "refused by the address policy" in r.stderr
        and any(os.path.basename(p) in r.stderr for p in recs)
        and not held("rootPa", recs) and not os.listdir(tmpdir),
        r.stderr[-1500:] + str(os.listdir(tmpdir)))
r = build("rootPa", NEXT, *SRV, *ALLOW)
T.check("policy: the same build with --allow-address 127.0.0.1/32 fetches the blob and builds",
        r.returncode == 0 and len(held("rootPa", recs)) == len(recs), r.stderr[-1500:])


def mirrored(root):
    """Records whose settings send the fetch through a mirror: the trap (counting)."""
    recs = recorded(root)
    for p in recs:
        j = json.loads(open(p).read())
        j["registry"] = {"insecure": [REG, TRAP], "mirrors": ["%s=%s" % (REG, TRAP)]}
        with open(p, "w") as f:
            json.dump(j, f)
    del hits[:]
    return recs


recs = mirrored("rootPc")
r = build("rootPc", NEXT, *SRV, "--allow-address", REG)
T.check("policy: a recorded mirror the build's policy refuses (only the registry's port is "
        "allowed) is not contacted; the fetch goes to the registry itself",
        r.returncode == 0 and not hits and len(held("rootPc", recs)) == len(recs),
        r.stderr[-1500:] + " hits=%d" % len(hits))
recs = mirrored("rootPd")
r = build("rootPd", NEXT, *SRV, *ALLOW)
T.check("policy: the same records under a policy that allows the mirror do go to it (so the "
        "case above is the policy's doing)", r.returncode == 0 and hits, r.stderr[-1500:])
trap.close()
T.done()
