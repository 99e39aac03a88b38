"""Any number of steps: a stage of 500 RUN steps builds (past 128 layers a step runs on a
flattened snapshot of the bottom of the chain), every step sees the files of all the steps
before it (whiteouts and opaque directories of flattened layers applied), the image
(unpacked with umoci) has every file that should exist and none that was deleted, COPY
after many layers and COPY --from a stage with many layers work, and a rebuild is all
cache hits."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)
STEPS = 500
MARKER = os.path.join(T.tmp, "host-marker")
with open(MARKER, "w") as f:
    f.write("host-secret-7731\n")


def expected_files():
    """{path in /d: content} after all the steps, the way the steps below make them."""
    files = {}
    for i in range(1, STEPS + 1):
        files[f"f{i}"] = f"{i}\n"
        if i % 10 == 5:
            files.pop(f"f{i - 3}", None)
    files["h150"] = files["f150"]
    return files


def dockerfile():
    lines = ["ARG BASE", "FROM ${BASE} AS many"]
    for i in range(1, STEPS + 1):
        cmd = f"mkdir -p /d && echo {i} > /d/f{i}"
        if i % 10 == 5:
            cmd += f" && rm /d/f{i - 3}"  # a whiteout of a file of an earlier layer
        if i == 100:
            cmd += " && mkdir -p /o/sub && echo old > /o/old && echo old > /o/sub/x"
        if i == 150:
            cmd += " && ln /d/f150 /d/h150"
        if i == 160:
            cmd += " && chmod 0640 /d/f160 && chown 7:8 /d/f160"
        if i == 10:  # links to the host's marker, in a layer that gets flattened
            cmd += f" && ln -s {MARKER} /lnk-abs && ln -s ../../../../../../..{MARKER} /lnk-rel"
        if i == 450:  # read and write through them once they are in the snapshot
            cmd += (" && (cat /lnk-abs /lnk-rel || true) && (echo pwned > /lnk-abs || true) &&"
                    " (echo pwned > /lnk-rel || true)")
        if i == 200:
            cmd += " && rm -rf /o && mkdir /o && echo new > /o/new"  # an opaque directory
        if i == 300:
            lines.append("COPY ctx.txt /c/ctx.txt")
        lines.append(f"RUN {cmd}")
    exp = expected_files()
    # the last step checks what it sees against what must be there
    lines.append(f'RUN test "$(ls /d | wc -l)" = {len(exp)} && test ! -e /d/f2 && test -e /d/f1 && '
                 'test ! -e /o/old && test ! -e /o/sub && test "$(cat /o/new)" = new && '
                 'test "$(cat /c/ctx.txt)" = context && echo all-files-seen')
    lines += ["FROM ${BASE}", "COPY --from=many /d /copied", "COPY --from=many /o /o",
              "RUN test \"$(ls /copied | wc -l)\" = %d && echo copied-ok" % len(exp)]
    return "\n".join(lines) + "\n"


def build(ctx, *extra):
    return kiln("build", "--root", ROOT, "--progress", "plain", "-t", "latest", "--build-arg",
                f"BASE={BASE}", *extra, ctx, timeout=900)


def unpack(layout, name):
    bundle = os.path.join(T.tmp, "bundle-" + name)
    r = subprocess.run(["umoci", "--log", "error", "unpack", "--image", f"{layout}:latest", bundle],
                       capture_output=True, text=True)
    return os.path.join(bundle, "rootfs"), r


def tree(d):
    out = {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, name)) as f:
            out[name] = f.read()
    return out


ctx = write_tree(os.path.join(T.tmp, "ctx"), {"Dockerfile": dockerfile(), "ctx.txt": "context"})
exp = expected_files()

# --- the many-layer stage as the image -------------------------------------------
out1 = os.path.join(T.tmp, "oci-many")
r = build(ctx, "--target", "many", "-o", f"type=oci,dest={out1}")
T.check("500 RUN steps build", r.returncode == 0, r.stderr[-3000:])
T.check("the last step saw every file of the steps before it (whiteouts, opaque dir, COPY)",
        "all-files-seen" in r.stderr, r.stderr[-3000:])
T.check("past 128 layers the bottom of the chain is flattened (and said so)",
        "flattening the layers below" in r.stderr, r.stderr[-2000:])
with open(MARKER) as f:
    T.check("hostile: links in flattened layers reach no host file (marker neither read nor written)",
            f.read() == "host-secret-7731\n" and "host-secret-7731" not in r.stderr, r.stderr[-1500:])
flats = [n for n in os.listdir(os.path.join(ROOT, "build", "lowers")) if n.startswith("flat-")]
T.check("one snapshot per 64 layers past 128 (128, 192, ..., 448 layers)", len(flats) == 6, flats)
T.check("hostile: a snapshot keeps the links as links (never followed while flattening)",
        flats and all(os.readlink(os.path.join(ROOT, "build", "lowers", n, "lnk-abs")) == MARKER
                      for n in flats), flats)

if shutil.which("umoci"):
    rootfs, u = unpack(out1, "many")
    T.check("umoci unpacks the image", u.returncode == 0, u.stderr)
    got = tree(os.path.join(rootfs, "d"))
    T.check("the image has every file that should exist and none that was deleted",
            got == exp, sorted(set(got) ^ set(exp))[:20])
    st = os.stat(os.path.join(rootfs, "d", "f160"))
    T.check("a mode and owner set in a step are in the image",
            (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 7, 8), st)
    T.check("a hardlink made in a step is one in the image",
            os.stat(os.path.join(rootfs, "d", "h150")).st_ino ==
            os.stat(os.path.join(rootfs, "d", "f150")).st_ino)
    T.check("the opaque directory replaced the old one", tree(os.path.join(rootfs, "o")) ==
            {"new": "new\n"} and not os.path.exists(os.path.join(rootfs, "o", "sub")),
            os.listdir(os.path.join(rootfs, "o")))
else:
    T.skip("image contents", "umoci missing")

# --- kiln run on the 500-layer image: its bottom layers merged for the run --------
cache = os.path.join(T.tmp, "layer-cache")
r = kiln("run", "--rootfs", f"oci:{out1}:latest", "--network", "none", "--", "sh", "-c",
         "ls /d | wc -l; cat /o/new; test -e /o/old || echo no-old", env={"KILN_LAYER_CACHE": cache})
T.check("kiln run on an image of 500 layers sees every file", r.returncode == 0 and
        r.stdout.split() == [str(len(exp)), "new", "no-old"], r.stdout + r.stderr)
T.check("... and leaves no flattened tree behind",
        not [n for n in os.listdir(cache) if n.startswith(".flat-")], os.listdir(cache))

# --- COPY --from the many-layer stage --------------------------------------------
out2 = os.path.join(T.tmp, "oci-final")
r = build(ctx, "-o", f"type=oci,dest={out2}")
T.check("COPY --from a stage of 500 layers builds", r.returncode == 0 and "copied-ok" in r.stderr,
        r.stderr[-3000:])
T.check("the many-layer stage is all cache hits the second time",
        len(re.findall(r"^#\d+ CACHED", r.stderr, re.M)) >= STEPS, r.stderr[-2000:])
if shutil.which("umoci"):
    rootfs, u = unpack(out2, "final")
    T.check("the copied directory has the merged files", u.returncode == 0 and
            tree(os.path.join(rootfs, "copied")) == exp and
            tree(os.path.join(rootfs, "o")) == {"new": "new\n"}, u.stderr)

# --- a rebuild after the snapshots are gone --------------------------------------
for n in flats:
    shutil.rmtree(os.path.join(ROOT, "build", "lowers", n))
r = build(ctx, "--target", "many")
T.check("a rebuild hits the cache for every step (500 RUN, the COPY, the check; no snapshot made)",
        r.returncode == 0 and len(re.findall(r"^#\d+ CACHED", r.stderr, re.M)) == STEPS + 2 and
        "flattening" not in r.stderr, r.stderr[-2000:])
r = kiln("prune", "--root", ROOT)
T.check("prune removes the flattened snapshots", r.returncode == 0 and not [
    n for n in os.listdir(os.path.join(ROOT, "build", "lowers")) if n.startswith("flat-")], r.stderr)
T.done()
