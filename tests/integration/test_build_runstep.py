#!/usr/bin/env python3
"""The per-RUN-step commit path: a RUN that changes no file makes no layer (BuildKit's
empty_layer history entry, a config-only cache entry); the mount points kiln adds
(/etc/hosts, /etc/resolv.conf, /etc/hostname, /proc, /dev, /sys) never reach a layer, with or
without an /etc in the image; cache entries are written in groups after one sync of the
store, so a build killed mid-way leaves only refs naming complete blobs and the next build
reuses what was written; a ref a crash left empty is a miss, not an error; a blob cut short
is replaced by the next write of it."""
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, make_busybox_rootfs, read_image  # noqa: E402
from kilntest import KILN, T, kiln  # noqa: E402

root = os.path.join(T.tmp, "root")
base = make_base(root)


def layer_names(layout, man):
    """The entry names of each layer of the image (gzip or plain tars)."""
    out = []
    for l in man["layers"]:
        with open(os.path.join(layout, "blobs", "sha256", l["digest"].split(":")[1]), "rb") as f:
            data = f.read()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
            out.append([m.name[2:] if m.name.startswith("./") else m.name for m in t.getmembers()])
    return out


def build(ctx, layout, *extra):
    return kiln("build", "--root", root, "--network", "none", "--progress", "plain",
                "--source-date-epoch", "0", "-o", f"type=oci,dest={layout}", *extra, ctx)


def store_refs(r):
    """{ref name: digest hex} of every readable ref file of the store at r."""
    refs = {}
    d = os.path.join(r, "refs")
    for name in os.listdir(d):
        if name.startswith(".") or len(name) != 64:
            continue
        with open(os.path.join(d, name)) as f:
            lines = f.read().split("\n")
        if len(lines) >= 2 and lines[0].startswith("sha256:"):
            refs[lines[1]] = lines[0][7:]
    return refs


