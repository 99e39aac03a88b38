"""What the tests of `kiln pull -o type=local` streaming (oci/pull_stream's memory mode) share:
a real docker-registry behind a fault-injecting proxy, an image whose first layer is 24 MiB of
random bytes (six times the 4 MiB the download may run ahead of the unpacker) with a later
layer's whiteout and a layer named twice, the same image with a wrong diff_id, and the
helpers that pull it and look at what a pull left. Imported by test_pull_local_stream.py and
test_hostile_pull_stream.py (each then has a registry and proxy of its own)."""
import glob
import gzip
import hashlib
import io
import json
import os
import tarfile

from kilntest import T, kiln, start_registry
from registry_fixtures import MT_CONFIG, MT_LAYER_GZ, MT_MANIFEST, FaultProxy, _put_blob, sha, write_index

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_BACKOFF_MS": "50",
                   "KILN_REGISTRY_MAX_BACKOFF_MS": "500"})


def tar_of(entries):
    """entries: (path, bytes or "dir"); a stored (level 0) gzip blob and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in entries:
            ti = tarfile.TarInfo(path)
            if data == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=0, mtime=0), sha(raw.getvalue())


def layout(path, layers, diff_ids=None):
    """An OCI layout of the given (gzip, diff_id) layers (diff_ids: the config's, if not
    theirs), tagged v1."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers",
                                 "diff_ids": diff_ids or [d for _, d in layers]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": _put_blob(path, cfg), "size": len(cfg)},
                      "layers": [{"mediaType": MT_LAYER_GZ, "digest": _put_blob(path, gz), "size": len(gz)}
                                 for gz, _ in layers]}).encode()
    write_index(path, [({"mediaType": MT_MANIFEST, "digest": _put_blob(path, man), "size": len(man)}, "v1")])
    return sha(cfg)


A = start_registry()
a = "127.0.0.1:%d" % A
proxy = FaultProxy(A)
pa = "127.0.0.1:%d" % proxy.port
# 24 MiB of random bytes (stored gzip: as big compressed): six times the 4 MiB the download
# may run ahead of the unpacker
rnd = os.urandom(24 << 20)
big = tar_of([("data", "dir"), ("data/big.bin", rnd), ("data/small", b"small\n")])
small = tar_of([("etc", "dir"), ("etc/twice", b"named twice\n")])
top = tar_of([("etc", "dir"), ("etc/top", b"top\n"), ("data", "dir"), ("data/.wh.small", b"")])
L = os.path.join(T.tmp, "L")
layout(L, [big, small, top, small])
p = kiln("push", "--root", os.path.join(T.tmp, "s0"), "--insecure-registry", a, "oci:%s:v1" % L, "%s/t/app:v1" % a)
T.check("setup: push", p.returncode == 0, p.stderr)
# the same image but its config names another tar as layer 3's diff_id
B = os.path.join(T.tmp, "B")
bad_cfg = layout(B, [big, small, top], [big[1], small[1], sha(b"not this tar")])
p = kiln("push", "--root", os.path.join(T.tmp, "s0"), "--insecure-registry", a, "oci:%s:v1" % B, "%s/t/bad:v1" % a)
T.check("setup: push the image with a wrong diff_id", p.returncode == 0, p.stderr)
big_digest = sha(big[0])
n = [0]


def pull(ref="t/app:v1", *extra, out=None):
    """Pulls through the proxy into a fresh store and OUT/dN; returns (process, store, dest)."""
    n[0] += 1
    root, dest = os.path.join(T.tmp, "store%d" % n[0]), os.path.join(T.tmp, "out", "d%d" % n[0])
    p = kiln("pull", "--root", root, "--insecure-registry", pa, "-o", out or "type=local,dest=" + dest, *extra,
             "%s/%s" % (pa, ref), env=dict(os.environ, KILN_REGISTRY_RETRIES="2"))
    return p, root, dest


def blobs(root):
    return sorted("sha256:" + os.path.basename(b) for b in glob.glob(os.path.join(root, "blobs", "sha256", "*")))


def left_behind(root, dest, blob):
    """What a failed pull left: the destination, temp trees beside it, the blob, temp blobs."""
    return ([dest] if os.path.lexists(dest) else []) + \
        glob.glob(os.path.join(os.path.dirname(dest), ".kiln-unpack-*")) + \
        [b for b in blobs(root) if b == blob] + glob.glob(os.path.join(root, "tmp", "*"))


def tree_ok(dest):
    def read(*p):
        with open(os.path.join(dest, *p), "rb") as f:
            return f.read()
    return (hashlib.sha256(read("data", "big.bin")).digest() == hashlib.sha256(rnd).digest() and
            read("etc", "twice") == b"named twice\n" and read("etc", "top") == b"top\n" and
            not os.path.lexists(os.path.join(dest, "data", "small")))


def rules(*rs):
    proxy.rules = [dict(r) for r in rs]
    proxy.hits.clear()
    proxy.log.clear()


