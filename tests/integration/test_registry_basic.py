"""Registry client against a real docker-registry (no auth): push/pull/copy,
interop with skopeo both ways, several tags, a multi-platform index, remote
inspect, docker-archive, mirrors (docker.io mirrored locally, fallback when a
mirror is down). Nothing outside 127.0.0.1 is contacted: a dead proxy is set
for everything else."""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln, start_registry, free_port  # noqa: E402
from registry_fixtures import (make_layout, make_multiarch_layout, skopeo,  # noqa: E402
                               sha)

# any attempt to leave the machine goes to a dead proxy and fails at once
os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_RETRIES": "1",
                   "KILN_REGISTRY_BACKOFF_MS": "50", "KILN_REGISTRY_CHUNK_SIZE": str(5 << 20),
                   "DOCKER_CONFIG": os.path.join(T.tmp, "docker")})

root = os.path.join(T.tmp, "store")
A = start_registry()
B = start_registry()
a, b = "127.0.0.1:%d" % A, "127.0.0.1:%d" % B
INS = ["--root", root, "--insecure-registry", a, "--insecure-registry", b]


def k(*args, **kw):
    return kiln(*args[:1], *INS, *args[1:], **kw)


def blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "rb") as f:
        return f.read()


# 1. push an OCI layout (a 6 MB layer goes in 5 MiB PATCH chunks) to two tags
L = os.path.join(T.tmp, "L")
big = os.urandom(6 * 1024 * 1024)
desc = make_layout(L, "v1", [{"etc/hello": b"hello\n"}, {"data/big.bin": big}])
p = k("push", "oci:%s:v1" % L, "%s/test/app:v1" % a, "%s/test/app:v2" % a)
T.check("push oci layout to two tags", p.returncode == 0 and p.stdout.strip() == desc["digest"],
        p.stdout + p.stderr)
T.check("push does not print a password or token", "Authorization" not in p.stderr, p.stderr)

# 2. skopeo reads both tags back identical
for tag in ("v1", "v2"):
    s = skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/test/app:%s" % (a, tag))
    T.check("skopeo reads tag %s back byte-identical" % tag,
            s.returncode == 0 and sha(s.stdout.encode()) == desc["digest"], s.stderr)
S = os.path.join(T.tmp, "S")
s = skopeo("copy", "--src-tls-verify=false", "docker://%s/test/app:v1" % a, "oci:%s:x" % S)
man = json.loads(blob(L, desc["digest"]))
same = s.returncode == 0 and all(blob(S, l["digest"]) == blob(L, l["digest"]) for l in man["layers"])
T.check("skopeo copy gets the same layer bytes", same, s.stderr)

# 3. skopeo pushes, kiln pulls (into an OCI layout and unpacked into a rootfs)
L2 = os.path.join(T.tmp, "L2")
d2 = make_layout(L2, "t", [{"usr/share/msg": b"from skopeo\n"}, {"usr/share/msg2": b"two\n"}])
s = skopeo("copy", "--dest-tls-verify=false", "oci:%s:t" % L2, "docker://%s/other/img:1" % a)
T.check("skopeo push for the pull test", s.returncode == 0, s.stderr)
O = os.path.join(T.tmp, "O")
p = k("pull", "-o", "type=oci,dest=%s:mytag" % O, "%s/other/img:1" % a)
ok = p.returncode == 0 and p.stdout.strip() == d2["digest"]
if ok:
    ix = json.load(open(os.path.join(O, "index.json")))
    ok = any(m["digest"] == d2["digest"] for m in ix["manifests"])
T.check("kiln pull writes an OCI layout with the pulled manifest", ok, p.stdout + p.stderr)
s = skopeo("inspect", "oci:%s:mytag" % O)
T.check("skopeo reads kiln's pulled layout", s.returncode == 0, s.stderr)
R = os.path.join(T.tmp, "rootfs")
p = k("pull", "-o", "type=local,dest=%s" % R, "%s/other/img:1" % a)
ok = p.returncode == 0 and open(os.path.join(R, "usr/share/msg"), "rb").read() == b"from skopeo\n" \
    and os.path.exists(os.path.join(R, "usr/share/msg2"))
T.check("kiln pull --output type=local unpacks the filesystem", ok, p.stderr)
T.check("second pull skips blobs already in the store", "skipped (in the store)" in p.stderr,
        p.stderr)
p = k("pull", "--progress=json", "%s/other/img:1" % a)
try:
    evs = [json.loads(l) for l in p.stderr.splitlines() if l.strip()]
    ok = p.returncode == 0 and any(e["event"] == "resolved" for e in evs)
except ValueError:
    ok = False
T.check("--progress=json prints JSON events", ok, p.stderr)

# 4. copy registry -> registry (cross-repository mount on the same registry)
p = k("copy", "docker://%s/test/app:v1" % a, "docker://%s/copied/app:v1" % a)
T.check("copy registry to registry keeps the digest",
        p.returncode == 0 and p.stdout.strip() == desc["digest"], p.stderr)
T.check("copy on the same registry mounts blobs across repositories", "mounted from" in p.stderr,
        p.stderr)