def blob_ok(r, hexd):
    p = os.path.join(r, "blobs", "sha256", hexd)
    try:
        with open(p, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest() == hexd
    except OSError:
        return False


# 1. empty steps make no layer; the image is what BuildKit would make
ctx = os.path.join(T.tmp, "ctx1")
os.makedirs(ctx)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(f"FROM {base}\n"
            "RUN true\n"
            "RUN echo hi > /f\n"
            "RUN test -f /etc/hosts && test -f /etc/resolv.conf && test -d /proc/self\n"
            "RUN rm /f\n"
            "RUN true again\n")
out1 = os.path.join(T.tmp, "out1")
r = build(ctx, out1)
T.check("a build with RUN steps that change nothing succeeds", r.returncode == 0, r.stderr)
man, cfg = read_image(out1)
hist = cfg.get("history", [])
empty = [h.get("empty_layer", False) for h in hist]
T.check("history: the three RUNs that changed no file are empty_layer, the two that did are not",
        empty[-5:] == [True, False, True, False, True], json.dumps(hist, indent=1))
T.check("one diff_id per non-empty history entry, one layer per diff_id",
        len(cfg["rootfs"]["diff_ids"]) == sum(1 for e in empty if not e) == len(man["layers"]),
        json.dumps(cfg["rootfs"]) + json.dumps(man["layers"]))
names = layer_names(out1, man)
T.check("the step's writes are its layers: /f, then its whiteout",
        names[-2] == ["f"] and names[-1] == [".wh.f"], names[-2:])
leaked = [n for ls in names[1:] for n in ls if n.startswith(("etc/", "proc", "dev", "sys"))]
T.check("no mount point kiln adds reaches a layer", leaked == [], leaked)

# 1b. a step that changes / itself (mode, owner) leaves nothing for the next step: each RUN sees
#     the root as a fresh upper dir makes it (the dir it left is not reused)
ctxb = os.path.join(T.tmp, "ctx1b")
os.makedirs(ctxb)
with open(os.path.join(ctxb, "Dockerfile"), "w") as f:
    f.write(f"FROM {base}\n"
            "RUN chmod 700 / && chown 1000:1000 /\n"
            "RUN stat -c '%a %u %g' / > /seen\n")
outb = os.path.join(T.tmp, "out1b")
r = build(ctxb, outb, "--no-cache")
seen = ""
if r.returncode == 0:
    manb, _ = read_image(outb)
    with open(os.path.join(outb, "blobs", "sha256", manb["layers"][-1]["digest"].split(":")[1]), "rb") as f:
        with tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:*") as t:
            m = next((m for m in t.getmembers() if m.name.endswith("seen")), None)
            seen = t.extractfile(m).read().decode().strip() if m else ""
T.check("a RUN after one that chmods and chowns / sees / as 0755 root:root again",
        r.returncode == 0 and seen == "755 0 0", r.stderr + seen)

# 2. a rebuild hits every step, config-only entries included, and makes the same image
out2 = os.path.join(T.tmp, "out2")
r = build(ctx, out2)
man2, cfg2 = read_image(out2)
T.check("a rebuild reuses every RUN (config-only entries too)",
        r.returncode == 0 and r.stderr.count("CACHED") >= 5, r.stderr)
T.check("and makes the same image", man2 == man and cfg2 == cfg)

# 3. an image without /etc: a step writing /etc/x gets /etc and x in its layer, and nothing
#    of kiln's /etc files
ctx3 = os.path.join(T.tmp, "ctx3")
rootfs = make_busybox_rootfs(os.path.join(ctx3, "rootfs"))
for n in ("passwd", "group"):
    os.unlink(os.path.join(rootfs, "etc", n))
os.rmdir(os.path.join(rootfs, "etc"))
for n in ("proc", "sys", "dev"):
    os.rmdir(os.path.join(rootfs, n))
with open(os.path.join(ctx3, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY rootfs/ /\n"
            "RUN test -f /etc/hosts && test -d /proc/self && test -c /dev/null\n"
            "RUN echo x > /etc/x\n")
out3 = os.path.join(T.tmp, "out3")
r = build(ctx3, out3)
T.check("a rootfs without /etc, /proc, /dev, /sys builds", r.returncode == 0, r.stderr)
if r.returncode == 0:
    man3, cfg3 = read_image(out3)
    names3 = layer_names(out3, man3)
    T.check("the step that checked the mount points made no layer; the next one /etc and /etc/x only",
            len(names3) == 2 and sorted(names3[1]) == ["etc", "etc/x"], names3)

# 4. a build killed mid-way: every ref names a complete blob, the next build reuses the steps
#    whose entries were written and builds the rest
root4 = os.path.join(T.tmp, "root4")
ctx4 = os.path.join(T.tmp, "ctx4")
os.makedirs(ctx4)
with open(os.path.join(ctx4, "Dockerfile"), "w") as f:
    f.write(f"FROM {base}\n" + "".join(f"RUN echo {i} > /f{i}\n" for i in range(6)) +
            "RUN sleep 600\nRUN echo after > /after\n")
p = T.spawn([KILN, "build", "--root", root4, "--network", "none", "--progress", "plain",
             "--source-date-epoch", "0", ctx4], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
written = False
for _ in range(600):  # the flusher writes the first steps' entries while `sleep` runs
    if os.path.isdir(os.path.join(root4, "refs")):
        refs = store_refs(root4)
        if sum(1 for n in refs if n.startswith("cache/") and not n.endswith(".layer")) >= 6:
            written = True
            break
    time.sleep(0.1)
os.kill(p.pid, signal.SIGKILL)
p.wait()
T.check("the entries of the steps before the long one are written while it runs", written)
refs = store_refs(root4)
bad = [n for n, d in refs.items() if not blob_ok(root4, d)]
T.check("after the kill every ref names a complete blob", refs and not bad, bad)
with open(os.path.join(ctx4, "Dockerfile")) as f:
    text = f.read()
with open(os.path.join(ctx4, "Dockerfile"), "w") as f:
    f.write(text.replace("RUN sleep 600\n", "RUN true\n"))
# a ref a crash left empty is a miss, not an error
cache_files = sorted(os.path.join(root4, "refs", n) for n in os.listdir(os.path.join(root4, "refs"))
                     if len(n) == 64)
torn = None
for path in cache_files:
    with open(path) as f:
        body = f.read()
    if "\ncache/" in body and ".layer" not in body:
        torn = path
        open(path, "w").close()
        break
out4 = os.path.join(T.tmp, "out4")
r = kiln("build", "--root", root4, "--network", "none", "--progress", "plain",
         "--source-date-epoch", "0", "-o", f"type=oci,dest={out4}", ctx4)
T.check("the next build succeeds (a ref left empty is a miss)", torn and r.returncode == 0, r.stderr)
T.check("and reuses the steps whose entries were written", r.stderr.count("CACHED") >= 5, r.stderr)
if r.returncode == 0:
    man4, _ = read_image(out4)
    names4 = layer_names(out4, man4)
    T.check("its image has every step's file",
            all([f"f{i}"] in names4 for i in range(6)) and ["after"] in names4, names4)
r = kiln("prune", "--root", root4)
T.check("prune walks the refs with one left empty", r.returncode == 0, r.stderr)

# 5. a blob cut short (a crash before the sync) that no ref names is replaced by the next
#    write of the same bytes
refs = store_refs(root4)
layer_ref = next((n for n in refs if n.endswith(".layer")), None)
victim = refs.get(layer_ref)
if victim:
    for n in [n for n in refs if n.startswith("cache/")]:
        kf = hashlib.sha256(n.encode()).hexdigest()
        os.unlink(os.path.join(root4, "refs", kf))
    vp = os.path.join(root4, "blobs", "sha256", victim)
    os.chmod(vp, 0o644)
    with open(vp, "r+b") as f:
        f.truncate(os.path.getsize(vp) // 2)
    out5 = os.path.join(T.tmp, "out5")
    r = kiln("build", "--root", root4, "--network", "none", "--progress", "plain",
             "--source-date-epoch", "0", "-o", f"type=oci,dest={out5}", ctx4)
    T.check("a build after a blob was cut short succeeds", r.returncode == 0, r.stderr)
    T.check("and the store holds that blob whole again", blob_ok(root4, victim))
else:
    T.check("a layer cache ref to cut short", False, refs)

T.done()
