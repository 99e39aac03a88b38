#!/usr/bin/env python3
"""End to end: pnpm, yarn classic, yarn Berry and bun projects (tests/fixtures/node-pm,
real lockfiles, one dependency `ms` and one devDependency `is-number`) are
auto-detected and built on kiln's images. The build image has no pnpm, yarn, bun or
corepack: the install step fetches the package manager's exact release
(packageManager field, else kiln's pinned default) from the npm registry into
the project's npm cache mount; bun comes with the Node toolchain instead
(@oven/bun-linux-x64, checksum pinned), and its image, whose start script runs
bun, carries bun beside node. The run image has no package manager: the start
script runs as it is (npm start's script, node_modules/.bin on PATH). Each project is built as an image (run with
runc, it answers over loopback) and as a function zip (the plan's prune
command ran for real: production deps only); a pnpm rebuild after an app
change reuses the install step."""
import json
import os
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import (ENV, ROOT, build, fixture, need_node_images, plan_of,  # noqa: E402
                          run_http)
from kilntest import T, kiln  # noqa: E402

need_node_images()


def source(name, copy=""):
    return fixture("node-pm", name, copy)


def zip_names(path):
    try:
        return zipfile.ZipFile(path).namelist()
    except (OSError, zipfile.BadZipFile) as e:
        return [f"<{e}>"]


CASES = [
    # fixture, plan's packageManager, the release installed, npm package, its cache target
    ("pnpm", "pnpm", "pnpm@9.15.9", "pnpm install --frozen-lockfile", "/root/.local/share/pnpm/store"),
    ("yarn", "yarn", "yarn@1.22.22", "yarn install --frozen-lockfile", "/usr/local/share/.cache/yarn"),
    ("berry", "yarn-berry", "@yarnpkg/cli-dist@4.5.3", "yarn install --immutable", "/root/.yarn/berry/cache"),
    ("bun", "bun", None, "bun install --frozen-lockfile", "/root/.bun/install/cache"),
]

for name, pm, release, install, cache in CASES:
    src = source(name)
    p = plan_of(src)
    cmds = p.get("commands", {})
    T.check(f"{name}: detected as {pm}", p.get("packageManager") == pm, json.dumps(p))
    if release is None:
        tc = p.get("toolchain", {})
        T.check(f"{name}: bun comes with the Node toolchain (pinned @oven/bun-linux-x64), no npm install -g",
                "setup" not in cmds and tc.get("with", {}).get("package") == "@oven/bun-linux-x64"
                and tc.get("with", {}).get("integrity", "").startswith("sha512-")
                and cmds.get("install") == install, json.dumps(p))
        T.check(f"{name}: the start script runs bun, so the image carries bin/ (node and bun)",
                cmds.get("start") == "bun index.js" and tc.get("runPath") == "bin", json.dumps(p))
    else:
        T.check(f"{name}: the install step fetches {release} from the npm registry, then runs {install}",
                cmds.get("setup", "").startswith("npm install -g --prefer-offline")
                and cmds.get("setup", "").endswith(f" {release}") and cmds.get("install") == install,
                json.dumps(cmds))
        T.check(f"{name}: the image starts with the start script itself (no package manager in the run image)",
                cmds.get("start") == "node index.js" and p.get("toolchain", {}).get("runPath") == "bin/node",
                json.dumps(cmds))
    targets = [c.get("target") for c in p.get("caches", [])]
    T.check(f"{name}: the {pm} store is a cache mount (and npm's, which fetches the manager)",
            cache in targets and (release is None or "/root/.npm" in targets), json.dumps(p.get("caches")))

    out = os.path.join(T.tmp, "oci-" + name)
    r = build(src, "-t", f"pm-{name}:latest", "--output", f"type=oci,dest={out}")
    if not T.check(f"{name}: kiln build installs with {pm} and builds an image", r.returncode == 0,
                   r.stderr[-3000:]):
        continue
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check(f"{name}: the image answers over loopback, using the dependency {pm} installed",
            f"{pm} ms=2m" in body, body)

    if name == "pnpm":
        # A rebuild after an app change reuses the install step (layer cache).
        with open(os.path.join(src, "index.js"), "a") as f:
            f.write("// changed\n")
        r1 = build(src, "-t", f"pm-{name}:latest", "--output", f"type=oci,dest={out}-2")
        lines = [ln for ln in r1.stderr.splitlines() if install in ln and "RUN" in ln]
        idx = r1.stderr.find(lines[0]) if lines else -1
        T.check(f"{name}: a rebuild after an app change does not rerun the install step",
                r1.returncode == 0 and idx >= 0 and "CACHED" in r1.stderr[idx:idx + len(lines[0]) + 40],
                r1.stderr[-3000:])

    # The function output: the plan's prune command runs for real.
    fdir = os.path.join(T.tmp, "fn-" + name)
    zpath = os.path.join(fdir, "function.zip")
    os.makedirs(fdir)
    r2 = build(src, "--output", f"type=function,dest={zpath}", env={"KILN_OUTPUTS": "function"})
    if not T.check(f"{name}: kiln build makes a function zip", r2.returncode == 0 and os.path.exists(zpath),
                   r2.stderr[-3000:]):
        continue
    names = zip_names(zpath)
    T.check(f"{name}: the build script ran through {pm} run build (built.txt in the zip)",
            "built.txt" in names, str(names[:40]))
    T.check(f"{name}: the function zip holds the production dependency ms",
            any(n.startswith("node_modules/") and n.endswith("ms/index.js") for n in names), str(names[:40]))
    T.check(f"{name}: the prune command removed the devDependency is-number from the zip",
            not any("is-number" in n for n in names), str([n for n in names if "is-number" in n]))
    T.check(f"{name}: no package manager store or cache is in the zip",
            not any(n.startswith((".npm/", ".pnpm-store/", ".yarn/cache/", "root/")) for n in names),
            str(names[:40]))
    x = os.path.join(fdir, "x")
    # unzip restores the symlinks of pnpm's node_modules (as Lambda does)
    subprocess.run(["unzip", "-q", zpath, "-d", x], capture_output=True)
    run = subprocess.run(["node", "-e", "process.stdout.write(require('ms')(60000))"], cwd=x,
                         capture_output=True, text=True, timeout=60)
    T.check(f"{name}: the unzipped function resolves ms", run.stdout == "1m", run.stdout + run.stderr)



