"""Additional (read-only) image stores (oci/additional_store, engine/base_store): `kiln store
add DIR IMAGE` unpacks an image's layers into one tree of DIR with its blobs and metadata; a
build on an empty root given DIR (--additional-store, $KILN_ADDITIONAL_STORES, `kiln
--additional-store DIR build`) takes its base from there.

- store add from a registry: the chain id printed, `kiln store ls` lists it, the tree holds the
  image's files with its whiteouts applied
- a build FROM the registry image on an empty root with the store: no layer blob fetched
  (requests counted through a recording proxy), the RUN sees the base's files, the image digest
  the same as the same build without the store (which fetched the layers), the OCI output
  holds every layer blob
- the store is byte for byte, mode and owner the same after the builds (hashed)
- $KILN_ADDITIONAL_STORES, `kiln --additional-store DIR build` and a job's operator option
  (`kiln job run --build-option=--additional-store=DIR`, what policy.additional_stores gives a
  server's builds) work the same; an image built from the store is pushed by `kiln
  --additional-store DIR push` (without the store the push names the blob the root lacks)
- a store made with --no-blobs: the trees used (nothing of the base unpacked in the root), the
  layer blobs not downloaded (lazy blobs of the registry image, oci/store_lazy) until an OCI
  output needs them, the same digest
- kiln prune knows the stores (--additional-store, `kiln --additional-store DIR prune`): a
  root's image whose base blobs are in a store has no missing blob, lazy blobs are counted as
  not downloaded and their records dropped once nothing names them; nothing in a store changes
- the store carried in an image by images/kiln/worker.sh (Dockerfile.worker: ADD store.tar, ENV
  KILN_ADDITIONAL_STORES) keeps its tree (owners, modes, contents), and a build on an empty root
  using the image's copy of it fetches no layer and gives the same digest"""
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, new_context, read_image  # noqa: E402
from kilntest import KILN, SRC, T, kiln, start_registry  # noqa: E402
from registry_fixtures import FaultProxy  # noqa: E402

os.chmod(T.tmp, 0o755)
BASE = make_base(os.path.join(T.tmp, "root-base"))
port = start_registry()
REG = "127.0.0.1:%d" % port
proxy = FaultProxy(port)
PREG = "127.0.0.1:%d" % proxy.port
STORE = os.path.join(T.tmp, "store")


def out(r):
    return r.stdout + r.stderr


def build(root, df, *args, env=None, pre=()):
    return kiln(*pre, "build", "--root", os.path.join(T.tmp, root), "--progress", "plain",
                "--insecure-registry", REG, "--insecure-registry", PREG,
                "--source-date-epoch", "1700000000", *args,
                new_context(T.tmp, df), env=env, timeout=600)


