"""Writes a small OCI image layout with the Python standard library only
(a gzip layer made with tarfile, a config, a manifest, index.json), so that
kiln's readers can be checked against skopeo on an image kiln did not write.

usage: python3 oci_fixture.py DIR TAG [LABEL]
Prints the manifest digest."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(root, data):
    h = hashlib.sha256(data).hexdigest()
    d = os.path.join(root, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, h), "wb") as f:
        f.write(data)
    return "sha256:" + h


def main():
    root, tag = sys.argv[1], sys.argv[2]
    label = sys.argv[3] if len(sys.argv) > 3 else tag
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, content in (("etc/hello", b"hello from " + label.encode() + b"\n"), ("bin/x", b"#!/bin/sh\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(content)
            ti.mode = 0o755
            ti.mtime = 0
            t.addfile(ti, io.BytesIO(content))
    tar = raw.getvalue()
    gz = gzip.compress(tar, mtime=0)
    layer = blob(root, gz)
    config = {
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/x"], "Labels": {"fixture": label}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "fixture"}],
    }
    cfg = json.dumps(config, separators=(",", ":")).encode()
    cfg_d = blob(root, cfg)
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": len(gz)}],
    }
    man = json.dumps(manifest, indent=1).encode()
    man_d = blob(root, man)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    ipath = os.path.join(root, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(ipath):
        with open(ipath) as f:
            index = json.load(f)
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_d, "size": len(man),
        "annotations": {"org.opencontainers.image.ref.name": tag}})
    with open(ipath, "w") as f:
        json.dump(index, f)
    print(man_d)


main()
