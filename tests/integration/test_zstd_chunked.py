"""zstd:chunked layers (`kiln copy --zstd-chunked`): an image built by kiln converted, read
back by an independent reader (this file, with the zstd CLI as the decoder): the footer (a
skippable frame ending in GNUlInUx), the layer annotations
io.github.containers.zstd-chunked.manifest-checksum / -position against it, the TOC's
checksum, every regular file's frame inflating alone to its size and digest, and the whole
blob inflating (skippable frames skipped by zstd itself) to the config's diff_id; pushed to
docker-registry, seen by skopeo with its annotations, and used as a FROM by a fresh root."""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, new_context, read_image  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

os.chmod(T.tmp, 0o711)
BASE = make_base(os.path.join(T.tmp, "root-base"))
ROOT = os.path.join(T.tmp, "root")
CK = "io.github.containers.zstd-chunked.manifest-checksum"
POS = "io.github.containers.zstd-chunked.manifest-position"
LONG = "d/" + "n" * 150

DF = """FROM %s
RUN mkdir -p /d && head -c 2000000 /dev/urandom > /d/big && echo hi > /d/small && \
: > /d/empty && ln -s big /d/link && echo long > /%s
""" % (BASE, LONG)
l1 = os.path.join(T.tmp, "l1")
r = kiln("build", "--root", ROOT, "-o", "type=oci,dest=" + l1, new_context(T.tmp, DF))
T.check("an image built (gzip layers)", r.returncode == 0, r.stderr[-1500:])
l2 = os.path.join(T.tmp, "l2")
r = kiln("copy", "--root", ROOT, "--zstd-chunked", "oci:" + l1, "oci:" + l2)
T.check("kiln copy --zstd-chunked to an OCI layout", r.returncode == 0, r.stderr[-1500:])
man, cfg = read_image(l2)
T.check("every layer is tar+zstd with both annotations",
        all(l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
            and CK in l.get("annotations", {}) and POS in l.get("annotations", {})
            for l in man["layers"]), json.dumps(man)[:1500])


def unzstd(data):
    p = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True)
    return p.stdout if p.returncode == 0 else None


def check_layer(blob, ann, diff_id):
    """The independent reader: returns a list of problems (empty: all checked)."""
    bad = []
    foot = blob[-72:]
    if foot[:4] != b"\x50\x2a\x4d\x18" or int.from_bytes(foot[4:8], "little") != 64:
        return ["no skippable footer frame"]
    f = [int.from_bytes(foot[8 + 8 * i:16 + 8 * i], "little") for i in range(7)]
    if foot[64:72] != b"GNUlInUx" or f[3] != 1:
        return ["footer magic/type"]
    if ann[POS] != "%d:%d:%d:1" % (f[0], f[1], f[2]):
        bad.append("position %s vs footer %s" % (ann[POS], f[:3]))
    ctoc = blob[f[0]:f[0] + f[1]]
    if ann[CK] != "sha256:" + hashlib.sha256(ctoc).hexdigest():
        bad.append("checksum annotation")
    if blob[f[0] - 8:f[0] - 4] != b"\x50\x2a\x4d\x18":
        bad.append("the TOC is not in a skippable frame")
    text = unzstd(ctoc)
    toc = json.loads(text) if text and len(text) == f[2] else {}
    if toc.get("version") != 1:
        return bad + ["TOC version"]
    files = 0
    for e in toc["entries"]:
        if e["type"] == "reg" and e.get("size", 0) > 0:
            data = unzstd(blob[e["offset"]:e["endOffset"]])
            if data is None or len(data) != e["size"] or \
                    "sha256:" + hashlib.sha256(data).hexdigest() != e["digest"]:
                bad.append("file %s" % e["name"])
            files += 1
    whole = unzstd(blob)
    if whole is None or "sha256:" + hashlib.sha256(whole).hexdigest() != diff_id:
        bad.append("the whole blob does not inflate to the diff_id")
    return bad, toc, files


problems, names = [], set()
for i, l in enumerate(man["layers"]):
    with open(os.path.join(l2, "blobs", "sha256", l["digest"][7:]), "rb") as fh:
        res = check_layer(fh.read(), l["annotations"], cfg["rootfs"]["diff_ids"][i])
    if isinstance(res, list):
        problems += res
        continue
    problems += res[0]
    names |= {e["name"] for e in res[1]["entries"]}
T.check("read back independently: footer, annotations, TOC checksum, every file's frame, "
        "the whole blob = the diff_id", not problems, str(problems))
T.check("the TOC lists the files (a link with its target, the long name whole)",
        {"d/big", "d/small", "d/empty", "d/link", LONG} <= {n.lstrip("./") for n in names},
        str(sorted(names))[:1500])

port = start_registry()
reg = "127.0.0.1:%d" % port
r = kiln("copy", "--root", ROOT, "--insecure-registry", reg, "--zstd-chunked", "oci:" + l1,
         reg + "/t/chunked:1")
sk = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                     "docker://%s/t/chunked:1" % reg], capture_output=True, text=True)
ld = json.loads(sk.stdout or "{}").get("layers") or []
T.check("pushed: skopeo reads tar+zstd layers with the zstd:chunked annotations",
        r.returncode == 0 and ld and all((x.get("annotations") or {}).get(POS)
                                         and x["mediaType"].endswith("tar+zstd") for x in ld),
        r.stderr[-1000:] + sk.stderr + sk.stdout[:1000])
r = kiln("build", "--root", os.path.join(T.tmp, "fresh"), "--insecure-registry", reg, "-o",
         "type=local,dest=" + os.path.join(T.tmp, "fs"),
         new_context(T.tmp, "FROM %s/t/chunked:1\nRUN cat /d/small /%s > /out\n" % (reg, LONG)))
T.check("a fresh root builds FROM the zstd:chunked image (its layers unpacked)",
        r.returncode == 0 and open(os.path.join(T.tmp, "fs", "out")).read() == "hi\nlong\n",
        r.stderr[-1500:])
r = kiln("copy", "--root", ROOT, "--soci", "--zstd-chunked", "oci:" + l1, reg + "/t/x:1")
T.check("--soci with --zstd-chunked is refused saying which to choose",
        r.returncode == 2 and "--soci indexes gzip layers only" in r.stderr, r.stderr)
T.done()
