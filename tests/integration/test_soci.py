#!/usr/bin/env python3
"""kiln build --soci against docker-registry on loopback: a gzip image with one layer above
the SOCI threshold and one below is pushed as a SOCI-enabled image (SOCI index manifest v2:
an OCI index whose image manifest is annotated with the SOCI index and whose SOCI index
names the image manifest); the index is found from the image and read back here with an
independent flatbuffers reader: the zTOC lists exactly the layer's tar entries at the data
offsets Python's tarfile finds, every span digest is the sha256 of the span's compressed
bytes, every checkpoint window is the 32 KiB of the layer's output before it (and a
checkpoint without leftover bits inflates from its window alone); `kiln soci verify`
checks every span from its checkpoint; skopeo still inspects the image; the small layer
has no zTOC. Hostile: a zTOC tampered in the registry, and a truncated one, are refused
naming what is wrong; a zstd image with --soci is refused saying to use gzip; an image
whose layers are all below the threshold is pushed without an index."""
import gzip
import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import tarfile
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import write_tree  # noqa: E402
from registry_fixtures import make_multiarch_layout  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
host = f"127.0.0.1:{start_registry()}"
INS = ("--insecure-registry", host)
V2 = "application/vnd.amazon.soci.index.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = f"{OCI_INDEX},{OCI_MANIFEST},application/vnd.docker.distribution.manifest.v2+json"
MARKER = os.path.join(T.tmp, "marker")
with open(MARKER, "w") as f:
    f.write("host marker\n")
MARKER_STAT = os.stat(MARKER)


