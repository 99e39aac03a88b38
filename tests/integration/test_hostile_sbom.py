#!/usr/bin/env python3
"""Hostile images given to kiln build --sbom / --provenance. The image's own links: a
package.json linked to a host file (absolute, and relative climbing out) never followed (no
package from it in the SBOM), the sbom.spdx.json and provenance.json names in a type=local dest
linked to a host file and a host directory: replaced by the documents, never written through.
A base image whose layer holds a package database as a hard link climbing out ('..') or an
entry named with '..': the build refused naming the layer and the entry. A dest where the
document's name is a directory: refused naming the path. In every case the host marker is
neither read nor written, nor its text in any document or output."""
import gzip
import hashlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import HostMarker, make_base, read_json, tar_write, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402

host = HostMarker(prefix="HOSTILE-SBOM-", extra={"package.json": '{"name":"{mark}","version":"6.6.6"}\n'})
ROOT = os.path.join(T.tmp, "root")
BASE = make_base(ROOT)
HOST_PKG = host.path("package.json")
watching = host.watch_reads()


def marker_safe(what, *texts):
    """The host marker neither read (atime) nor written, its text in none of texts."""
    if watching:
        T.check(f"{what}: the host marker is not read", host.unread())
    else:
        T.skip(f"{what}: the host marker is not read", "this filesystem records no reads (noatime)")
    T.check(f"{what}: the host marker is not written, its text in no document or output",
            host.untouched() and not any(host.mark in t for t in texts))
    host.watch_reads()


# --- the image's own links ---
climb = os.path.relpath(HOST_PKG, "/app/node_modules/rel-link")
ctx = write_tree(os.path.join(T.tmp, "ctx"), {
    "Dockerfile": f"""FROM {BASE}
COPY node_modules /app/node_modules
RUN ln -s {HOST_PKG} /app/node_modules/evil-link/package.json \\
 && mkdir -p /app/node_modules/rel-link && ln -s {climb} /app/node_modules/rel-link/package.json \\
 && ln -s {HOST_PKG} /sbom.spdx.json && ln -s {host.w} /provenance.json
""",
    "node_modules/left-pad/package.json": '{"name":"left-pad","version":"1.3.0","license":"WTFPL"}',
    "node_modules/evil-link/index.js": "",
})
out = os.path.join(T.tmp, "out")
r = kiln("build", "--root", ROOT, "--progress", "plain", "--sbom", "--provenance",
         "-o", f"type=local,dest={out}", ctx)
T.check("kiln build --sbom --provenance of an image with links succeeds", r.returncode == 0,
        r.stderr[-1500:])
sbom = read_json(os.path.join(out, "sbom.spdx.json"))
purls = sorted(ref["referenceLocator"] for p in sbom.get("packages", [])
               for ref in p.get("externalRefs", []))
T.check("package.json links to a host file (absolute, relative) not followed: left-pad only",
        purls == ["pkg:npm/left-pad@1.3.0"], purls)
for name, kind in (("sbom.spdx.json", "a host file"), ("provenance.json", "a host directory")):
    p = os.path.join(out, name)
    T.check(f"the dest's {name} (in the image a link to {kind}) is now the document, not a link",
            os.path.isfile(p) and not os.path.islink(p) and "error" not in read_json(p))
T.check("nothing was written into the host directory behind provenance.json",
        os.listdir(host.w) == [])
marker_safe("the image's links", json.dumps(sbom), r.stdout, r.stderr,
            json.dumps(read_json(os.path.join(out, "provenance.json"))))

# --- the dest's document name a directory ---
dctx = write_tree(os.path.join(T.tmp, "dctx"), {
    "Dockerfile": f"FROM {BASE}\nRUN mkdir -p /sbom.spdx.json/keep && echo x > /sbom.spdx.json/keep/f\n"})
dout = os.path.join(T.tmp, "dout")
r = kiln("build", "--root", ROOT, "--progress", "plain", "--sbom", "-o", f"type=local,dest={dout}", dctx)
T.check("a dest whose sbom.spdx.json is a directory (from the image): refused naming the path",
        r.returncode != 0 and f"kiln: {dout}/sbom.spdx.json: the image has a directory where the "
        "document goes (remove it from the image, or use an output of type oci, docker or tar)\n"
        in r.stderr
        and os.path.isfile(os.path.join(dout, "sbom.spdx.json", "keep", "f")), r.stderr[-800:])
marker_safe("a document name that is a directory", r.stdout, r.stderr)


# --- base images whose layers hold hostile package-database entries ---
def blob(root, data):
    h = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "blobs", "sha256", h), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + h, "size": len(data)}


def hostile_base(name, entries):
    """An OCI layout NAME:1 of one gzip layer of entries (kilnbuild.tar_write's kinds)."""
    raw = io.BytesIO()
    tar_write(raw, entries)
    diff = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    root = os.path.join(T.tmp, name)
    layer = dict(blob(root, gzip.compress(raw.getvalue(), mtime=0)),
                 mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
    config = dict(blob(root, json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()),
        mediaType="application/vnd.oci.image.config.v1+json")
    man = dict(blob(root, json.dumps({"schemaVersion": 2, "mediaType":
                                      "application/vnd.oci.image.manifest.v1+json",
                                      "config": config, "layers": [layer]}).encode()),
               mediaType="application/vnd.oci.image.manifest.v1+json",
               annotations={"org.opencontainers.image.ref.name": "1"})
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [man]}, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return f"oci:{root}:1", layer["digest"]


GOOD = b'{"name":"ok","version":"1.0.0"}'
up = "../" * 12 + HOST_PKG.lstrip("/")
for what, entries, entry, why in [
    ("a package.json hard link climbing out",
     [("app/node_modules/ok/package.json", GOOD), ("app/node_modules/evil/package.json", ("hard", up))],
     "app/node_modules/evil/package.json", f"its hardlink target '{up}' contains a '..' component"),
    ("a package.json entry named with '..'",
     [("app/node_modules/ok/package.json", GOOD), ("app/../../node_modules/evil/package.json", GOOD)],
     "app/../../node_modules/evil/package.json", "its name contains a '..' component"),
]:
    ref, layer = hostile_base("base-" + str(len(what)), entries)
    bctx = write_tree(os.path.join(T.tmp, "bctx-" + str(len(what))), {"Dockerfile": f"FROM {ref}\n"})
    layout = os.path.join(T.tmp, "layout-" + str(len(what)))
    r = kiln("build", "--root", ROOT, "--progress", "plain", "--sbom",
             "-o", f"type=oci,dest={layout}", bctx)
    want = f"layer {layer}: layer entry '{entry}': {why}"
    T.check(f"a base image with {what}: refused naming the layer and the entry",
            r.returncode != 0 and want in r.stderr, (want, r.stderr[-800:]))
    T.check(f"... no SBOM written beside the dest ({what})",
            not os.path.exists(layout + ".sbom.spdx.json"))
    marker_safe(f"a base image with {what}", r.stdout, r.stderr)
T.done()
