"""kiln build on the Dockerfiles of tests/dockerfiles/<case>/.

Each case has a Dockerfile (its base is `ARG BASE` + `FROM ${BASE}`: an OCI
layout made here by `kiln import` of a busybox tree) and expected.json:
  config      subset of the image config's "config" object that must match
  history     created_by of the history entries the build added, in order
  history_has created_by strings that must appear
  files       path -> content (string), true (must exist) or null (must not)
  owners      path -> "uid:gid";  modes: path -> "0755"
  symlinks    path -> target;  hardlinks: [[a, b], ...] (same inode)
  run         stdout of the image's default command under runc
  build_args  --build-arg values;  target: --target
The final filesystem comes from --output type=local, the config from the OCI
layout written by --output type=oci.
"""
import json
import os
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_image  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

CASES = os.path.join(SRC, "tests", "dockerfiles")
ROOT = os.path.join(T.tmp, "root")


def run_under_runc(layout, name):
    """Unpacks the image with umoci and runs its default command with runc."""
    if not shutil.which("runc") or not shutil.which("umoci"):
        return None, "runc/umoci missing"
    bundle = os.path.join(T.tmp, "bundle-" + name)
    r = subprocess.run(["umoci", "--log", "error", "unpack", "--image", f"{layout}:latest", bundle],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "", "umoci: " + r.stderr
    cfgp = os.path.join(bundle, "config.json")
    with open(cfgp) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    with open(cfgp, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run(["runc", "--root", os.path.join(T.tmp, "runc-state"), "run", "--bundle",
                        bundle, "kiln-it-" + name + str(os.getpid())],
                       capture_output=True, text=True, timeout=60)
    return r.stdout, r.stderr


def check_case(name, base):
    d = os.path.join(CASES, name)
    with open(os.path.join(d, "expected.json")) as f:
        exp = json.load(f)
    out_oci = os.path.join(T.tmp, "oci-" + name)
    out_fs = os.path.join(T.tmp, "fs-" + name)
    args = ["build", "--root", ROOT, "--progress", "plain", "-t", "t", "--build-arg", f"BASE={base}",
            "-o", f"type=oci,dest={out_oci}", "-o", f"type=local,dest={out_fs}"]
    for k, v in exp.get("build_args", {}).items():
        args += ["--build-arg", f"{k}={v}"]
    if "target" in exp:
        args += ["--target", exp["target"]]
    r = kiln(*args, d)
    if not T.check(f"{name}: build succeeds", r.returncode == 0, r.stderr[-3000:]):
        return
    man, cfg = read_image(out_oci)
    T.check(f"{name}: one diff_id per layer",
            len(man["layers"]) == len(cfg["rootfs"]["diff_ids"]), json.dumps(man))
    if "config" in exp:
        got = cfg.get("config", {})
        bad = {k: (got.get(k), v) for k, v in exp["config"].items() if got.get(k) != v}
        T.check(f"{name}: image config", not bad, json.dumps(bad, indent=1))
    hist = [h.get("created_by", "") for h in cfg.get("history", [])]
    if "history" in exp:
        added = hist[-len(exp["history"]):]
        T.check(f"{name}: history (BuildKit form)", added == exp["history"],
                json.dumps({"got": added, "want": exp["history"]}, indent=1))
        layered = [h for h in cfg["history"] if not h.get("empty_layer")]
        T.check(f"{name}: non-empty history entries match layers", len(layered) == len(man["layers"]),
                json.dumps(cfg["history"], indent=1))
    for want in exp.get("history_has", []):
        T.check(f"{name}: history has {want}", want in hist, json.dumps(hist, indent=1))
    for p, want in exp.get("files", {}).items():
        fp = out_fs + p
        if want is None:
            T.check(f"{name}: {p} absent", not os.path.lexists(fp))
        elif want is True:
            T.check(f"{name}: {p} present", os.path.lexists(fp))
        else:
            got = open(fp).read() if os.path.isfile(fp) else None
            T.check(f"{name}: {p} content", got == want, f"got {got!r} want {want!r}")
    for p, want in exp.get("owners", {}).items():
        st = os.lstat(out_fs + p) if os.path.lexists(out_fs + p) else None
        got = f"{st.st_uid}:{st.st_gid}" if st else None
        T.check(f"{name}: {p} owner {want}", got == want, f"got {got}")
    for p, want in exp.get("modes", {}).items():
        st = os.lstat(out_fs + p) if os.path.lexists(out_fs + p) else None
        got = "%04o" % stat.S_IMODE(st.st_mode) if st else None
        T.check(f"{name}: {p} mode {want}", got == want, f"got {got}")
    for p, want in exp.get("symlinks", {}).items():
        got = os.readlink(out_fs + p) if os.path.islink(out_fs + p) else None
        T.check(f"{name}: {p} -> {want}", got == want, f"got {got}")
    for a, b in exp.get("hardlinks", []):
        ok = os.path.exists(out_fs + a) and os.path.exists(out_fs + b) and \
            os.stat(out_fs + a).st_ino == os.stat(out_fs + b).st_ino
        T.check(f"{name}: {a} and {b} are one file", ok)
    if "run" in exp:
        out, detail = run_under_runc(out_oci, name)
        if out is None:
            T.skip(f"{name}: runs under runc", detail)
        else:
            T.check(f"{name}: runs under runc", out == exp["run"], f"got {out!r}\n{detail}")


base = make_base(ROOT)
for case in sorted(os.listdir(CASES)):
    if os.path.isfile(os.path.join(CASES, case, "expected.json")):
        check_case(case, base)
T.done()
