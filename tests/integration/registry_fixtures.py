"""Helpers for the registry integration tests (standard library only):
OCI layouts made from scratch, registries in each auth mode, a CA, a
token issuer, and a fault-injecting proxy."""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile

from kilntest import T, free_port, wait_port

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _put_blob(layout, data):
    d = sha(data)
    p = os.path.join(layout, "blobs", "sha256", d[7:])
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
    return d


def make_layer(files):
    """files: {path: bytes}. Returns (gzip blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = 1700000000
                    tf.addfile(ti)
            ti = tarfile.TarInfo(path)
            ti.size = len(files[path])
            ti.mode = 0o644
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(files[path]))
    tar = raw.getvalue()
    gz = gzip.compress(tar, compresslevel=1, mtime=0)
    return gz, sha(tar)


def add_image(layout, layers, arch="amd64", os_="linux", env=None):
    """Writes config + manifest blobs into layout; returns the manifest descriptor."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    ldescs, diff_ids = [], []
    for files in layers:
        gz, diff = make_layer(files)
        ldescs.append({"mediaType": MT_LAYER_GZ, "digest": _put_blob(layout, gz), "size": len(gz)})
        diff_ids.append(diff)
    cfg = {"architecture": arch, "os": os_, "created": "2024-01-01T00:00:00Z",
           "config": {"Env": env or ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []}
    cb = json.dumps(cfg, sort_keys=True).encode()
    man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
           "config": {"mediaType": MT_CONFIG, "digest": _put_blob(layout, cb), "size": len(cb)},
           "layers": ldescs}
    mb = json.dumps(man, sort_keys=True).encode()
    return {"mediaType": MT_MANIFEST, "digest": _put_blob(layout, mb), "size": len(mb),
            "platform": {"architecture": arch, "os": os_}}


def write_index(layout, entries):
    """entries: list of (descriptor, tag)."""
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    ms = []
    for d, tag in entries:
        d = dict(d)
        if tag:
            d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        ms.append(d)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": ms}, f)


def make_layout(layout, tag, layers, **kw):
    d = add_image(layout, layers, **kw)
    d.pop("platform")
    write_index(layout, [(d, tag)])
    return d


def make_multiarch_layout(layout, tag):
    """An index of linux/amd64 and linux/arm64 images; returns (index desc, {arch: manifest desc})."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    per = {}
    for arch in ("amd64", "arm64"):
        per[arch] = add_image(layout, [{"etc/arch": arch.encode() + b"\n"}], arch=arch)
    ix = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [per["amd64"], per["arm64"]]}
    ib = json.dumps(ix, sort_keys=True).encode()
    d = {"mediaType": MT_INDEX, "digest": _put_blob(layout, ib), "size": len(ib)}
    write_index(layout, [(d, tag)])
    return d, per


def skopeo(*args, timeout=300):
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=timeout)


def make_ca(d, host="127.0.0.1"):
    """A CA and a server certificate for host (IP SAN). Returns (ca.pem, cert.pem, key.pem)."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = os.path.join(d, "srv.key"), os.path.join(d, "srv.csr"), os.path.join(d, "srv.pem")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\n" % host)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=kiln test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
        "/CN=%s" % host)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


def htpasswd(d, user, password):
    p = os.path.join(d, "htpasswd")
    subprocess.run(["htpasswd", "-Bbc", p, user, password], check=True, capture_output=True)
    return p