def get(path, accept=ACCEPT):
    req = urllib.request.Request(f"http://{host}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as f:
        return f.read()


def put(path, data, ctype=None, method="PUT"):
    req = urllib.request.Request(f"http://{host}/v2/{path}", data=data, method=method,
                                 headers={"Content-Type": ctype} if ctype else {})
    with urllib.request.urlopen(req, timeout=30) as f:
        return f.headers


def push_blob(repo, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = put(f"{repo}/blobs/uploads/", b"", method="POST")["Location"]
    loc = loc[len(f"http://{host}/v2/"):] if loc.startswith("http") else loc[len("/v2/"):]
    put(f"{loc}{'&' if '?' in loc else '?'}digest={d}", data, "application/octet-stream")
    return d


def push_json(repo, ref, doc, mt):
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    put(f"{repo}/manifests/{ref}", body, mt)
    return "sha256:" + hashlib.sha256(body).hexdigest(), len(body)


class FB:
    """A minimal flatbuffers table reader (written from the format, not from kiln)."""

    def __init__(self, b, pos):
        self.b, self.pos = b, pos
        self.vt = pos - struct.unpack_from("<i", b, pos)[0]
        self.vsize = struct.unpack_from("<H", b, self.vt)[0]

    def _off(self, i):
        return struct.unpack_from("<H", self.b, self.vt + 4 + 2 * i)[0] if 4 + 2 * i < self.vsize else 0

    def scalar(self, i, fmt, default=0):
        o = self._off(i)
        return struct.unpack_from(fmt, self.b, self.pos + o)[0] if o else default

    def _ref(self, i):
        o = self._off(i)
        return None if not o else self.pos + o + struct.unpack_from("<I", self.b, self.pos + o)[0]

    def string(self, i):
        p = self._ref(i)
        return "" if p is None else self.b[p + 4:p + 4 + struct.unpack_from("<I", self.b, p)[0]].decode()

    def bytes_(self, i):
        p = self._ref(i)
        return b"" if p is None else self.b[p + 4:p + 4 + struct.unpack_from("<I", self.b, p)[0]]

    def table(self, i):
        return FB(self.b, self._ref(i))

    def vector(self, i):
        p = self._ref(i)
        if p is None:
            return []
        n = struct.unpack_from("<I", self.b, p)[0]
        return [p + 4 + 4 * k + struct.unpack_from("<I", self.b, p + 4 + 4 * k)[0] for k in range(n)]


def read_ztoc(b):
    root = FB(b, struct.unpack_from("<I", b, 0)[0])
    toc, ci = root.table(4), root.table(5)
    files = []
    for p in toc.vector(0):
        t = FB(b, p)
        files.append({"name": t.string(0), "type": t.string(1), "offset": t.scalar(2, "<q"),
                      "size": t.scalar(3, "<q"), "linkname": t.string(4), "mode": t.scalar(5, "<q")})
    digests = []
    for p in ci.vector(2):
        digests.append(b[p + 4:p + 4 + struct.unpack_from("<I", b, p)[0]].decode())
    return {"version": root.string(0), "tool": root.string(1), "csize": root.scalar(2, "<q"),
            "usize": root.scalar(3, "<q"), "files": files, "algo": ci.scalar(0, "<b", 1),
            "max_span": ci.scalar(1, "<i"), "digests": digests, "checkpoints": ci.bytes_(3)}


# the context: a 7 MB file (random + text) and a 1.6 MB one above a 1 MiB threshold, and a
# small one
random.seed(18)
big = random.randbytes(2_500_000) + "".join(f"line {i} of text\n" for i in range(250_000)).encode()
ctx = write_tree(os.path.join(T.tmp, "ctx"), {
    "Dockerfile": "FROM scratch\nCOPY big.bin /data/big.bin\nCOPY big2.bin /big2.bin\n"
                  "COPY small.txt /small.txt\n",
    "small.txt": "small\n"})
with open(os.path.join(ctx, "big.bin"), "wb") as f:
    f.write(big)
with open(os.path.join(ctx, "big2.bin"), "wb") as f:  # a second indexed layer (built in parallel)
    f.write(random.randbytes(1_600_000))
SOCI_OPTS = "soci=true,soci-min-layer-size=1MiB,soci-span-size=256KiB"
r = kiln("build", "--root", ROOT, *INS, "--soci", "--soci-min-layer-size", "1MiB", "-o",
         f"type=registry,name={host}/app:soci,soci-span-size=256KiB", ctx)
T.check("kiln build --soci --soci-min-layer-size 1MiB pushes, saying what it indexed",
        r.returncode == 0 and f"{host}/app:soci: SOCI index v2 with 2 zTOCs (1 layer below the "
        "1048576-byte threshold)" in r.stderr, r.stderr[-2000:])

top = json.loads(get("app/manifests/soci")) if r.returncode == 0 else {}
mans = top.get("manifests", [])
img_d = next((m for m in mans if "artifactType" not in m), {})
soci_d = next((m for m in mans if m.get("artifactType") == V2), {})
T.check("the tag is an OCI image index: the image manifest first, then the SOCI index v2",
        top.get("mediaType") == OCI_INDEX and len(mans) == 2 and mans[0] is img_d and mans[1] is soci_d
        and img_d.get("mediaType") == OCI_MANIFEST and soci_d.get("mediaType") == OCI_MANIFEST, top)
T.check("linked both ways: index-digest on the image, image-manifest-digest on the SOCI index",
        img_d.get("annotations", {}).get("com.amazon.soci.index-digest") == soci_d.get("digest")
        and soci_d.get("annotations", {}).get("com.amazon.soci.image-manifest-digest") == img_d.get("digest")
        and img_d.get("platform") == soci_d.get("platform") == {"architecture": "amd64", "os": "linux"}, top)
image = json.loads(get(f"app/manifests/{img_d['digest']}")) if img_d else {}
sidx = json.loads(get(f"app/manifests/{soci_d['digest']}")) if soci_d else {}
T.check("the image manifest carries the annotation in its own body too",
        image.get("annotations", {}).get("com.amazon.soci.index-digest") == soci_d.get("digest"), image)
T.check("the SOCI index: an OCI manifest, config {} of type soci.index.v2, build tool annotated",
        sidx.get("mediaType") == OCI_MANIFEST and sidx.get("config", {}).get("mediaType") == V2
        and sidx["config"]["digest"] == "sha256:" + hashlib.sha256(b"{}").hexdigest()
        and sidx["config"]["size"] == 2 and "subject" not in sidx
        and sidx.get("annotations", {}).get("com.amazon.soci.build-tool-identifier", "").startswith("kiln"), sidx)
layers = image.get("layers", [])
ztocs = sidx.get("layers", [])
big_layer = max(layers, key=lambda x: x["size"]) if layers else {}
T.check("a zTOC per layer above the threshold, in layer order; the small layer has none",
        len(layers) == 3 and len(ztocs) == 2 and layers[0] == big_layer
        and all(zd["mediaType"] == "application/octet-stream" for zd in ztocs)
        and [zd["annotations"] for zd in ztocs] == [
            {"com.amazon.soci.image-layer-digest": x["digest"],
             "com.amazon.soci.image-layer-mediaType": x["mediaType"]} for x in layers[:2]]
        and layers[2]["size"] < 1 << 20 <= min(layers[0]["size"], layers[1]["size"]), sidx)

# the zTOC read back independently, checked against the layer
zb = get(f"app/blobs/{ztocs[0]['digest']}") if ztocs else b""
lb = get(f"app/blobs/{big_layer['digest']}") if ztocs else b""
z = read_ztoc(zb) if zb else {}
raw = gzip.decompress(lb) if lb else b""
members = []
with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
    members = [(m.name, m.offset_data, m.size) for m in tf.getmembers()]
T.check("zTOC header: version 0.9, gzip, the layer's compressed size, kiln's tool id",
        z.get("version") == "0.9" and z.get("algo") == 1 and z.get("csize") == len(lb)
        and z.get("tool", "").startswith("kiln"), {k: v for k, v in z.items() if k != "checkpoints"})
T.check("the TOC is the layer's tar entries at the data offsets tarfile finds",
        [(f["name"].rstrip("/"), f["offset"], f["size"]) for f in z.get("files", [])] == members
        and [f["type"] for f in z.get("files", [])] == ["dir", "reg"], (z.get("files"), members))
big_entry = next((f for f in z.get("files", []) if f["name"] == "data/big.bin"), None)
T.check("the file's bytes at its TOC offset are the file",
        big_entry is not None and raw[big_entry["offset"]:big_entry["offset"] + big_entry["size"]] == big)
cp = z.get("checkpoints", b"")
n = struct.unpack_from("<I", cp, 0)[0] if cp else 0
span = struct.unpack_from("<Q", cp, 4)[0] if cp else 0
points = [struct.unpack_from("<QQB", cp, 12 + i * (17 + 32768)) + (cp[12 + i * (17 + 32768) + 17:12 + (i + 1) * (17 + 32768)],)
          for i in range(n)]
T.check("checkpoints: count = spans = digests, span 256 KiB, several spans, first after the gzip header",
        n == z.get("max_span") + 1 == len(z.get("digests", [])) and span == 256 * 1024 and n >= 8
        and len(cp) == 12 + n * (17 + 32768) and points[0][:3] == (10, 0, 0), (n, span, len(cp)))
ok_digest = ok_window = True
inflated_ok, inflated_tried = 0, 0
for i, (cin, cout, bits, window) in enumerate(points):
    start = cin - (1 if bits else 0)
    end = points[i + 1][0] if i + 1 < n else len(lb)
    ok_digest &= z["digests"][i] == "sha256:" + hashlib.sha256(lb[start:end]).hexdigest()
    want_window = raw[max(0, cout - 32768):cout]
    ok_window &= window == b"\0" * (32768 - len(want_window)) + want_window
    if bits == 0 and i > 0:  # zlib in Python cannot prime bits: the others are kiln soci verify's
        inflated_tried += 1
        d = zlib.decompressobj(-15, zdict=window)
        upto = points[i + 1][1] if i + 1 < n else z["usize"]
        got = d.decompress(lb[start:end], upto - cout)
        inflated_ok += got == raw[cout:upto]
T.check("every span digest is the sha256 of the span's compressed bytes", ok_digest)
T.check("every checkpoint window is the 32 KiB of output before it", ok_window)
T.check("checkpoints without leftover bits inflate their span from the window alone",
        inflated_ok == inflated_tried >= 1, (inflated_ok, inflated_tried))

r = kiln("soci", "verify", "--root", os.path.join(T.tmp, "vroot"), *INS, f"{host}/app:soci")
T.check("kiln soci verify: every zTOC checked span by span from the registry",
        r.returncode == 0 and "SOCI index v2 verified: 1 index, 2 zTOCs, " in r.stdout
        and " spans, 3 tar entries; 1 layer without a zTOC" in r.stdout, r.stdout + r.stderr[-1500:])

s = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{host}/app:soci"],
                   capture_output=True, text=True, timeout=120)
info = json.loads(s.stdout) if s.returncode == 0 else {}
T.check("skopeo inspect still works: the image's own layers, amd64/linux",
        info.get("Layers") == [x["digest"] for x in layers] and info.get("Architecture") == "amd64",
        s.stderr[-1000:])
pulled = os.path.join(T.tmp, "pulled")
r = kiln("pull", "--root", os.path.join(T.tmp, "proot"), *INS, f"{host}/app:soci", "-o", f"type=oci,dest={pulled}")
with open(os.path.join(pulled, "index.json")) if r.returncode == 0 else io.StringIO("{}") as f:
    pidx = json.load(f)
T.check("kiln pull of the SOCI-enabled image takes the image manifest for linux/amd64, not the index",
        r.returncode == 0 and [m["digest"] for m in pidx.get("manifests", [])] == [img_d.get("digest")],
        r.stderr[-800:] + json.dumps(pidx))
r = kiln("copy", "--root", os.path.join(T.tmp, "croot"), *INS, f"{host}/app:soci", f"{host}/copied:soci")
r2 = kiln("soci", "verify", "--root", os.path.join(T.tmp, "vroot2"), *INS, f"{host}/copied:soci")
T.check("kiln copy moves the SOCI index with the image (one artifact); the copy verifies",
        r.returncode == 0 and r2.returncode == 0 and json.loads(get("copied/manifests/soci")) == top,
        r.stderr[-800:] + r2.stderr[-800:])

# an image made elsewhere (Python's gzip), two platforms: kiln copy --soci converts each
multi = os.path.join(T.tmp, "multi")
make_multiarch_layout(multi, "1")
r = kiln("copy", "--root", os.path.join(T.tmp, "mroot"), *INS, "--soci", "--soci-min-layer-size", "0",
         f"oci:{multi}:1", f"{host}/multi:soci")
mix = json.loads(get("multi/manifests/soci")) if r.returncode == 0 else {}
T.check("kiln copy --soci of a two-platform image: each platform's manifest and its SOCI index",
        r.returncode == 0 and [(m["platform"]["architecture"], m.get("artifactType")) for m in mix.get("manifests", [])]
        == [("amd64", None), ("amd64", V2), ("arm64", None), ("arm64", V2)]
        and "SOCI index v2 with 2 zTOCs (0 layers below the threshold)" in r.stderr, r.stderr[-800:] + json.dumps(mix))
r = kiln("soci", "verify", "--root", os.path.join(T.tmp, "vroot3"), *INS, f"{host}/multi:soci")
T.check("kiln soci verify checks both platforms' indexes",
        r.returncode == 0 and "verified: 2 indexes, 2 zTOCs, 2 spans, 4 tar entries; 0 layers" in r.stdout,
        r.stdout + r.stderr[-800:])


def push_tampered(tag, ztoc_bytes, edit_sidx=None, edit_index=None):
    """The SOCI image again with ztoc_bytes as its zTOC, every link rewritten to match; then
    edit_sidx(SOCI index doc) and edit_index(image index doc) tamper with the documents."""
    zd = push_blob("app", ztoc_bytes)
    doc = json.loads(json.dumps(sidx))
    doc["layers"][0].update(digest=zd, size=len(ztoc_bytes))
    if edit_sidx:
        edit_sidx(doc)
    sd, ss = push_json("app", f"sidx-{tag}", doc, OCI_MANIFEST)
    im = json.loads(json.dumps(image))
    im["annotations"]["com.amazon.soci.index-digest"] = sd
    imd, ims = push_json("app", f"img-{tag}", im, OCI_MANIFEST)
    ix = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(img_d, digest=imd, size=ims, annotations={"com.amazon.soci.index-digest": sd}),
        dict(soci_d, digest=sd, size=ss, annotations={"com.amazon.soci.image-manifest-digest": imd})]}
    if edit_index:
        edit_index(ix)
    push_json("app", tag, ix, OCI_INDEX)

