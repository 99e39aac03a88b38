"""Hostile builds against the kernel surface, entitlements and isolation
(issue 13, parts 2, 3 and 7), with the real `kiln run` / `kiln build` and
the real sandbox; and the regression of identical layers (one lower
directory given twice to overlayfs failed with ELOOP)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_image, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402

if os.geteuid() != 0:
    T.skip("hostile kernel suite", "needs root")
    T.done()

ROOT = os.path.join(T.tmp, "root")
# the step opens its mount sources as its own (mapped) root: let it walk in
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)


def build(ctx, *extra, dockerfile=None):
    args = ["build", "--root", ROOT, "--progress", "plain"]
    if dockerfile is not None:
        path = os.path.join(T.tmp, os.path.basename(ctx) + ".Dockerfile")
        with open(path, "w") as f:
            f.write(dockerfile)
        args += ["-f", path]
    return kiln(*args, *extra, ctx)


def ctx_dir(name, files):
    return write_tree(os.path.join(T.tmp, name), files)


# --- identical layers (ELOOP) --------------------------------------------------
ctx = ctx_dir("eloop", {"package.json": "{}\n"})
out = os.path.join(T.tmp, "eloop-out")
r = build(ctx, "-o", f"type=oci,dest={out}", dockerfile=f"FROM {BASE}\nRUN true\nRUN true\nRUN echo x\n")
T.check("RUN true / RUN true / RUN echo x builds (identical layers, one lower)", r.returncode == 0,
        r.stderr)
if r.returncode == 0:
    man, _ = read_image(out)
    T.check("the repeated identical layer is still a layer of the image", len(man["layers"]) == 4,
            str(man["layers"]))
out = os.path.join(T.tmp, "eloop-copy-out")
r = build(ctx, "-o", f"type=oci,dest={out}",
          dockerfile=f"FROM {BASE}\nWORKDIR /app\nCOPY package.json ./\nCOPY . .\nRUN cat package.json\n")
T.check("COPY package.json then COPY . . of a one-file project, then RUN, builds", r.returncode == 0,
        r.stderr)

T.done()
