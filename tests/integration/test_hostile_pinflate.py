"""Hostile gzip layers against the parallel gzip decoder (oci/pinflate: chunks cut after
00 00 FF FF and decoded ahead by worker threads), pulled from a real docker-registry with
`kiln pull -o type=local`, with the workers (KILN_INFLATE_THREADS=2) and without (0). The
registry's owner wrote every byte, digests included, so only the decoding itself stands
between a crafted layer and the tree:
- candidates that are no block boundaries but start valid DEFLATE data of their own (a
  compressed piece stored verbatim inside a stored block), mixed with real independent pieces
  and with pieces that refer back across a candidate (pigz's dictionary): the tree is the
  tar's, byte for byte, both ways;
- decoys inside stored blocks whose own stored-block header ends where the real block ends:
  decoded from there the stream is valid, falls in step with the real one and ends cleanly at
  the next real flush, 5 bytes short: the file is whole, both ways;
- a chunk that inflates far beyond what a worker may hold (50 MiB of text between two
  candidates): the same tree, and kiln's peak memory stays bounded;
- a CRC-32 or size in the trailer that does not match the data, and data after the member:
  the pull fails saying so, and leaves nothing at the destination."""
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import KILN, T, kiln, start_registry  # noqa: E402
from registry_fixtures import MT_CONFIG, MT_LAYER_GZ, MT_MANIFEST, _put_blob, sha, write_index  # noqa: E402

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost"})


def member(data, pieces):
    """A gzip member of data: pieces is a list of (length, zlib level, flush after it)."""
    c = None
    body, off = b"", 0
    for n, level, flush in pieces:
        if c is None or level != c[1]:
            if c is not None:
                body += c[0].flush(zlib.Z_FULL_FLUSH)
            c = (zlib.compressobj(level, zlib.DEFLATED, -15), level)
        body += c[0].compress(data[off:off + n]) + c[0].flush(flush)
        off += n
    assert off == len(data)
    body += c[0].flush(zlib.Z_FINISH)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + body +
            struct.pack("<II", zlib.crc32(data), len(data) & 0xffffffff))


