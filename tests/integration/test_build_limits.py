"""kiln build --memory / --pids-limit / --cpu-time: every RUN step (also those of an
auto-build) runs under the limits, a step that forks or allocates past them fails with an error naming the
limit, the limits are in --metadata-file; and kiln.bytes_pushed counts the blob
bytes actually uploaded by a push (not the blobs the registry already has)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, write_tree  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)


def build(ctx, *extra):
    return kiln("build", "--root", ROOT, "--progress", "plain", "--build-arg", f"BASE={BASE}",
                *extra, ctx)


def ctx(name, run):
    return write_tree(os.path.join(T.tmp, name), {"Dockerfile": f"ARG BASE\nFROM ${{BASE}}\nRUN {run}\n"})


def meta(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# --- pids ----------------------------------------------------------------------
forks = ctx("forks", "i=0; while [ $i -lt 64 ]; do sleep 2 & i=$((i+1)); done; wait; echo forked-all")
m1 = os.path.join(T.tmp, "pids.json")
r = build(forks, "--pids-limit", "16", "--no-cache", "--metadata-file", m1)
T.check("pids: 64 background processes under --pids-limit 16 fail", r.returncode != 0, r.stderr)
T.check("pids: the error shows the failed fork and names the limit",
        "can't fork" in r.stderr and "pids 16" in r.stderr and "#2 forked-all" not in r.stderr, r.stderr)
T.check("pids: the limit is in the metadata file",
        meta(m1).get("kiln.limits") == {"pids": 16}, meta(m1))
few = ctx("few", "i=0; while [ $i -lt 4 ]; do sleep 1 & i=$((i+1)); done; wait; echo forked-all")
r = build(few, "--pids-limit", "16", "--no-cache")
T.check("pids: 4 processes fit under --pids-limit 16", r.returncode == 0, r.stderr)

# --- memory --------------------------------------------------------------------
hog = ctx("hog", "a=$(busybox head -c 160m /dev/zero | busybox tr '\\0' x); echo allocated ${#a}")
m2 = os.path.join(T.tmp, "mem.json")
r = build(hog, "--memory", "32m", "--no-cache", "--metadata-file", m2)
T.check("memory: 160 MiB in a 32m step fails", r.returncode != 0 and "#2 allocated" not in r.stderr,
        r.stderr)
T.check("memory: the error says out of memory (or names the limit)",
        ("out of memory" in r.stderr or "Cannot allocate" in r.stderr) and "memory 32m" in r.stderr,
        r.stderr)
T.check("memory: limit in the metadata file", meta(m2).get("kiln.limits") == {"memory": "32m"},
        meta(m2))
small = ctx("small", "a=$(busybox head -c 1m /dev/zero | busybox tr '\\0' x); echo allocated ${#a}")
r = build(small, "--memory", "64m", "--pids-limit", "32", "--cpu-time", "60", "--no-cache")
T.check("memory: 1 MiB fits in 64m (with pids and cpu limits too)",
        r.returncode == 0 and "#2 allocated 1048576" in r.stderr, r.stderr)

# --- bad values ----------------------------------------------------------------
for flag, val in (("--memory", "lots"), ("--memory", "12q"), ("--pids-limit", "0"),
                  ("--pids-limit", "-3"), ("--cpu-time", "x")):
    r = build(small, flag, val)
    T.check(f"usage: {flag} {val} is refused naming the flag",
            r.returncode == 2 and flag.lstrip("-").split("-")[0] in r.stderr, r.stderr)

# --- auto-builds: the generated install/build steps run under the limits too ---
images = os.environ.get("KILN_IMAGES_DIR", "/var/cache/kiln/images")
if os.path.isdir(os.path.join(images, "python-build")) and os.path.isdir(os.path.join(images, "base")):
    import shutil
    src = os.path.join(T.tmp, "python-http")
    shutil.copytree(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                                 "python-http"), src)
    r = kiln("build", "--root", ROOT, "--no-cache", "--pids-limit", "2", "-o",
             "type=oci,dest=" + os.path.join(T.tmp, "auto-out"), src,
             env={"KILN_IMAGE_PREFIX": "oci:" + images, "KILN_IMAGES_DIR": images})
    T.check("auto-build: the generated RUN steps get the pids limit (pip cannot fork)",
            r.returncode != 0 and "pids 2" in r.stderr and "fork" in r.stderr, r.stderr)
else:
    T.skip("auto-build: the generated RUN steps get the pids limit", "kiln's images not built")

# --- bytes pushed ----------------------------------------------------------------
port = start_registry()
img = ctx("pushme", "echo pushed > /pushed.txt")
m3, m4 = os.path.join(T.tmp, "push1.json"), os.path.join(T.tmp, "push2.json")
ref = f"127.0.0.1:{port}/limits/app:1"
r = build(img, "-t", ref, "--push", "--insecure-registry", f"127.0.0.1:{port}", "--metadata-file", m3)
p1 = meta(m3).get("kiln.bytes_pushed", -1)
T.check("push: a fresh repository gets every blob (bytes_pushed > 0)", r.returncode == 0 and p1 > 0,
        r.stderr + json.dumps(meta(m3)))
layers = 0
try:
    blobs = kiln("inspect", "--raw", "--insecure-registry", f"127.0.0.1:{port}", ref)
    man = json.loads(blobs.stdout)
    layers = man["config"]["size"] + sum(l["size"] for l in man["layers"])
except (ValueError, KeyError) as e:
    T.diag(f"inspect: {e}")
T.check("push: bytes_pushed is the config and layer sizes", p1 == layers, f"{p1} vs {layers}")
r = build(img, "-t", ref, "--push", "--insecure-registry", f"127.0.0.1:{port}", "--metadata-file", m4)
T.check("push: pushing again uploads nothing (blobs exist)",
        r.returncode == 0 and meta(m4).get("kiln.bytes_pushed") == 0, r.stderr + json.dumps(meta(m4)))
T.done()