if zb:
    # a span digest changed inside the flatbuffer (same length: the layout stays valid)
    d3 = z["digests"][3].encode()
    pos = zb.find(d3)
    bad = zb[:pos + 10] + (b"0" if zb[pos + 10:pos + 11] != b"0" else b"1") + zb[pos + 11:]
    push_tampered("bad-digest", bad)
    push_tampered("truncated", zb[:len(zb) // 3])
    # links: the zTOC names the other (small) layer; the SOCI index's config type; the index
    # entries pointing elsewhere; the platforms disagreeing
    push_tampered("other-layer", zb, edit_sidx=lambda d: d["layers"][0]["annotations"].update(
        {"com.amazon.soci.image-layer-digest": layers[2]["digest"]}))
    push_tampered("config-type", zb, edit_sidx=lambda d: d["config"].update(
        mediaType="application/vnd.amazon.soci.index.v1+json"))
    push_tampered("unlinked", zb, edit_index=lambda ix: ix["manifests"][1]["annotations"].update(
        {"com.amazon.soci.image-manifest-digest": layers[0]["digest"]}))
    push_tampered("platform", zb, edit_index=lambda ix: ix["manifests"][1].update(
        platform={"architecture": "arm64", "os": "linux"}))
    push_tampered("foreign-layer", zb, edit_sidx=lambda d: d["layers"][0]["annotations"].update(
        {"com.amazon.soci.image-layer-digest": "sha256:" + "ab" * 32}))
for tag, words in (("other-layer", "the zTOC is for a "),
                   ("config-type", "config media type 'application/vnd.amazon.soci.index.v1+json' is not "
                    "application/vnd.amazon.soci.index.v2+json"),
                   ("unlinked", "annotation com.amazon.soci.image-manifest-digest is 'sha256:"),
                   ("platform", "are for different platforms"),
                   ("foreign-layer", "indexes layer sha256:" + "ab" * 32 + ", which the image does not have")):
    r = kiln("soci", "verify", "--root", os.path.join(T.tmp, "vroot"), *INS, f"{host}/app:{tag}")
    T.check(f"hostile: a SOCI image with its links tampered ({tag}) is refused naming the link",
            r.returncode == 1 and words in r.stderr, r.stderr[-1500:])
for tag, words in (("bad-digest", f"span 3: digest of bytes "),
                   ("truncated", "runs past the end")):
    r = kiln("soci", "verify", "--root", os.path.join(T.tmp, "vroot"), *INS, f"{host}/app:{tag}")
    T.check(f"hostile: a {tag} zTOC is refused naming what is wrong",
            r.returncode == 1 and words in r.stderr and "zTOC 0 (sha256:" in r.stderr
            and big_layer.get("digest", "?") in r.stderr, r.stderr[-1500:])
T.check("hostile: the host marker was neither written nor replaced",
        open(MARKER).read() == "host marker\n" and os.stat(MARKER).st_mtime_ns == MARKER_STAT.st_mtime_ns
        and os.stat(MARKER).st_ino == MARKER_STAT.st_ino)

r = kiln("build", "--root", os.path.join(T.tmp, "zroot"), *INS, "--compression", "zstd", "-o",
         f"type=registry,name={host}/app:zstd,{SOCI_OPTS}", ctx)
T.check("--soci with zstd layers: refused, naming the layer and saying to build with gzip",
        r.returncode != 0 and "is zstd: SOCI indexes gzip layers only; build with --compression gzip"
        in r.stderr, r.stderr[-1500:])

r = kiln("build", "--root", ROOT, *INS, "-o", f"type=registry,name={host}/app:x,soci-min-layer-size=lots", ctx)
T.check("a bad soci-min-layer-size is refused before the build, naming the option",
        r.returncode == 2 and "soci-min-layer-size=lots is not a byte size" in r.stderr, r.stderr[-800:])
r = kiln("build", "--root", ROOT, *INS, "--soci", "-o", f"type=oci,dest={T.tmp}/o", ctx)
T.check("--soci without a push is refused, saying what it needs",
        r.returncode == 2 and "field 'soci': indexes the image a push writes: needs an output of "
        "type registry" in r.stderr, r.stderr[-800:])
spec = {"source": {"dir": ctx}, "outputs": [{"type": "registry", "name": f"{host}/app:job"}],
        "soci": True, "soci_min_layer_size": 1 << 20, "registry": {"insecure": [host]}}
r = kiln("job", "run", "--root", ROOT, "--spec", "-", input=json.dumps(spec))
jtop = json.loads(get("app/manifests/job")) if r.returncode == 0 else {}
T.check("a job spec's \"soci\": true (kiln job run) pushes the SOCI-enabled image",
        r.returncode == 0 and [m.get("artifactType") for m in jtop.get("manifests", [])] == [None, V2]
        and len(json.loads(get(f"app/manifests/{jtop['manifests'][1]['digest']}"))["layers"]) == 2,
        r.stderr[-1500:] + json.dumps(jtop))
r = kiln("build", "--root", ROOT, *INS, "-o", f"type=registry,name={host}/app:small,soci=true", ctx)
plain = json.loads(get("app/manifests/small")) if r.returncode == 0 else {}
T.check("every layer below the default 10 MiB threshold: pushed as a plain manifest, no index",
        r.returncode == 0 and plain.get("mediaType") in (OCI_MANIFEST,) and "manifests" not in plain,
        r.stderr[-1500:])
r = kiln("soci", "verify", "--root", os.path.join(T.tmp, "vroot"), *INS, f"{host}/app:small")
T.check("kiln soci verify of an image without an index says so",
        r.returncode == 1 and "not an image index: it has no SOCI index v2 (build with --soci)" in r.stderr,
        r.stderr[-800:])
T.done()
