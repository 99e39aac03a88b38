#!/usr/bin/env python3
"""kiln's local image store, as docker's: kiln build -t names the image in the store (kiln
images shows the digest -q printed), a bare -t and an -o type=registry,name= never reach a
registry nobody asked for (a listener that records every connection sees none), tag / rmi
(an unknown name refused, nothing removed), kiln push NAME and NAME DEST against
docker-registry, kiln pull naming what it pulled, save / load round trips in both formats read by skopeo, prune keeping named
images, and kiln run NAME running the image's CMD. One real build serves every case."""
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, write_tree  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
R = ("--root", ROOT)
base = make_base(ROOT)
host = f"127.0.0.1:{start_registry()}"
INS = ("--insecure-registry", host)


class Listener:
    """A TCP port that accepts and records every connection (a registry nobody asked for)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            c.close()


unasked = Listener()
other = f"127.0.0.1:{unasked.port}"


def images_json(root=ROOT):
    r = kiln("images", "--root", root, "--format", "json")
    return [json.loads(line) for line in r.stdout.splitlines()] if r.returncode == 0 else []


def by_name(root=ROOT):
    return {i["Repository"] + ":" + i["Tag"]: i for i in images_json(root)}


def registry_digest(repo, tag):
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as f:
            return f.headers.get("Docker-Content-Digest")
    except Exception as e:  # noqa: BLE001
        return str(e)


ctx = write_tree(os.path.join(T.tmp, "app"), {
    "Dockerfile": f'FROM {base}\nRUN echo built-by-kiln > /built\nCMD ["cat", "/built"]\n'})

# -t alone: named in the store, nothing pushed (the -t name's registry is a listener)
r = kiln("build", *R, "-q", "-t", "app:1", "-t", f"{other}/unasked:1", ctx)
digest = r.stdout.strip()
T.check("build -q -t: the image digest on stdout", r.returncode == 0 and digest.startswith("sha256:"),
        r.stderr[-1500:])
imgs = by_name()
T.check("kiln images: each -t name with the digest -q printed",
        imgs.get("app:1", {}).get("Digest") == digest
        and imgs.get(f"{other}/unasked:1", {}).get("Digest") == digest, imgs)
r2 = kiln("images", *R, "-q", "app")
T.check("kiln images -q REPO: the digest alone", r2.returncode == 0 and r2.stdout == digest + "\n", r2.stdout)
table = kiln("images", *R).stdout.splitlines()
T.check("kiln images: REPOSITORY TAG DIGEST SIZE CREATED, a row per name",
        table and table[0].split() == ["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"]
        and any(line.split()[:3] == ["app", "1", digest] for line in table[1:]), "\n".join(table))
T.check("a bare -t: the -t name's registry got no connection", unasked.connections == 0, unasked.connections)

# -o type=registry,name=X pushes X only, never the -t names
r = kiln("build", *R, *INS, "-t", f"{other}/unasked:2", "-o", f"type=registry,name={host}/asked:1", ctx)
T.check("-t A -o type=registry,name=B: B is pushed", r.returncode == 0 and registry_digest("asked", "1") == digest,
        r.stderr[-1500:])
T.check("-t A -o type=registry,name=B: A's registry got no connection", unasked.connections == 0,
        unasked.connections)
T.check("-t A -o type=registry,name=B: A is named in the store",
        by_name().get(f"{other}/unasked:2", {}).get("Digest") == digest, by_name().keys())
r = kiln("build", *R, *INS, "-t", f"{host}/tagged:1", "-o", "type=registry", ctx)
T.check("-t A -o type=registry: the -t name is pushed", r.returncode == 0 and registry_digest("tagged", "1") == digest,
        r.stderr[-1500:])

# tag / rmi
r = kiln("tag", *R, "app:1", "app:2")
T.check("kiln tag: the new name points at the same image",
        r.returncode == 0 and by_name().get("app:2", {}).get("Digest") == digest, r.stderr)
r = kiln("rmi", *R, "app:2", "nope:1")
T.check("kiln rmi of an unknown name: refused by name, nothing removed",
        r.returncode == 1 and r.stderr == "kiln: no image named docker.io/library/nope:1 in kiln's store "
        "(kiln images lists them)\n" and "app:2" in by_name(), r.stderr)
r = kiln("rmi", *R, "app:2")
T.check("kiln rmi: the name goes, the other names stay",
        r.returncode == 0 and "app:2" not in by_name() and "app:1" in by_name(), r.stdout + r.stderr)
r = kiln("tag", *R, "nope:1", "x:1")
T.check("kiln tag of an unknown name: refused by name", r.returncode == 1 and "no image named nope:1" in r.stderr,
        r.stderr)

# push
r = kiln("push", *R, *INS, "app:1", f"{host}/pushed:1")
T.check("kiln push NAME DEST: the store's image at DEST",
        r.returncode == 0 and r.stdout.strip() == digest and registry_digest("pushed", "1") == digest, r.stderr[-800:])
kiln("tag", *R, "app:1", f"{host}/own:1")
r = kiln("push", *R, *INS, f"{host}/own:1")
T.check("kiln push NAME: to its own name", r.returncode == 0 and registry_digest("own", "1") == digest,
        r.stderr[-800:])
r = kiln("push", *R, *INS, f"{host}/missing:1")
T.check("kiln push of a name not in the store: refused, nothing asked of the registry",
        r.returncode == 1 and f"no image named {host}/missing:1 in kiln's store" in r.stderr, r.stderr)


def unpacked_size(root, mdigest):
    """The image's layers decompressed, byte count (what kiln images' SIZE counts)."""
    import gzip
    blob = lambda d: open(os.path.join(root, "blobs", "sha256", d.split(":")[1]), "rb").read()
    man = json.loads(blob(mdigest))
    total = 0
    for layer in man["layers"]:
        b = blob(layer["digest"])
        total += len(gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b)
    return total


def memos(root, mdigest):
    man = json.load(open(os.path.join(root, "blobs", "sha256", mdigest.split(":")[1])))
    out = []
    for layer in man["layers"]:
        try:
            out.append(os.getxattr(os.path.join(root, "blobs", "sha256", layer["digest"][7:]),
                                   "user.kiln.usize"))
        except OSError:
            out.append(None)
    return out


# kiln pull NAME names the pulled image too (docker pull)
proot = os.path.join(T.tmp, "root-pull")
r = kiln("pull", "--root", proot, *INS, f"{host}/own:1")
with open(os.path.join(proot, "images", "index.json")) as f:
    pulled_entry = json.load(f)["images"].get(f"{host}/own:1", {})
pulled_memos = memos(proot, digest) if r.returncode == 0 else []
T.check("kiln pull NAME: named in the store with the registry's digest",
        r.returncode == 0 and by_name(proot).get(f"{host}/own:1", {}).get("Digest") == digest,
        r.stderr[-800:] + str(by_name(proot)))
# naming a pulled image decompresses none of its layers (the pull's cost was a second
# inflate of every layer): its size is measured by kiln images (above), once
T.check("kiln pull NAME: the name was recorded with no size, no layer measured",
        r.returncode == 0 and "size" not in pulled_entry and pulled_entry.get("digest") == digest
        and pulled_memos and all(m is None for m in pulled_memos),
        str(pulled_entry) + str(pulled_memos))
want = unpacked_size(proot, digest)
got = by_name(proot).get(f"{host}/own:1", {})
T.check("kiln images measures the pulled image: SizeBytes is its layers decompressed",
        got.get("SizeBytes") == want and want > 0, "%s want %d" % (got, want))
with open(os.path.join(proot, "images", "index.json")) as f:
    entry = json.load(f)["images"].get(f"{host}/own:1", {})
T.check("... and keeps it: the index has the size, each layer its memo",
        entry.get("size") == want and all(m is not None for m in memos(proot, digest)),
        str(entry) + str(memos(proot, digest)))
T.check("... the same size as the built image's in the builder's store",
        by_name().get("app:1", {}).get("SizeBytes") == want, by_name().get("app:1"))

r = kiln("inspect", *R, "store:app:1")
T.check("kiln inspect store:NAME: the image store's name", r.returncode == 0
        and json.loads(r.stdout or "{}").get("digest") == digest, r.stdout[:300] + r.stderr)
T.check("kiln import -t NAME: named in the store", "busybox:1" in by_name(), list(by_name()))

# save / load, both formats, read by skopeo
for fmt, transport in (("docker", "docker-archive"), ("oci", "oci-archive")):
    out = os.path.join(T.tmp, f"save-{fmt}.tar")
    r = kiln("save", *R, "--format", fmt, "-o", out, "app:1")
    sk = subprocess.run(["skopeo", "inspect", f"{transport}:{out}"], capture_output=True, text=True)
    info = json.loads(sk.stdout) if sk.returncode == 0 else {}
    T.check(f"kiln save --format {fmt}: skopeo reads it as {transport}",
            r.returncode == 0 and sk.returncode == 0 and info.get("Architecture") == "amd64"
            and len(info.get("Layers", [])) == 2, r.stderr + sk.stderr)
    fresh = os.path.join(T.tmp, f"root-{fmt}")
    r = kiln("load", "--root", fresh, "-i", out)
    loaded = by_name(fresh)
    T.check(f"kiln load of the {fmt} archive: the name and the digest come back",
            r.returncode == 0 and loaded.get("app:1", {}).get("Digest") == digest, r.stdout + r.stderr)
with open(os.path.join(T.tmp, "save-docker.tar"), "rb") as f:
    r = subprocess.run([os.environ["KILN_BIN"], "load", "--root", os.path.join(T.tmp, "root-stdin")], stdin=f,
                       capture_output=True, text=True)
T.check("kiln load < FILE: the archive read from stdin",
        r.returncode == 0 and by_name(os.path.join(T.tmp, "root-stdin")).get("app:1", {}).get("Digest") == digest
        and os.listdir(os.path.join(T.tmp, "root-stdin", "tmp")) == [], r.stderr)
sk_out = os.path.join(T.tmp, "skopeo-oci")
sk = subprocess.run(["skopeo", "copy", f"docker-archive:{os.path.join(T.tmp, 'save-docker.tar')}",
                     f"docker-archive:{sk_out}.tar:skopeo/made:7"], capture_output=True, text=True)
r = kiln("load", "--root", os.path.join(T.tmp, "root-sk"), "-i", sk_out + ".tar")
T.check("kiln load of skopeo's docker-archive: named as skopeo wrote it",
        sk.returncode == 0 and r.returncode == 0 and "skopeo/made:7" in by_name(os.path.join(T.tmp, "root-sk")),
        sk.stderr + r.stderr)
piped = os.path.join(T.tmp, "piped.tar")
with open(piped, "wb") as f:
    r = subprocess.run([os.environ["KILN_BIN"], "save", *R, "app:1"], stdout=f, stderr=subprocess.PIPE)
sk = subprocess.run(["skopeo", "inspect", f"docker-archive:{piped}"], capture_output=True, text=True)
T.check("kiln save > FILE: the archive on stdout, nothing left in the store's tmp/",
        r.returncode == 0 and sk.returncode == 0 and os.listdir(os.path.join(ROOT, "tmp")) == [],
        r.stderr.decode()[-500:] + sk.stderr)

# the OCI archive unpacked is an OCI layout directory skopeo reads as oci:DIR:TAG
lay = os.path.join(T.tmp, "oci-dir")
os.makedirs(lay)
subprocess.run(["tar", "-xf", os.path.join(T.tmp, "save-oci.tar"), "-C", lay], check=True)
sk = subprocess.run(["skopeo", "inspect", f"oci:{lay}:1"], capture_output=True, text=True)
T.check("kiln save --format oci unpacked: skopeo reads oci:DIR:1",
        sk.returncode == 0 and json.loads(sk.stdout).get("Architecture") == "amd64", sk.stderr)

bb = by_name().get("busybox:1", {}).get("Digest")
for fmt, transport in (("docker", "docker-archive"), ("oci", "oci-archive")):
    two = os.path.join(T.tmp, f"two-{fmt}.tar")
    r = kiln("save", *R, "--format", fmt, "-o", two, "app:1", "busybox:1")
    # an OCI archive's ref.name is a tag alone ("1" twice here): skopeo finds one image by it
    # only in a docker-archive; the OCI index names both by io.containerd.image.name
    sk = subprocess.run(["skopeo", "inspect", f"{transport}:{two}:busybox:1"] if fmt == "docker"
                        else ["tar", "-xOf", two, "index.json"], capture_output=True, text=True)
    if fmt == "oci" and sk.returncode == 0:
        names = [m.get("annotations", {}).get("io.containerd.image.name")
                 for m in json.loads(sk.stdout)["manifests"]]
        sk.returncode = 0 if names == ["docker.io/library/app:1", "docker.io/library/busybox:1"] else 1
        sk.stderr = str(names)
    fresh = os.path.join(T.tmp, f"root-two-{fmt}")
    r2 = kiln("load", "--root", fresh, "-i", two)
    loaded = by_name(fresh)
    T.check(f"kiln save --format {fmt} of two images: skopeo finds each, load names both",
            r.returncode == 0 and sk.returncode == 0 and r2.returncode == 0
            and loaded.get("app:1", {}).get("Digest") == digest and loaded.get("busybox:1", {}).get("Digest") == bb
            and bb != digest, r.stderr + sk.stderr + r2.stderr + str(loaded))
r = kiln("save", *R, "-o", os.path.join(T.tmp, "two.tar"), "app:1", "nope:3")
T.check("kiln save of a name not in the store: refused by name", r.returncode == 1 and "no image named" in r.stderr,
        r.stderr)

# two builds naming at once: neither name is lost, the index stays whole
procs = [subprocess.Popen([os.environ["KILN_BIN"], "build", *R, "-q", "-t", f"race{i}:1", ctx],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
outs = [p.communicate(timeout=600) for p in procs]
names = by_name()
T.check("two builds tagging at once: both names in the index",
        all(p.returncode == 0 for p in procs) and names.get("race0:1", {}).get("Digest") == digest
        and names.get("race1:1", {}).get("Digest") == digest, str(outs)[-1500:])

# kiln run NAME: the image's CMD, and a command given
r = kiln("run", *R, "app:1")
T.check("kiln run NAME: the image's CMD runs", r.returncode == 0 and r.stdout == "built-by-kiln\n",
        r.stdout + r.stderr[-800:])
r = kiln("run", *R, "app:1", "sh", "-c", "echo given; cat /built")
T.check("kiln run NAME CMD...: the command given", r.returncode == 0 and r.stdout == "given\nbuilt-by-kiln\n",
        r.stdout + r.stderr[-800:])

# prune keeps named images; after the last name goes, so do its blobs
man = os.path.join(ROOT, "blobs", "sha256", digest.split(":")[1])
old = __import__("time").time() - 7200
for ref in os.listdir(os.path.join(ROOT, "refs")):
    os.utime(os.path.join(ROOT, "refs", ref), (old, old))
r = kiln("prune", *R, "--cache-max-age", "1")
T.check("kiln prune --cache-max-age 1 keeps a named image (build pins and cache, 2 h old, dropped)", r.returncode == 0 and os.path.exists(man), r.stderr)
names = [n for n, i in by_name().items() if i["Digest"] == digest]
r = kiln("rmi", *R, *names)
# the build pins and cache entries were last used 2 hours ago (no timing in the test)
old = __import__("time").time() - 7200
for ref in os.listdir(os.path.join(ROOT, "refs")):
    os.utime(os.path.join(ROOT, "refs", ref), (old, old))
r2 = kiln("prune", *R, "--cache-max-age", "1")
T.check("rmi of every name, then prune --cache-max-age 1 (pins 2 h old): the manifest is gone",
        r.returncode == 0 and r2.returncode == 0 and not os.path.exists(man), r.stderr + r2.stderr)
T.check("nothing ever reached the unasked registry", unasked.connections == 0, unasked.connections)
T.done()