def in_cache_mounts(match):
    """True when a file or dir under the kiln root's cache mounts satisfies match(parent, name, path)."""
    for d, dirs, files in os.walk(os.path.join(ROOT, "build", "cache-mounts")):
        for f in files + dirs:
            if match(d, f, os.path.join(d, f)):
                return True
    return False


def pnpm_index_of_ms(d, f, path):
    if not f.endswith("-index.json") or "/v3/files/" not in path:
        return False
    with open(path, errors="replace") as fh:
        return '"name":"ms"' in fh.read(4096)


# The managers' stores are cache mounts in the kiln root (never in outputs).
T.check("pnpm's store (v3, ms indexed) is a cache mount under the kiln root", in_cache_mounts(pnpm_index_of_ms))
T.check("yarn classic's cache (v6/npm-ms-2.1.3-*) is a cache mount under the kiln root",
        in_cache_mounts(lambda d, f, p: os.path.basename(d) == "v6" and f.startswith("npm-ms-2.1.3-")))
T.check("yarn Berry's cache (ms-npm-2.1.3-*.zip) is a cache mount under the kiln root",
        in_cache_mounts(lambda d, f, p: f.startswith("ms-npm-2.1.3-") and f.endswith(".zip")))
T.check("bun's install cache (ms@2.1.3@@@*) is a cache mount under the kiln root",
        in_cache_mounts(lambda d, f, p: f.startswith("ms@2.1.3@@@")))

# yarn Berry on a Node toolchain (engines.node 20, fetched into the kiln root):
# the manager installs with that Node's npm and the image runs on it.
src = source("berry", "-node20")
pkg = json.load(open(os.path.join(src, "package.json")))
pkg["engines"] = {"node": "20"}
json.dump(pkg, open(os.path.join(src, "package.json"), "w"))
out = os.path.join(T.tmp, "oci-berry-node20")
r = build(src, "-t", "pm-berry20:latest", "--output", f"type=oci,dest={out}")
if T.check("berry on Node 20: builds (yarn 4.5.3 installed with the toolchain's Node)",
           r.returncode == 0 and "COPY --from=node" in r.stderr
           and "@yarnpkg/cli-dist@4.5.3 && yarn install --immutable" in r.stderr, r.stderr[-3000:]):
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("berry on Node 20: the image answers over loopback", "yarn-berry ms=2m" in body, body)

# A packageManager that is not a plain version is refused before any shell sees it.
bad = source("pnpm", "-bad")
pkg = json.load(open(os.path.join(bad, "package.json")))
pkg["packageManager"] = "pnpm@9.1.0;curl evil"
json.dump(pkg, open(os.path.join(bad, "package.json"), "w"))
r = kiln("plan", bad, env=ENV)
T.check("a packageManager with shell characters is refused with a clear error",
        r.returncode != 0 and "packageManager" in r.stderr and "plain version" in r.stderr, r.stderr)
T.done()
