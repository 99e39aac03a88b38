"""kiln pull -o type=local: layers unpacked while they download (oci/pull_unpack), through a
fault-injecting proxy in front of a real docker-registry. A later layer's whiteout and opaque
directory remove what an earlier layer put there; a blob whose bytes are a valid gzip tar of
the right size but not its digest is unpacked to the end and then refused, leaving nothing at
the destination nor in the store; a download cut for good leaves nothing half-written; a pull
killed mid-download (its first files already unpacked: the unpack follows the download)
leaves no destination, and the next pull removes its temp tree and succeeds."""
import glob
import gzip
import os
import signal
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import KILN, T, kiln, start_registry  # noqa: E402
from registry_fixtures import FaultProxy, layout, sha, tar_of  # noqa: E402

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_BACKOFF_MS": "50",
                   "KILN_REGISTRY_MAX_BACKOFF_MS": "500"})
MARK = b"KILN-PULL-UNPACK-MARK-ORIGINAL"
EVIL = b"KILN-PULL-UNPACK-MARK-REPLACED"


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
T.done()
