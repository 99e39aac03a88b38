"""kiln pull -o type=local without store=true: each layer's bytes go from the download through
memory to the unpacker and never into kiln's store (oci/pull_stream's memory mode), through a
fault-injecting proxy in front of a real docker-registry. A layer larger than the memory the
download may run ahead by (the download pauses and resumes); a download cut halfway resumes
with Range, and a registry answering that Range with the whole blob (200) has its repeated
bytes skipped; a layer named twice in the manifest; store=true keeps the blobs and names the
image. A blob answered with other bytes or with more bytes than its size, and a layer whose tar
is not the config's diff_id, fail naming the blob / the diff_id and leave nothing at the
destination, beside it or in the store."""
import glob
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln, start_registry  # noqa: E402
from registry_fixtures import (MT_CONFIG, MT_LAYER_GZ, MT_MANIFEST, FaultProxy, _put_blob,  # noqa: E402
                               sha, write_index)

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


# --- streamed only: the tree, and no layer blob in the store ---
rules()
p, root, dest = pull()
T.check("pull -o type=local of a layer 6x the stream's memory succeeds", p.returncode == 0, p.stderr)
T.check("its tree: the big file whole, a later layer's whiteout applied, the twice-named layer's file",
        p.returncode == 0 and tree_ok(dest))
T.check("no blob of a layer named once is in the store (only the config and the layer named twice)",
        len(blobs(root)) == 2 and sha(small[0]) in blobs(root), blobs(root))
T.check("no temp file is left in the store", glob.glob(os.path.join(root, "tmp", "*")) == [])
q = kiln("images", "--root", root)
T.check("the image is not named in the store (its layers are not there)",
        q.returncode == 0 and "t/app" not in q.stdout, q.stdout + q.stderr)

# --- store=true: every blob kept, the image named ---
p, root, dest = pull("t/app:v1", out="type=local,dest=%s,store=true" % os.path.join(T.tmp, "out", "kept"))
T.check("store=true: the pull succeeds and the tree is the same",
        p.returncode == 0 and tree_ok(os.path.join(T.tmp, "out", "kept")), p.stderr)
T.check("store=true: every layer blob is in the store", big_digest in blobs(root) and
        sha(top[0]) in blobs(root), blobs(root))
q = kiln("images", "--root", root)
T.check("store=true: the image is named in the store", q.returncode == 0 and "t/app" in q.stdout,
        q.stdout + q.stderr)
p = kiln("pull", "--root", root, "-o", "type=oci,dest=%s,store=true" % os.path.join(T.tmp, "x"),
         "%s/t/app:v1" % pa)
T.check("store= is refused for type=oci (a usage error)", p.returncode == 2 and "store=" in p.stderr, p.stderr)

# --- a download cut halfway resumes where the stream is ---
rules({"method": "GET", "path": big_digest[7:], "action": "cut", "count": 1})
p, root, dest = pull()
ranges = [r for m, path, r in proxy.log if big_digest[7:] in path and m == "GET"]
T.check("a cut download resumes with Range and the pull succeeds", p.returncode == 0 and tree_ok(dest) and
        len(ranges) == 2 and ranges[0] is None and (ranges[1] or "").startswith("bytes="), (p.stderr, ranges))

# --- a Range answered with the whole blob: the bytes the stream has are skipped ---
rules({"method": "GET", "path": big_digest[7:], "action": "cut", "count": 1},
      {"method": "GET", "path": big_digest[7:], "action": ("body", "application/octet-stream", big[0]), "count": 1})
p, root, dest = pull()
T.check("a 200 answering a Range: the repeated bytes are skipped, the tree is whole",
        p.returncode == 0 and tree_ok(dest) and len(proxy.hits) == 2, (p.stderr, proxy.hits))

# --- other bytes for the big blob: refused once read to the end, nothing left ---
evil = bytearray(big[0])
evil[len(evil) // 2] ^= 0x01  # inside the random file's stored bytes: still a valid gzip tar
rules({"method": "GET", "path": big_digest[7:], "action": ("body", "application/octet-stream", bytes(evil)),
       "count": -1})
p, root, dest = pull()
T.check("a blob answered with other bytes fails the pull naming it", p.returncode != 0 and
        "does not match its digest" in p.stderr and big_digest[7:] in p.stderr, p.stderr)
T.check("other bytes: nothing at the destination, beside it or in the store",
        left_behind(root, dest, big_digest) == [], left_behind(root, dest, big_digest))

# --- more bytes than the blob's size: stopped at its size (the unpacker never sees more) ---
rules({"method": "GET", "path": big_digest[7:],
       "action": ("body", "application/octet-stream", big[0] + os.urandom(8 << 20)), "count": -1})
p, root, dest = pull()
T.check("a blob answered with more bytes than its size fails naming it", p.returncode != 0 and
        "more than the expected" in p.stderr and big_digest[7:] in p.stderr, p.stderr)
T.check("more bytes: nothing at the destination, beside it or in the store",
        left_behind(root, dest, big_digest) == [], left_behind(root, dest, big_digest))

# --- a layer that is not the config's diff_id ---
rules()
p, root, dest = pull("t/bad:v1")
T.check("a layer whose tar is not the config's diff_id fails naming the diff_id and the layer",
        p.returncode != 0 and "diff_id mismatch" in p.stderr and sha(b"not this tar") in p.stderr and
        sha(top[0]) in p.stderr, p.stderr)
T.check("diff_id mismatch: nothing at the destination, beside it, and no layer blob in the store",
        left_behind(root, dest, None) == [] and blobs(root) == [bad_cfg], (left_behind(root, dest, None), blobs(root)))
proxy.close()
T.done()