def tree_hash(d):
    """Every entry's path, kind, mode, owner, size, content and link target (not times)."""
    h = hashlib.sha256()
    for top, dirs, files in os.walk(d):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(top, n)
            st = os.lstat(p)
            h.update(("%s %o %d %d %d\n" % (os.path.relpath(p, d), st.st_mode, st.st_uid,
                                             st.st_gid, st.st_size)).encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


# a 3-layer base: busybox, a file added, a file of the first layer deleted (a whiteout)
IMG = REG + "/t/base:1"
r = build("root-push", """FROM %s
RUN echo base-file > /added && echo gone > /gone
RUN rm /gone && echo two > /second
""" % BASE, "-t", IMG, "--push")
T.check("a 3-layer base with a whiteout pushed to docker-registry", r.returncode == 0,
        out(r)[-1500:])

r = kiln("store", "add", "--root", os.path.join(T.tmp, "root-add"), "--insecure-registry", REG,
         STORE, IMG)
m = re.match(r"sha256:([0-9a-f]{64}) ", r.stdout)
T.check("kiln store add DIR IMAGE: exit 0, prints the chain id", r.returncode == 0 and m, out(r))
chain = os.path.join(STORE, "chains", m.group(1) if m else "x")
T.check("the chain's tree holds the base's files, whiteouts applied",
        os.path.isfile(os.path.join(chain, "added")) and os.path.isfile(os.path.join(chain, "second"))
        and os.path.isfile(os.path.join(chain, "bin", "busybox"))
        and not os.path.lexists(os.path.join(chain, "gone"))
        and not any(n.startswith(".wh.") for n in os.listdir(chain)), str(os.listdir(chain)))
r = kiln("store", "ls", STORE)
T.check("kiln store ls lists the image with its chain", r.returncode == 0 and IMG in r.stdout
        and (m.group(1) if m else "?") in r.stdout, out(r))
before = tree_hash(STORE)

USE = """FROM %s/t/base:1
RUN cat /added /second > /out && test ! -e /gone && echo ok >> /out
""" % PREG


def layer_gets(since):
    return [p for (meth, p, _) in proxy.log[since:] if meth == "GET" and "/blobs/" in p]


lay_s = os.path.join(T.tmp, "lay-store")
n0 = len(proxy.log)
r = build("root-store", USE, "--additional-store", STORE, "-o", "type=oci,dest=" + lay_s)
got = layer_gets(n0)
T.check("empty root with the store: the build succeeds and says the layers came from it",
        r.returncode == 0 and "layers from additional store " + STORE in r.stderr, out(r)[-2000:])
man_s = read_image(lay_s)[0] if r.returncode == 0 else {"layers": []}
base_layers = [l["digest"] for l in man_s["layers"][:3]]
T.check("empty root with the store: no layer blob fetched from the registry",
        not [p for p in got if any(d in p for d in base_layers)] and len(base_layers) == 3,
        str(got) + str(base_layers))
digest_s = r.stdout.strip()
T.check("the store's tree was not copied into the root (no base layer under build/lowers)",
        not [n for n in os.listdir(os.path.join(T.tmp, "root-store", "build", "lowers"))
             if n.endswith(tuple(d[7:] for d in base_layers))], "")
T.check("the OCI output holds every layer blob (read from the store)",
        all(os.path.exists(os.path.join(lay_s, "blobs", "sha256", l["digest"][7:]))
            for l in man_s["layers"]) and len(man_s["layers"]) == 4, str(man_s))

n1 = len(proxy.log)
r = build("root-plain", USE)
got = layer_gets(n1)
T.check("the same build without the store fetches the base's layers",
        r.returncode == 0 and len([p for p in got if any(d in p for d in base_layers)]) == 3,
        out(r)[-1500:] + str(got))
T.check("the same image digest with and without the store",
        r.returncode == 0 and digest_s.startswith("sha256:") and r.stdout.strip() == digest_s,
        digest_s + " " + r.stdout)

n2 = len(proxy.log)
r = build("root-env", USE, env={"KILN_ADDITIONAL_STORES": "/nonexistent-store:" + STORE})
T.check("$KILN_ADDITIONAL_STORES: a missing store warned about, the next one used, same digest",
        r.returncode == 0 and r.stdout.strip() == digest_s and "/nonexistent-store" in r.stderr
        and not [p for p in layer_gets(n2) if any(d in p for d in base_layers)], out(r)[-1500:])
n3 = len(proxy.log)
r = build("root-global", USE, pre=("--additional-store", STORE))
T.check("kiln --additional-store DIR build: the same",
        r.returncode == 0 and r.stdout.strip() == digest_s
        and not [p for p in layer_gets(n3) if any(d in p for d in base_layers)],
        digest_s + " " + str(layer_gets(n3)) + out(r)[-1500:])

# a store without the layer blobs (--no-blobs): the trees used, the blobs downloaded for the image
NB = os.path.join(T.tmp, "store-noblobs")
r = kiln("store", "add", "--no-blobs", "--root", os.path.join(T.tmp, "root-add"),
         "--insecure-registry", REG, NB, IMG)
T.check("kiln store add --no-blobs: the manifest and config only in its blobs",
        r.returncode == 0 and len(os.listdir(os.path.join(NB, "blobs", "sha256"))) == 2, out(r))
nb_before = tree_hash(NB)
n6 = len(proxy.log)
r = build("root-noblobs", USE, "--additional-store", NB)
lowers = os.listdir(os.path.join(T.tmp, "root-noblobs", "build", "lowers"))
with open(os.path.join(NB, "images.json")) as f:
    nb_chain = json.load(f)["images"][0]["chain_id"][7:]
with open(os.path.join(NB, "chains", nb_chain + ".json")) as f:
    nb_diffs = [l["diff_id"][7:] for l in json.load(f)["layers"]]
lazy = os.listdir(os.path.join(T.tmp, "root-noblobs", "lazy")) if r.returncode == 0 else []
T.check("a build with it: the base's trees from the store (none unpacked in the root), its layer "
        "blobs not downloaded (named as lazy blobs of the registry image), the same digest",
        r.returncode == 0 and r.stdout.strip() == digest_s and "layers from additional store " + NB
        in r.stderr and not [p for p in layer_gets(n6) if any(d in p for d in base_layers)]
        and sorted(lazy) == sorted(d[7:] for d in base_layers)
        and not [n for n in lowers if n[:64] in nb_diffs], out(r)[-1500:] + str(lowers))
n7 = len(proxy.log)
lay_nb = os.path.join(T.tmp, "lay-noblobs")
r = build("root-noblobs", USE, "--additional-store", NB, "-o", "type=oci,dest=" + lay_nb)
T.check("its OCI output (which needs the bytes) downloads the 3 layer blobs once, the same digest",
        r.returncode == 0 and r.stdout.strip() == digest_s
        and len([p for p in layer_gets(n7) if any(d in p for d in base_layers)]) == 3
        and all(os.path.exists(os.path.join(lay_nb, "blobs", "sha256", d[7:])) for d in base_layers),
        out(r)[-1500:] + str(layer_gets(n7)))

# a server's or worker's build (kiln job run, the operator's --build-option as policy.
# additional_stores gives it): the store used, no layer fetched
jctx = new_context(T.tmp, USE)
n5 = len(proxy.log)
spec = {"source": {"dir": jctx}, "build_id": "b-store", "tenant": "acme"}
p = subprocess.run([KILN, "job", "run", "--spec", "-", "--root", os.path.join(T.tmp, "root-job"),
                    "--build-option=--insecure-registry=" + PREG,
                    "--build-option=--additional-store=" + STORE], input=json.dumps(spec),
                   text=True, capture_output=True, timeout=600)
T.check("kiln job run --build-option=--additional-store=DIR: built with the store, no layer fetched",
        p.returncode == 0 and "layers from additional store " + STORE in p.stdout + p.stderr
        and not [q for q in layer_gets(n5) if any(d in q for d in base_layers)],
        (p.stdout + p.stderr)[-1500:])

# an image a build made from the store, named in the root, pushed later by another command
r = build("root-tag", USE, "--additional-store", STORE, "-t", "app:1")
p1 = kiln("push", "--root", os.path.join(T.tmp, "root-tag"), "--insecure-registry", REG, "app:1",
          REG + "/t/app:1")
T.check("kiln push of it without the store: fails naming the base blob the root lacks",
        r.returncode == 0 and p1.returncode != 0 and "not in store" in p1.stderr, out(r)[-500:] + out(p1))
p2 = kiln("--additional-store", STORE, "push", "--root", os.path.join(T.tmp, "root-tag"),
          "--insecure-registry", REG, "app:1", REG + "/t/app:1")
T.check("kiln --additional-store DIR push: pushed, the base's blobs read from the store",
        p2.returncode == 0, out(p2))

# kiln prune knows the stores: an image whose base blobs live in a store is not missing them
root_tag = os.path.join(T.tmp, "root-tag")
blobs_tag = sorted(os.listdir(os.path.join(root_tag, "blobs", "sha256")))
p1 = kiln("prune", "--root", root_tag)
T.check("kiln prune without the store: says refs point at missing blobs (the base's)",
        p1.returncode == 0 and "missing blobs" in p1.stderr, out(p1))
p2 = kiln("prune", "--root", root_tag, "--additional-store", STORE)
p3 = kiln("--additional-store", STORE, "prune", "--root", root_tag)
T.check("kiln prune --additional-store DIR (and kiln --additional-store DIR prune): no missing-blob "
        "warning, the 3 base blobs counted in the store, nothing of the root's image removed",
        p2.returncode == 0 and p3.returncode == 0 and "missing" not in p2.stderr + p3.stderr
        and "3 in additional stores" in p2.stderr and "3 in additional stores" in p3.stderr
        and sorted(os.listdir(os.path.join(root_tag, "blobs", "sha256"))) == blobs_tag,
        out(p2) + out(p3))
p4 = kiln("--additional-store", STORE, "push", "--root", root_tag, "--insecure-registry", REG,
          "app:1", REG + "/t/app:2")
T.check("after the prunes the image still pushes with the store", p4.returncode == 0, out(p4))
# a root whose image names lazy base blobs (the --no-blobs store's build): kept, not missing;
# once nothing names them their records go
root_nb = os.path.join(T.tmp, "root-nb2")
r = build("root-nb2", USE, "--additional-store", NB, "-t", "nb:1")
p5 = kiln("prune", "--root", root_nb, "--additional-store", NB)
T.check("kiln prune of a root naming lazy blobs: no missing-blob warning, the 3 counted as not "
        "downloaded, their records kept",
        r.returncode == 0 and p5.returncode == 0 and "missing" not in p5.stderr
        and "3 blob(s) not downloaded" in p5.stderr
        and len(os.listdir(os.path.join(root_nb, "lazy"))) == 3, out(r)[-800:] + out(p5))
p6 = kiln("rmi", "--root", root_nb, "nb:1")
time.sleep(1.2)  # the cache entries and the build's pin older than the age given
p7 = kiln("prune", "--root", root_nb, "--cache-max-age", "0.0002")
T.check("the image and its pins removed: prune drops the lazy records nothing names",
        p6.returncode == 0 and p7.returncode == 0 and os.listdir(os.path.join(root_nb, "lazy")) == [],
        out(p6) + out(p7) + str(os.listdir(os.path.join(root_nb, "lazy"))))

T.check("the store is unchanged by the builds and prunes (every entry hashed)",
        tree_hash(STORE) == before and tree_hash(NB) == nb_before, "")

# the store carried in a worker image (images/kiln/worker.sh + Dockerfile.worker, here on the
# busybox base instead of kiln's image): a build on an empty root uses the image's store
W = os.path.join(T.tmp, "worker-fs")
WL = os.path.join(T.tmp, "worker-oci")
env = dict(os.environ, KILN_BIN=KILN, KILN_STORE_FLAGS="--insecure-registry " + REG,
           TMPDIR=T.tmp)
p = subprocess.run(["bash", os.path.join(SRC, "images", "kiln", "worker.sh"), BASE, IMG, "--",
                    "--root", os.path.join(T.tmp, "root-worker"), "--progress", "plain",
                    "-o", "type=local,dest=" + W, "-o", "type=oci,dest=" + WL], env=env,
                   capture_output=True, text=True, timeout=600)
WS = os.path.join(W, "var", "lib", "kiln-store")
ok = p.returncode == 0 and os.path.isfile(os.path.join(WS, "kiln-additional-store"))
T.check("worker.sh: an image with the store at /var/lib/kiln-store", ok, p.stdout + p.stderr[-2000:])
wcfg = read_image(WL)[1] if p.returncode == 0 else {}
T.check("the worker image sets KILN_ADDITIONAL_STORES=/var/lib/kiln-store",
        "KILN_ADDITIONAL_STORES=/var/lib/kiln-store" in wcfg.get("config", {}).get("Env", []),
        str(wcfg.get("config")))
T.check("the image's store holds the same tree (owners, modes, contents) as the one made",
        ok and tree_hash(os.path.join(WS, "chains")) == tree_hash(os.path.join(STORE, "chains")), "")
n4 = len(proxy.log)
r = build("root-worker-use", USE, "--additional-store", WS)
T.check("a build on an empty root with the worker image's store: layers from it, none fetched, "
        "the same digest",
        r.returncode == 0 and r.stdout.strip() == digest_s and "layers from additional store " + WS
        in r.stderr and not [p for p in layer_gets(n4) if any(d in p for d in base_layers)],
        out(r)[-1500:])
proxy.close()
T.done()
