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
again, complete, by the next build of the same commit, and the image then saves."""
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
trap.close()
T.done()
