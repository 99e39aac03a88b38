"""kiln pull -o type=local: layers unpacked while they download (oci/pull_unpack), through a
fault-injecting proxy in front of a real docker-registry. A later layer's whiteout and opaque
directory remove what an earlier layer put there; a blob whose bytes are a valid gzip tar of
the right size but not its digest is unpacked to the end and then refused, leaving nothing at
the destination nor in the store; a download cut for good leaves nothing half-written; a pull
killed mid-download (its first files already unpacked: the unpack follows the download)
leaves no destination, and the next pull removes its temp tree and succeeds."""
import glob
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import KILN, T, kiln, start_registry  # noqa: E402
from registry_fixtures import (MT_CONFIG, MT_LAYER_GZ, MT_MANIFEST, FaultProxy, _put_blob,  # noqa: E402
                               sha, write_index)

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_BACKOFF_MS": "50",
                   "KILN_REGISTRY_MAX_BACKOFF_MS": "500"})
MARK = b"KILN-PULL-UNPACK-MARK-ORIGINAL"
EVIL = b"KILN-PULL-UNPACK-MARK-REPLACED"


def tar_of(entries):
    """entries: list of (path, bytes | "dir" | ("dir", mode) | ("sym", target) | ("link", target));
    a stored (level 0) gzip blob and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in entries:
            ti = tarfile.TarInfo(path)
            ti.mtime = 1700000000
            if data == "dir" or isinstance(data, tuple) and data[0] == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, data[1] if isinstance(data, tuple) else 0o755
                tf.addfile(ti)
            elif isinstance(data, tuple):  # ("sym", target) or ("link", target)
                ti.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                ti.linkname, ti.mode = data[1], 0o777 if data[0] == "sym" else 0o644
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, compresslevel=0, mtime=0), sha(tar)


def layout(path, layers):
    """An OCI layout of the given (gzip, diff_id) layers, tagged v1."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": _put_blob(path, cfg), "size": len(cfg)},
                      "layers": [{"mediaType": MT_LAYER_GZ, "digest": _put_blob(path, gz), "size": len(gz)}
                                 for gz, _ in layers]}).encode()
    write_index(path, [({"mediaType": MT_MANIFEST, "digest": _put_blob(path, man), "size": len(man)}, "v1")])


A = start_registry()
a = "127.0.0.1:%d" % A
proxy = FaultProxy(A)
pa = "127.0.0.1:%d" % proxy.port
rnd = [os.urandom(1 << 20) for _ in range(4)]
base = tar_of([("etc", "dir"), ("etc/hello", b"hello\n"), ("etc/gone", b"removed by layer 2\n"),
               ("opt", "dir"), ("opt/old", b"hidden by the opaque dir\n"), ("opt/sub", "dir"),
               ("opt/sub/deep", b"deep\n")])
top = tar_of([("etc", "dir"), ("etc/.wh.gone", b""), ("opt", "dir"), ("opt/.wh..wh..opq", b""),
              ("opt/new", b"layer 2\n"), ("etc/hello", b"hello again\n")])
# a layer of 4 MiB: three files whole in its first half (a pull stalled there has them)
big = tar_of([("data", "dir"), ("data/a.bin", rnd[0]), ("data/b.bin", rnd[1]),
              ("data/m.bin", rnd[2][:500000] + MARK + rnd[2][500000:]), ("data/z.bin", rnd[3])])
L = os.path.join(T.tmp, "L")
layout(L, [base, top, big])
big_digest = sha(big[0])
p = kiln("push", "--root", os.path.join(T.tmp, "s0"), "--insecure-registry", a, "oci:%s:v1" % L, "%s/t/app:v1" % a)
T.check("setup: push", p.returncode == 0, p.stderr)

# The same size and a valid gzip tar, one file changed: only the digest tells.
gz = bytearray(big[0])
at = gz.find(MARK)
T.check("setup: the marker is whole in one stored block", at > 0 and gz.count(MARK) == 1)
gz[at:at + len(MARK)] = EVIL
tar = gzip.decompress(big[0]).replace(MARK, EVIL)
gz[-8:-4] = (zlib.crc32(tar) & 0xFFFFFFFF).to_bytes(4, "little")
evil = bytes(gz)
n = [0]


def pull(*extra, env=None):
    """Pulls through the proxy into a fresh store and OUT/dN; returns (process, store, dest)."""
    n[0] += 1
    root, dest = os.path.join(T.tmp, "store%d" % n[0]), os.path.join(T.tmp, "out", "d%d" % n[0])
    p = kiln("pull", "--root", root, "--insecure-registry", pa, "-o", "type=local,dest=" + dest, *extra,
             "%s/t/app:v1" % pa, env=env)
    return p, root, dest


