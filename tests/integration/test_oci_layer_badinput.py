"""Hostile and broken layers: each gets a clear error, nothing is written
outside the target, and no partial blob stays in kiln's store.

Images are pushed by hand (HTTP, standard library) to a local docker-registry
and unpacked by `kiln pull --output type=local` (kiln's layer unpacker);
tarballs go through `kiln import` (kiln's tar copier)."""
import gzip
import hashlib
import io
import json
import os
import tarfile
import urllib.request

from kilntest import T, kiln, start_registry

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TAG = "kiln-escape-%d" % os.getpid()  # a name nothing else on the machine has


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def make_tar(entries):
    """entries: list of (TarInfo kwargs, data bytes or None)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kw, data in entries:
            ti = tarfile.TarInfo(kw.pop("name"))
            ti.mtime = 1700000000
            ti.mode = 0o644
            for k, v in kw.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return raw.getvalue()


def reg(ti_type, **kw):
    kw["type"] = ti_type
    return kw


class Registry:
    def __init__(self):
        self.port = start_registry()
        self.base = "http://127.0.0.1:%d" % self.port

    def _req(self, method, url, data=None, ctype=None):
        r = urllib.request.Request(url, data=data, method=method)
        if ctype:
            r.add_header("Content-Type", ctype)
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.headers, resp.read()

    def blob(self, repo, data):
        d = sha(data)
        h, _ = self._req("POST", "%s/v2/%s/blobs/uploads/" % (self.base, repo), b"")
        loc = h["Location"]
        if loc.startswith("/"):
            loc = self.base + loc
        sep = "&" if "?" in loc else "?"
        self._req("PUT", "%s%sdigest=%s" % (loc, sep, d), data, "application/octet-stream")
        return d

    def image(self, repo, layer_blob, diff_id, config_bytes=None):
        ld = self.blob(repo, layer_blob)
        if config_bytes is None:
            cfg = {"architecture": "amd64", "os": "linux", "config": {},
                   "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
            config_bytes = json.dumps(cfg).encode()
        cd = self.blob(repo, config_bytes)
        man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
               "config": {"mediaType": MT_CONFIG, "digest": cd, "size": len(config_bytes)},
               "layers": [{"mediaType": MT_LAYER_GZ, "digest": ld, "size": len(layer_blob)}]}
        self._req("PUT", "%s/v2/%s/manifests/v1" % (self.base, repo), json.dumps(man).encode(),
                  MT_MANIFEST)
        return "127.0.0.1:%d/%s:v1" % (self.port, repo), ld


def listing(d):
    out = []
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(root, n), d))
    return sorted(out)


store = os.path.join(T.tmp, "store")
work = os.path.join(T.tmp, "work")  # everything a pull may touch lives under work/
os.makedirs(work)


def pull(ref, name):
    dest = os.path.join(work, name, "rootfs")
    r = kiln("pull", "--root", store, "--insecure-registry", ref.split("/")[0],
             "--output", "type=local,dest=" + dest, ref)
    return r, dest


def outside_clean(name):
    """Nothing of ours appeared outside the targets work/*/rootfs: not in work/, T.tmp or /."""
    stray = [p for p in listing(work) if len(p.split("/")) > 1 and p.split("/")[1] != "rootfs"]
    stray += [p for p in (os.path.join("/", TAG), os.path.join("/etc", TAG),
                          os.path.join(T.tmp, "etc"), os.path.join(work, "etc")) if os.path.lexists(p)]
    return stray


R = Registry()


def hostile(name, entries, expect_error, expect_in_msg):
    tar = make_tar(entries)
    gz = gzip.compress(tar, mtime=0)
    ref, _ = R.image("bad/" + name, gz, sha(tar))
    r, dest = pull(ref, name)
    stray = outside_clean(name)
    if expect_error:
        T.check("%s: kiln pull fails" % name, r.returncode == 1, r.stderr)
        T.check("%s: the error names the problem (%s)" % (name, expect_in_msg),
                expect_in_msg in r.stderr, r.stderr)
        T.check("%s: no partial rootfs is left" % name, not os.path.exists(dest), listing(work))
    else:
        T.check("%s: kiln pull succeeds" % name, r.returncode == 0, r.stderr)
    T.check("%s: nothing written outside the target" % name, not stray, stray)
    return dest


# ../../etc/x — a parent-directory escape in the entry name
hostile("dotdot", [({"name": "../../etc/" + TAG}, b"pwned")], True, "'..'")
# an absolute entry name
hostile("absolute", [({"name": "/etc/" + TAG}, b"pwned")], True, "absolute")
# symlink etc -> / then a file under it: resolved inside the rootfs
dest = hostile("symlink", [({"name": "etc", "type": tarfile.SYMTYPE, "linkname": "/"}, None),
                           ({"name": "etc/" + TAG}, b"inside")], False, "")
T.check("symlink: the file under etc -> / landed inside the rootfs",
        os.path.isfile(os.path.join(dest, TAG)) and not os.path.exists("/" + TAG), listing(dest))
# a hardlink to /etc/shadow (absolute) and via ..
hostile("hardlink", [({"name": "shadow", "type": tarfile.LNKTYPE, "linkname": "/etc/shadow"}, None)],
        True, "absolute")
hostile("hardlink-dotdot", [({"name": "shadow", "type": tarfile.LNKTYPE,
                              "linkname": "../../../../../../etc/shadow"}, None)], True, "'..'")
# a hardlink through a symlink that points out: resolved in the root → target missing
hostile("hardlink-symlink", [({"name": "e", "type": tarfile.SYMTYPE, "linkname": "/etc"}, None),
                             ({"name": "shadow", "type": tarfile.LNKTYPE, "linkname": "e/shadow"}, None)],
        True, "hardlink target")
# a device node
hostile("device", [({"name": "dev/sda", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None)],
        True, "device nodes are not allowed")

# a truncated gzip stream (the digest matches the truncated bytes)
good = make_tar([({"name": "a/file"}, os.urandom(200000))])
gz = gzip.compress(good, mtime=0)
ref, _ = R.image("bad/truncated", gz[: len(gz) // 2], sha(good))
r, dest = pull(ref, "truncated")
T.check("truncated gzip: kiln pull fails saying truncated", r.returncode == 1 and "truncated" in r.stderr,
        r.stderr)
T.check("truncated gzip: no partial rootfs", not os.path.exists(dest))

# a layer whose content does not match the digest: corrupt it in the registry's storage
ref, ld = R.image("bad/mismatch", gz, sha(good))
regdata = None
for root, dirs, files in os.walk(T.tmp):
    if root.endswith(ld[7:]) and "data" in files:
        regdata = os.path.join(root, "data")
T.check("mismatch: found the layer in the registry's storage", regdata is not None)
if regdata:
    with open(regdata, "r+b") as f:
        f.seek(100)
        f.write(b"corrupted!")
r, dest = pull(ref, "mismatch")
T.check("digest mismatch: kiln pull fails", r.returncode == 1, r.stderr)
T.check("digest mismatch: the error says so", "mismatch" in r.stderr or "digest" in r.stderr, r.stderr)
blob = os.path.join(store, "blobs", "sha256", ld[7:])
T.check("digest mismatch: no partial blob in the store", not os.path.exists(blob))
tmpdir = os.path.join(store, "tmp")
T.check("digest mismatch: no temp file left in the store",
        not os.path.isdir(tmpdir) or not os.listdir(tmpdir), os.listdir(tmpdir) if os.path.isdir(tmpdir) else "")

# invalid JSON config
good2 = make_tar([({"name": "b/file"}, b"for the json case")])
gz2 = gzip.compress(good2, mtime=0)
ref, _ = R.image("bad/json", gz2, sha(good2), config_bytes=b'{"architecture": "amd64", "os": ')
r = kiln("inspect", "--root", store, "--insecure-registry", ref.split("/")[0], ref)
T.check("invalid JSON config: kiln inspect fails with a clear error",
        r.returncode == 1 and "config" in r.stderr.lower(), r.stderr)
# an OCI layout whose index.json is not JSON (made by kiln import, then broken)
lay = os.path.join(T.tmp, "layout")
rootfs = os.path.join(T.tmp, "tiny")
os.makedirs(rootfs)
with open(os.path.join(rootfs, "f"), "w") as f:
    f.write("x")
r = kiln("import", rootfs, "-t", "tiny:1", "--root", store, "--output", "type=oci,dest=" + lay)
T.check("a tiny import works", r.returncode == 0, r.stderr)
with open(os.path.join(lay, "index.json"), "w") as f:
    f.write('{"schemaVersion": 2, "manifests": [')
r = kiln("inspect", "oci:%s:1" % lay)
T.check("invalid JSON index.json: kiln inspect fails naming index.json",
        r.returncode == 1 and "index.json" in r.stderr, r.stderr)

# kiln import of hostile tarballs: rejected, no blob stored
for name, entries, msg in (("dotdot", [({"name": "../../etc/" + TAG}, b"x")], "'..'"),
                           ("absolute", [({"name": "/etc/" + TAG}, b"x")], "absolute"),
                           ("hardlink", [({"name": "s", "type": tarfile.LNKTYPE,
                                           "linkname": "/etc/shadow"}, None)], "absolute")):
    p = os.path.join(T.tmp, "import-%s.tar" % name)
    with open(p, "wb") as f:
        f.write(make_tar(entries))
    istore = os.path.join(T.tmp, "istore-" + name)
    r = kiln("import", p, "-t", "bad:" + name, "--root", istore,
             "--output", "type=oci,dest=" + os.path.join(T.tmp, "iout-" + name))
    T.check("import %s tarball: fails naming the entry" % name,
            r.returncode == 1 and msg in r.stderr and (TAG in r.stderr or "shadow" in r.stderr), r.stderr)
    blobs = os.path.join(istore, "blobs", "sha256")
    T.check("import %s tarball: no blob left in the store" % name,
            not os.path.isdir(blobs) or not os.listdir(blobs), os.listdir(blobs) if os.path.isdir(blobs) else "")

# a truncated gzip tarball given to kiln import
p = os.path.join(T.tmp, "trunc.tgz")
with open(p, "wb") as f:
    f.write(gz[: len(gz) // 2])
r = kiln("import", p, "-t", "bad:trunc", "--root", os.path.join(T.tmp, "istore-trunc"))
T.check("import of a truncated tar.gz fails saying truncated", r.returncode == 1 and "truncated" in r.stderr,
        r.stderr)

T.done()
