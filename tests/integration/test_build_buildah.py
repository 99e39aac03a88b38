"""kiln build vs buildah bud on the same Dockerfiles and the same base.

For every tests/dockerfiles case marked "buildah": true (features buildah 1.28
has), both tools build from the same OCI layout base; the images must have
the same config (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts,
Labels, Volumes, StopSignal, Healthcheck) and the same file tree (paths,
types, modes, owners, contents, link targets) after applying the layers.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

CASES = os.path.join(SRC, "tests", "dockerfiles")
ROOT = os.path.join(T.tmp, "root")
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
BUILDAH_RUN_ARTIFACTS = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run", "/dev", "/proc",
                         "/sys", "/run/.containerenv")
KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes",
        "StopSignal", "Healthcheck")

if not shutil.which("buildah"):
    T.skip("buildah comparison", "buildah not installed")
    T.done()


def apply_layers(layers):
    """Applies tar layers (bytes, any compression tarfile detects) to a
    {path: (type, mode, uid, gid, data-hash-or-link)} tree."""
    tree = {}
    for blob in layers:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
            for m in t.getmembers():
                p = "/" + m.name.lstrip("./").rstrip("/")
                d, base = os.path.split(p)
                if base == ".wh..wh..opq":
                    for k in [k for k in tree if k.startswith(d.rstrip("/") + "/")]:
                        del tree[k]
                    continue
                if base.startswith(".wh."):
                    victim = os.path.join(d, base[4:])
                    for k in [k for k in tree if k == victim or k.startswith(victim + "/")]:
                        del tree[k]
                    continue
                if p == "/":
                    continue
                if m.isfile():
                    data = hashlib.sha256(t.extractfile(m).read()).hexdigest()
                    kind = "file"
                elif m.islnk():
                    target = "/" + m.linkname.lstrip("./")
                    data = tree.get(target, (None,) * 5)[4]
                    kind = "file"
                elif m.issym():
                    data, kind = m.linkname, "symlink"
                elif m.isdir():
                    data, kind = None, "dir"
                else:
                    data, kind = f"{m.devmajor}:{m.devminor}", "dev"
                tree[p] = (kind, "%04o" % (m.mode & 0o7777), m.uid, m.gid, data)
    return tree


def read_docker_archive(path):
    with tarfile.open(path) as t:
        mf = json.load(t.extractfile("manifest.json"))[0]
        cfg = json.load(t.extractfile(mf["Config"]))
        layers = [t.extractfile(layer).read() for layer in mf["Layers"]]
    return cfg, layers


def buildah(*args):
    base = ["buildah", "--root", os.path.join(T.tmp, "buildah-root"), "--runroot",
            os.path.join(T.tmp, "buildah-run"), "--storage-driver", "vfs"]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=600)


base = make_base(ROOT)
for case in sorted(os.listdir(CASES)):
    ef = os.path.join(CASES, case, "expected.json")
    if not os.path.isfile(ef):
        continue
    with open(ef) as f:
        exp = json.load(f)
    if not exp.get("buildah"):
        continue
    ctx = os.path.join(CASES, case)
    bargs = [a for k, v in exp.get("build_args", {}).items() for a in ("--build-arg", f"{k}={v}")]
    kiln_tar = os.path.join(T.tmp, f"kiln-{case}.tar")
    r = kiln("build", "--root", ROOT, "--build-arg", f"BASE={base}", *bargs, "-t", f"cmp/{case}:1",
             "-o", f"type=docker,dest={kiln_tar}", ctx)
    if not T.check(f"{case}: kiln build", r.returncode == 0, r.stderr[-2000:]):
        continue
    b = buildah("bud", "--isolation", "chroot", "--format", "docker", "--identity-label=false",
                "--build-arg", f"BASE={base}", *bargs, "-t", f"localhost/cmp-{case}:1", ctx)
    if not T.check(f"{case}: buildah bud", b.returncode == 0, b.stderr[-2000:]):
        continue
    bah_tar = os.path.join(T.tmp, f"buildah-{case}.tar")
    p = buildah("push", f"localhost/cmp-{case}:1", f"docker-archive:{bah_tar}")
    if not T.check(f"{case}: buildah push docker-archive", p.returncode == 0, p.stderr[-2000:]):
        continue
    kcfg, klayers = read_docker_archive(kiln_tar)
    bcfg, blayers = read_docker_archive(bah_tar)
    kc, bc = kcfg.get("config", {}), bcfg.get("config", {})
    diff = {k: {"kiln": kc.get(k), "buildah": bc.get(k)} for k in KEYS
            if (kc.get(k) or None) != (bc.get(k) or None)}
    T.check(f"{case}: same config as buildah", not diff, json.dumps(diff, indent=1))
    kt, bt = apply_layers(klayers), apply_layers(blayers)
    # buildah leaves the mount points of its RUN steps behind (empty files and
    # dirs); BuildKit and kiln do not: those are not differences.
    for p in BUILDAH_RUN_ARTIFACTS:
        if p not in kt and p in bt and bt[p][4] in (None, EMPTY_SHA):
            del bt[p]
    tdiff = {p: {"kiln": kt.get(p), "buildah": bt.get(p)} for p in sorted(set(kt) | set(bt))
             if kt.get(p) != bt.get(p)}
    T.check(f"{case}: same file tree as buildah ({len(kt)} paths)", not tdiff,
            json.dumps(dict(list(tdiff.items())[:20]), indent=1))
T.done()