def rules(*rs):
    proxy.rules = [dict(r) for r in rs]
    proxy.hits.clear()


def left_behind(root, dest):
    """What a failed pull left: the destination, temp trees beside it, the big blob, temp blobs."""
    return ([dest] if os.path.lexists(dest) else []) + \
        glob.glob(os.path.join(os.path.dirname(dest), ".kiln-unpack-*")) + \
        glob.glob(os.path.join(root, "blobs", "sha256", big_digest[7:])) + \
        glob.glob(os.path.join(root, "tmp", "*"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --- whiteouts and opaque directories of a later layer, applied while streaming ---
rules()
p, root, dest = pull()
T.check("pull -o type=local succeeds", p.returncode == 0, p.stderr)
T.check("a whiteout in layer 2 removes layer 1's file", os.path.exists(os.path.join(dest, "etc")) and
        not os.path.lexists(os.path.join(dest, "etc", "gone")), os.listdir(os.path.join(dest, "etc")))
T.check("an opaque directory in layer 2 hides layer 1's entries",
        sorted(os.listdir(os.path.join(dest, "opt"))) == ["new"], os.listdir(os.path.join(dest, "opt")))
T.check("a file replaced by a later layer has its content", read(os.path.join(dest, "etc", "hello")) ==
        b"hello again\n")
T.check("the big layer's files are whole", read(os.path.join(dest, "data", "z.bin")) == rnd[3] and
        MARK in read(os.path.join(dest, "data", "m.bin")))
T.check("no whiteout marker or temp tree is left", not glob.glob(os.path.join(dest, "**", ".wh.*"),
                                                                 recursive=True) and
        not glob.glob(os.path.join(T.tmp, "out", ".kiln-unpack-*")))
T.check("mtimes come from the layer", os.stat(os.path.join(dest, "data", "a.bin")).st_mtime == 1700000000)

# --- a digest mismatch found once the layer is unpacked to its end ---
rules({"method": "GET", "path": big_digest, "action": ("body", "application/octet-stream", evil), "count": -1})
p, root, dest = pull(env={"KILN_REGISTRY_RETRIES": "0"})
T.check("a blob that does not match its digest fails the pull", p.returncode != 0 and
        "does not match its digest" in p.stderr and big_digest[7:] in p.stderr, p.stderr)
T.check("the served bytes were read to the end (the mismatch is the digest's, not the gzip's)",
        "corrupt" not in p.stderr and "truncated" not in p.stderr, p.stderr)
T.check("digest mismatch: nothing left at the destination, beside it or in the store",
        left_behind(root, dest) == [], left_behind(root, dest))

# --- a download cut for good ---
rules({"method": "GET", "path": big_digest, "action": "cut", "count": -1})
p, root, dest = pull(env={"KILN_REGISTRY_RETRIES": "1"})
T.check("a blob cut on every attempt fails the pull naming it", p.returncode != 0 and
        big_digest[7:] in p.stderr, p.stderr)
T.check("cut download: nothing left at the destination, beside it or in the store",
        left_behind(root, dest) == [], left_behind(root, dest))

# --- killed mid-download: its unpack had begun; the next pull cleans up ---
rules({"method": "GET", "path": big_digest, "action": "stall", "count": 1, "stall": 60})
n[0] += 1
root, dest = os.path.join(T.tmp, "store%d" % n[0]), os.path.join(T.tmp, "out", "killed")
proc = T.spawn([KILN, "pull", "--root", root, "--insecure-registry", pa, "-o", "type=local,dest=" + dest,
                "%s/t/app:v1" % pa], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seen = None
end = time.time() + 60
while time.time() < end and seen is None and proc.poll() is None:
    for t in glob.glob(os.path.join(T.tmp, "out", ".kiln-unpack-*", "*", "data", "a.bin")):
        if os.path.getsize(t) == len(rnd[0]):
            seen = t
    time.sleep(0.05)
T.check("the first files of a layer are unpacked while the rest still downloads", seen is not None and
        proc.poll() is None and read(seen) == rnd[0] and len(proxy.hits) == 1)
proc.send_signal(signal.SIGKILL)
proc.wait()
stale = glob.glob(os.path.join(T.tmp, "out", ".kiln-unpack-*"))
T.check("killed mid-download: no destination (its temp tree is hidden beside it)",
        not os.path.lexists(dest) and len(stale) == 1, stale)
rules()
p = kiln("pull", "--root", root, "--insecure-registry", pa, "-o", "type=local,dest=" + dest, "%s/t/app:v1" % pa)
T.check("the next pull into the same directory succeeds and removes the killed pull's temp tree",
        p.returncode == 0 and read(os.path.join(dest, "data", "z.bin")) == rnd[3] and
        not os.path.lexists(stale[0] if stale else "/nonexistent-kiln"), p.stderr)
proxy.close()

# --- layers unpacked side by side and merged in order (oci/unpack_merge) ---
# A host directory with a marker that links in the layers point at (absolute, and by ..).
HOST = os.path.join(T.tmp, "hostdir")
os.makedirs(HOST)
with open(os.path.join(HOST, "marker"), "wb") as f:
    f.write(MARK)
comps = HOST.strip("/").split("/")
l1 = tar_of([(("/".join(comps[:k + 1])), "dir") for k in range(len(comps))] +  # HOST inside the root
            [("esc", ("sym", HOST)), ("up", ("sym", "../../../../../../../..")),
             ("lnk", ("sym", HOST)), ("usr", "dir"), ("usr/lib", "dir"), ("lib", ("sym", "usr/lib")),
             ("keep", ("dir", 0o700)), ("keep/a", b"a\n"), ("shared", b"linked from layer 2\n"),
             ("dropdir", "dir"), ("dropdir/x", b"x\n")])
l2 = tar_of([("esc/marker", EVIL), ("up/marker2", EVIL), ("lnk", ("dir", 0o750)), ("lnk/inside", b"in\n"),
             ("lib/libz.so", b"z\n"), ("keep/b", b"b\n"), ("hard", ("link", "shared")),
             ("mid", b"from layer 2\n"), (".wh.dropdir", b"")])
l3 = tar_of([(".wh.mid", b""), ("keep", ("dir", 0o711)), ("keep/c", b"c\n")])
P = os.path.join(T.tmp, "P")
layout(P, [l1, l2, l3])
p = kiln("push", "--root", os.path.join(T.tmp, "s0"), "--insecure-registry", a, "oci:%s:v1" % P, "%s/t/par:v1" % a)
T.check("setup: push the 3-layer image", p.returncode == 0, p.stderr)
dest = os.path.join(T.tmp, "out", "par")
p = kiln("pull", "--root", os.path.join(T.tmp, "store-par"), "--insecure-registry", a,
         "-o", "type=local,dest=" + dest, "%s/t/par:v1" % a)
T.check("a pull whose later layers are unpacked on their own and merged succeeds", p.returncode == 0, p.stderr)
inroot = os.path.join(dest, *comps)
T.check("links of layer 1 to a host path (absolute, by ..) lead inside the root for layer 2's files",
        read(os.path.join(inroot, "marker")) == EVIL and read(os.path.join(dest, "marker2")) == EVIL)
T.check("the host directory is neither read through nor written: its marker and listing unchanged",
        read(os.path.join(HOST, "marker")) == MARK and os.listdir(HOST) == ["marker"])
T.check("layer 2's directory entry replaces layer 1's link of that name (its own mode)",
        not os.path.islink(os.path.join(dest, "lnk")) and
        os.stat(os.path.join(dest, "lnk")).st_mode & 0o7777 == 0o750 and
        read(os.path.join(dest, "lnk", "inside")) == b"in\n")
T.check("a file under a directory layer 2 only implies goes through layer 1's link (lib -> usr/lib)",
        os.path.islink(os.path.join(dest, "lib")) and
        read(os.path.join(dest, "usr", "lib", "libz.so")) == b"z\n")
T.check("a hardlink in layer 2 to layer 1's file (applied in place) shares its inode",
        os.stat(os.path.join(dest, "hard")).st_ino == os.stat(os.path.join(dest, "shared")).st_ino and
        read(os.path.join(dest, "hard")) == b"linked from layer 2\n")
T.check("a whiteout in layer 2 removes layer 1's directory; one in layer 3 removes layer 2's file",
        not os.path.lexists(os.path.join(dest, "dropdir")) and not os.path.lexists(os.path.join(dest, "mid")))
st = os.stat(os.path.join(dest, "keep"))
T.check("a directory in three layers: every layer's files, the last directory entry's mode and mtime",
        sorted(os.listdir(os.path.join(dest, "keep"))) == ["a", "b", "c"] and st.st_mode & 0o7777 == 0o711 and
        st.st_mtime == 1700000000, (oct(st.st_mode), st.st_mtime))
T.check("no layer directory or whiteout left", not glob.glob(os.path.join(T.tmp, "out", ".kiln-unpack-*")) and
        not [f for _, ds, fs in os.walk(dest) for f in ds + fs if f.startswith(".wh.")])  # links not followed
T.done()