def tar_of(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("data")
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(ti)
        for name, data in files:
            ti = tarfile.TarInfo("data/" + name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
    return raw.getvalue()


def text(n, seed):
    out, i = bytearray(), seed
    while len(out) < n:
        i += 1
        out += b"line %d of a layer that compresses well %d\n" % (i, i * 7919 % 1000)
    return bytes(out[:n])


# A compressed piece (its own sync flush at the end), stored verbatim inside the layer's data:
# a candidate (00 00 FF FF) that starts valid DEFLATE data, but is no block boundary.
co = zlib.compressobj(6, zlib.DEFLATED, -15)
piece = b"\x00\x00\xff\xff" + co.compress(text(60000, 1)) + co.flush(zlib.Z_FULL_FLUSH)
rnd = os.urandom(8 << 20)
decoy = bytearray(os.urandom(3 << 20))
for off in range(5000, len(decoy) - len(piece), 40000):
    decoy[off:off + len(piece)] = piece
decoy = bytes(decoy)
files = [("rnd", rnd), ("decoy", decoy), ("text", text(12 << 20, 2))]
tar = tar_of(files)
# level 0 for the random and decoy files (stored blocks: the piece verbatim), then text in
# pieces: most independent (full flushes), some referring back (sync flushes keep the window)
pieces, left, k = [], len(tar), 0
while left > 0:
    n = min(left, 700000 if k % 2 else 300000)
    at = len(tar) - left
    level = 0 if at < len(rnd) + len(decoy) + 4096 else 6
    pieces.append((n, level, zlib.Z_SYNC_FLUSH if k % 5 == 4 else zlib.Z_FULL_FLUSH))
    left -= n
    k += 1
mixed = member(tar, pieces)

# Stored blocks written by hand, with a decoy inside some: after a candidate in the data, a
# stored-block header of its own whose length ends exactly where the real block ends. Decoded
# from the decoy, the stream is valid and falls in step with the real one at the next block:
# a worker's decode of that chunk ends cleanly at the next real flush, with 5 bytes missing.
BLK = 65535
content = bytearray(os.urandom(BLK * 200))
tar0 = tar_of([("stored", bytes(content))])
start = tar0.find(bytes(content[:64]))
stored_tar = bytearray(tar0)
for k in range(len(stored_tar) // BLK):
    for x in (3000 + k * 4099 % 50000,):
        pos = k * BLK + x
        if k % 5 == 3 and start + 64 <= pos and pos + 9 < min(start + len(content), (k + 1) * BLK):
            rest = BLK - (x + 9)
            stored_tar[pos:pos + 9] = b"\x00\x00\xff\xff\x00" + struct.pack("<HH", rest, rest ^ 0xffff)
stored_tar = bytes(stored_tar)
stored_content = stored_tar[start:start + len(content)]
raw = b""
for k, i in enumerate(range(0, len(stored_tar), BLK)):
    data = stored_tar[i:i + BLK]
    last = i + BLK >= len(stored_tar)
    raw += bytes([1 if last else 0]) + struct.pack("<HH", len(data), len(data) ^ 0xffff) + data
    if not last and k % 3 == 2:
        raw += b"\x00\x00\x00\xff\xff"  # a real sync flush: an empty stored block
decoys = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + raw +
          struct.pack("<II", zlib.crc32(stored_tar), len(stored_tar) & 0xffffffff))

bomb_tar = tar_of([("bomb", text(50 << 20, 3))])
bomb = member(bomb_tar, [(len(bomb_tar) // 2, 9, zlib.Z_FULL_FLUSH),
                         (len(bomb_tar) - len(bomb_tar) // 2, 9, zlib.Z_FULL_FLUSH)])

bad_crc = bytearray(mixed)
bad_crc[-8] ^= 0x01
bad_size = bytearray(mixed)
bad_size[-1] ^= 0x01
trailing = mixed + b"not a gzip member"

R = start_registry()
reg = "127.0.0.1:%d" % R


def push(tag, gz, tar_bytes):
    L = os.path.join(T.tmp, "L-" + tag)
    os.makedirs(os.path.join(L, "blobs", "sha256"))
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [sha(tar_bytes)]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": _put_blob(L, cfg), "size": len(cfg)},
                      "layers": [{"mediaType": MT_LAYER_GZ, "digest": _put_blob(L, bytes(gz)),
                                  "size": len(gz)}]}).encode()
    write_index(L, [({"mediaType": MT_MANIFEST, "digest": _put_blob(L, man), "size": len(man)}, "v1")])
    p = kiln("push", "--root", os.path.join(T.tmp, "push"), "--insecure-registry", reg, "oci:%s:v1" % L,
             "%s/h/%s:v1" % (reg, tag))
    T.check("setup: push %s" % tag, p.returncode == 0, p.stderr)


for tag, gz in (("mixed", mixed), ("bomb", bomb), ("crc", bad_crc), ("size", bad_size),
                ("trailing", trailing), ("decoys", decoys)):
    push(tag, gz, bomb_tar if tag == "bomb" else stored_tar if tag == "decoys" else tar)

n = [0]


def pull(tag, threads):
    """Pulls h/TAG into a fresh store and destination; (process, dest, peak RSS in KiB)."""
    n[0] += 1
    root, dest = os.path.join(T.tmp, "s%d" % n[0]), os.path.join(T.tmp, "out", "d%d" % n[0])
    env = dict(os.environ, KILN_INFLATE_THREADS=str(threads))
    p = subprocess.run(["/usr/bin/time", "-f", "maxrss=%M", KILN, "pull", "--progress=none", "--root", root,
                        "--insecure-registry", reg, "-o", "type=local,dest=" + dest, "%s/h/%s:v1" % (reg, tag)],
                       capture_output=True, text=True, env=env, timeout=600)
    rss = [int(x[7:]) for x in p.stderr.split() if x.startswith("maxrss=")]
    return p, dest, rss[-1] if rss else 0


def same_files(dest, want):
    for name, data in want:
        path = os.path.join(dest, "data", name)
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).digest() != hashlib.sha256(data).digest():
                return False
    return True


for threads in (2, 0):
    p, dest, _ = pull("mixed", threads)
    T.check("false candidates, independent and dependent pieces (%d workers): the tar's files" % threads,
            p.returncode == 0 and same_files(dest, files), p.stderr)

for threads in (2, 0):
    p, dest, _ = pull("decoys", threads)
    T.check("decoys in stored blocks that fall in step with the stream (%d workers): the file whole" % threads,
            p.returncode == 0 and same_files(dest, [("stored", stored_content)]), p.stderr)

p, dest, rss = pull("bomb", 2)
T.check("a chunk of 50 MiB between two candidates: the file whole",
        p.returncode == 0 and same_files(dest, [("bomb", text(50 << 20, 3))]), p.stderr)
T.check("a chunk of 50 MiB: kiln's peak memory stays under 160 MiB", 0 < rss < 160 * 1024, rss)

for tag, what in (("crc", "checksum mismatch"), ("size", "checksum mismatch"),
                  ("trailing", "unexpected data after the end")):
    for threads in (2, 0):
        p, dest, _ = pull(tag, threads)
        T.check("%s (%d workers): the pull fails saying %r, nothing at the destination" % (tag, threads, what),
                p.returncode != 0 and what in p.stderr and not os.path.lexists(dest), p.stderr[-400:])
T.done()