p = k("copy", "%s/test/app:v1" % a, "%s/test/app:v1" % b)
s = skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/test/app:v1" % b)
T.check("copy to another registry", p.returncode == 0 and s.returncode == 0 and
        sha(s.stdout.encode()) == desc["digest"], p.stderr + s.stderr)

# 5. a multi-platform index
M = os.path.join(T.tmp, "M")
idesc, per = make_multiarch_layout(M, "multi")
p = k("push", "oci:%s:multi" % M, "%s/multi/img:1" % a)
s = skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/multi/img:1" % a)
T.check("push a multi-platform index", p.returncode == 0 and s.returncode == 0 and
        sha(s.stdout.encode()) == idesc["digest"], p.stderr + s.stderr)
R2 = os.path.join(T.tmp, "rootfs-arm64")
p = k("pull", "--platform", "linux/arm64", "-o", "type=local,dest=%s" % R2, "%s/multi/img:1" % a)
T.check("pull --platform linux/arm64 picks the arm64 image", p.returncode == 0 and
        open(os.path.join(R2, "etc/arch")).read() == "arm64\n", p.stderr)
p = k("pull", "--platform", "linux/s390x", "%s/multi/img:1" % a)
T.check("pull of a platform the index lacks fails clearly",
        p.returncode != 0 and "s390x" in p.stderr, p.stderr)
p = k("copy", "%s/multi/img:1" % a, "%s/multi/copy:1" % b)
T.check("copy of an index keeps every platform and the digest",
        p.returncode == 0 and p.stdout.strip() == idesc["digest"], p.stderr)

MO = os.path.join(T.tmp, "MO")
p = k("copy", "%s/multi/img:1" % a, "oci:%s:multi" % MO)
s = skopeo("inspect", "--raw", "oci:%s:multi" % MO)
T.check("copy of an index into an OCI layout keeps the index",
        p.returncode == 0 and s.returncode == 0 and sha(s.stdout.encode()) == idesc["digest"],
        p.stderr + s.stderr)

# 6. remote inspect and docker-archive
p = k("inspect", "%s/test/app:v1" % a)
try:
    j = json.loads(p.stdout)
    ok = j["Digest"] == desc["digest"] and len(j["Layers"]) == 2 and j["Architecture"] == "amd64"
except (ValueError, KeyError):
    ok = False
T.check("kiln inspect REF describes a remote image", ok, p.stdout + p.stderr)
F = os.path.join(T.tmp, "img.tar")
p = k("copy", "%s/test/app:v1" % a, "docker-archive:%s" % F)
s = skopeo("inspect", "docker-archive:%s" % F)
T.check("copy registry to docker-archive", p.returncode == 0 and s.returncode == 0, p.stderr + s.stderr)
p = k("push", "docker-archive:%s" % F, "%s/from/archive:1" % b)
s = skopeo("inspect", "--tls-verify=false", "docker://%s/from/archive:1" % b)
T.check("push from a docker-archive", p.returncode == 0 and s.returncode == 0 and
        json.loads(s.stdout)["Digest"] == p.stdout.strip(), p.stderr + s.stderr)

# 7. bad references
p = k("pull", "Bad/Ref:")
T.check("an invalid reference is rejected clearly",
        p.returncode != 0 and "invalid image reference" in p.stderr, p.stderr)
p = k("pull", "%s/does/not-exist:1" % a)
T.check("a missing image fails with the registry's error",
        p.returncode != 0 and ("MANIFEST_UNKNOWN" in p.stderr or "NAME_UNKNOWN" in p.stderr), p.stderr)

# 8. mirrors: docker.io served by a local registry (node:22 never leaves the machine)
p = k("push", "oci:%s:t" % L2, "%s/library/node:22" % b)
p = k("pull", "--registry-mirror", "docker.io=%s" % b, "node:22")
T.check("node:22 comes from the docker.io mirror",
        p.returncode == 0 and p.stdout.strip() == d2["digest"] and "mirror" in p.stderr, p.stderr)
k("push", "oci:%s:t" % L2, "%s/hub/library/node:22" % b)
cfg = os.path.join(T.tmp, "registries.json")
json.dump({"mirrors": {"docker.io": ["%s/hub" % b]}, "insecure": [b]}, open(cfg, "w"))
p = kiln("pull", "--root", root, "--registry-config", cfg, "docker.io/library/node:22")
T.check("mirror with a path prefix from the registries config file",
        p.returncode == 0 and p.stdout.strip() == d2["digest"], p.stderr)
dead = free_port()
p = k("pull", "--registry-mirror", "%s=127.0.0.1:%d" % (a, dead), "--insecure-registry",
      "127.0.0.1:%d" % dead, "%s/test/app:v1" % a)
T.check("a mirror that is down falls back to the source",
        p.returncode == 0 and p.stdout.strip() == desc["digest"] and
        ("mirror 127.0.0.1:%d failed" % dead) in p.stderr, p.stderr)
p = k("pull", "--registry-mirror", "docker.io=127.0.0.1:%d" % dead, "--retries", "0", "node:22")
T.check("with the mirror down and the source unreachable, pull fails", p.returncode != 0, p.stderr)
T.done()
