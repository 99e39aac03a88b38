#!/usr/bin/env python3
"""Node frameworks built for real (their packages from the npm registry):

- tests/fixtures/frameworks/next-standalone (Next.js 16, output: 'standalone'): kiln plan
  explains each choice; kiln build makes an image holding the standalone server,
  .next/static and public/ only (no source, no build cache, no full node_modules) that
  answers over loopback, its pages and its public files;
- a function output of a Node package with no start script (package.json main in lib/,
  .nvmrc 22): the zip holds the handler and its dependency, function.json names
  lib/handler.handler and nodejs22.x, the handler runs.

- tests/fixtures/frameworks/react-router (React Router 7, SSR): the image runs its start
  script (react-router-serve from node_modules/.bin, no npm in the run image) and the
  route's loader answers over loopback;
- the run image is node-run (no Debian nodejs or npm) with bin/node alone of the toolchain;
- the same Next.js app with OpenNext (tests/fixtures/frameworks/next-opennext's package.json
  and lockfile): a function output built with open-next build whose handler answers an API
  Gateway event.

The plans of Nuxt, SvelteKit (adapter-node), Astro (@astrojs/node), Remix and the function
runtimes are in the detection table (tests/fixtures/detect)."""
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import ENV, ROOT, build, ensure_images, run_http  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402
from node_fw_lib import invoke, toolchain_node  # noqa: E402

FIX = os.path.join(SRC, "tests", "fixtures", "frameworks")


def fixture(name, copy=""):
    dst = os.path.join(T.tmp, "src-" + name + copy)
    shutil.copytree(os.path.join(FIX, name), dst, symlinks=True)
    return dst


def image_files(layout):
    """Paths (no leading ./ or /) in the layers of the single image of an OCI layout, and
    the layers' compressed size."""
    idx = json.load(open(os.path.join(layout, "index.json")))
    blob = lambda dg: os.path.join(layout, "blobs", *dg.split(":"))  # noqa: E731
    man = json.load(open(blob(idx["manifests"][0]["digest"])))
    have, size = set(), 0
    for layer in man["layers"]:
        size += layer["size"]
        with open(blob(layer["digest"]), "rb") as f:
            src = gzip.GzipFile(fileobj=f) if "gzip" in layer["mediaType"] else f
            with tarfile.open(fileobj=src, mode="r|*") as t:
                for m in t:
                    have.add(m.name.lstrip("./").rstrip("/"))
    return have, size


ok, log = ensure_images("node-build", "node-run")
if not T.check("kiln's node images are built (images/build.sh)", ok, log):
    T.done()

# --- the plan says why
nxt = fixture("next-standalone")
r = kiln("plan", "--explain", nxt, env=ENV)
T.check("next-standalone: kiln plan --explain succeeds", r.returncode == 0, r.stderr)
for line in ("start command    node server.js",
             "why: next.config.mjs sets output: 'standalone': next build writes a self-contained server",
             "why: package.json depends on next",
             "why: package-lock.json is there",
             "why: nothing in the source names a version: Node 26, the current LTS line",
             "why: package.json scripts.build: next build",
             "why: server.js listens on $PORT (and $HOSTNAME=0.0.0.0)"):
    T.check(f"next-standalone: the explanation says {line!r}", line in r.stdout, r.stdout)
r = kiln("plan", nxt, env=ENV)
plan = json.loads(r.stdout) if r.returncode == 0 else {}
T.check("next-standalone: the plan's run files are the standalone server, .next/static and public/",
        plan.get("runFiles") == [".next/standalone:.", ".next/static:.next/static", "public:public"], r.stdout)

# In a workspace (--subdir apps/web), Next.js traces the standalone server from the repository
# root: the image takes the standalone tree at /app, the app's static files and public/ under
# apps/web, and starts apps/web/server.js from there.
ws = os.path.join(T.tmp, "ws")
os.makedirs(os.path.join(ws, "apps", "web", "public"))
json.dump({"name": "root", "private": True, "workspaces": ["apps/*"]}, open(os.path.join(ws, "package.json"), "w"))
json.dump({"lockfileVersion": 3, "packages": {}}, open(os.path.join(ws, "package-lock.json"), "w"))
json.dump({"name": "web", "scripts": {"build": "next build"}, "dependencies": {"next": "16.4.6"}},
          open(os.path.join(ws, "apps", "web", "package.json"), "w"))
open(os.path.join(ws, "apps", "web", "next.config.mjs"), "w").write("export default { output: 'standalone' };\n")
r = kiln("plan", "--subdir", "apps/web", ws, env=ENV)
wp = json.loads(r.stdout) if r.returncode == 0 else {}
T.check("workspace: the standalone run files keep the repository layout and start from the app",
        wp.get("runFiles") == ["apps/web/.next/standalone:.", "apps/web/.next/static:apps/web/.next/static",
                               "apps/web/public:apps/web/public"]
        and wp.get("commands", {}).get("start") == "cd apps/web && node server.js", r.stdout + r.stderr)

# --- built for real: the image holds the standalone output and answers
out = os.path.join(T.tmp, "oci-next")
r = build(nxt, "-t", "next-standalone:latest", "--output", f"type=oci,dest={out}")
if T.check("next-standalone: kiln build auto-detects and builds", r.returncode == 0, r.stderr[-4000:]):
    files, size = image_files(out)
    T.check("the image holds server.js, .next/static and public/ under /app",
            {"app/server.js", "app/.next/static", "app/public/hello.txt", "app/node_modules/next"} <= files,
            str(sorted(f for f in files if f.startswith("app/") and f.count("/") <= 2)))
    T.check("the image holds no source, build cache, lockfile or dev tooling of the app",
            not ({"app/app/page.js", "app/next.config.mjs", "app/package-lock.json", "app/.next/cache",
                  "app/node_modules/.bin/next"} & files),
            str(sorted(f for f in files if f.startswith("app/") and f.count("/") <= 2)))
    print(f"# next-standalone image: {size / 1e6:.1f} MB compressed", flush=True)
    T.check("next-standalone: the run image has node alone (no Debian nodejs, npm or the toolchain's headers)",
            "opt/node/bin/node" in files and not ({"usr/bin/npm", "usr/bin/nodejs", "usr/share/nodejs",
                                                   "opt/node/include", "usr/bin/apt-get"} & files),
            str(sorted(f for f in files if f.startswith(("usr/bin/", "opt/")))))
    try:
        body = run_http(out, "latest", "/")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("the standalone server renders the page (on the Node of the plan)",
            "hello from kiln next-standalone (node <!-- -->v26." in body
            or "hello from kiln next-standalone (node v26." in body, body[-2000:])
    try:
        pub = run_http(out, "latest", "/hello.txt")
    except Exception as e:  # noqa: BLE001
        pub = f"<{e}>"
    T.check("the standalone server serves public/", "kiln next standalone public file" in pub, pub)

# --- React Router 7 (framework mode, SSR): built for real, started by its start script
# (react-router-serve from node_modules/.bin: no npm in the run image) and answering
rr = fixture("react-router")
out = os.path.join(T.tmp, "oci-rr")
r = build(rr, "-t", "rr:latest", "--output", f"type=oci,dest={out}")
if T.check("react-router: kiln build builds the server image", r.returncode == 0, r.stderr[-4000:]):
    files, size = image_files(out)
    T.check("react-router: the image holds the server build and the production deps, no dev tooling",
            {"app/build/server/index.js", "app/node_modules/.bin/react-router-serve", "opt/node/bin/node"} <= files
            and "app/node_modules/@react-router/dev" not in files and "app/node_modules/vite" not in files
            and "opt/node/include" not in files, str(sorted(f for f in files if f.count("/") <= 3))[:3000])
    T.check("react-router: the image holds build/, package.json and node_modules, no source or lockfile",
            "app/package.json" in files and not ({"app/app/root.jsx", "app/app", "app/vite.config.js",
                                                  "app/package-lock.json", "app/react-router.config.js"} & files),
            str(sorted(f for f in files if f.startswith("app/") and f.count("/") <= 1)))
    try:
        body = run_http(out, "latest", "/")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("react-router: react-router-serve renders the route's loader data (node v26)",
            "hello from kiln react-router (node <!-- -->v26." in body
            or "hello from kiln react-router (node v26." in body, body[-2000:])

# --- Next.js as a function through OpenNext (@opennextjs/aws in devDependencies): open-next
# build bundles the server; the zip is .open-next/server-functions/default, its index.mjs
# exports function.json's handler and answers an API Gateway event on the runtime's Node
on = fixture("next-standalone", "-opennext")
for f in ("package.json", "package-lock.json"):
    shutil.copy(os.path.join(FIX, "next-opennext", f), on)
r = kiln("plan", "--explain", "-o", "type=function", on, env=ENV)
T.check("opennext: the function plan builds with open-next build, handler index.handler, nodejs24.x",
        r.returncode == 0 and "build command    npx --no-install open-next build" in r.stdout
        and "handler          index.handler" in r.stdout and "runtime          nodejs24.x" in r.stdout
        and "Node 24 for the function: the default LTS line (26) has no AWS Lambda runtime" in r.stdout,
        r.stdout + r.stderr)
zpath = os.path.join(T.tmp, "fn-on", "function.zip")
r = build(on, "--output", f"type=function,dest={zpath}")
if T.check("opennext: kiln build runs open-next build and writes the zip", r.returncode == 0 and os.path.exists(zpath),
           r.stderr[-4000:]):
    meta = json.load(open(os.path.join(T.tmp, "fn-on", "function.json")))
    names = zipfile.ZipFile(zpath).namelist()
    T.check("opennext: the zip is the server function (index.mjs, its traced node_modules/next), no source",
            meta.get("handler") == "index.handler" and "index.mjs" in names
            and any(n.startswith("node_modules/next/") for n in names)
            and not any(n.startswith(("app/", ".git", "package-lock.json", "node_modules/@opennextjs/"))
                        for n in names), f"{meta} {names[:20]}")
    print(f"# opennext function.zip: {os.path.getsize(zpath) / 1e6:.1f} MB, {len(names)} entries", flush=True)
    x = os.path.join(T.tmp, "fn-on-x")
    zipfile.ZipFile(zpath).extractall(x)
    node = toolchain_node(ROOT, meta.get("runtime", "nodejsX.x")[6:-2])
    res, log = invoke(node, x, meta.get("handler", ""), "/") if node else ({}, "no toolchain")
    T.check("opennext: the handler renders the page for an API Gateway event on the runtime's Node (v24)",
            res.get("statusCode") == 200 and meta.get("runtime") == "nodejs24.x"
            and "hello from kiln next-standalone (node <!-- -->v24." in res.get("body", ""), log[-2000:])

# --- a function: no start script, handler from package.json main, runtime from .nvmrc
fn = os.path.join(T.tmp, "fn-src")
os.makedirs(os.path.join(fn, "lib"))
json.dump({"name": "kiln-fn", "version": "1.0.0", "main": "lib/handler.js", "dependencies": {"ms": "2.1.3"}},
          open(os.path.join(fn, "package.json"), "w"))
open(os.path.join(fn, ".nvmrc"), "w").write("22\n")
open(os.path.join(fn, "lib", "handler.js"), "w").write(
    "const ms = require('ms');\n"
    "exports.handler = async () => ({ statusCode: 200, body: `in ${ms(60000)} on ${process.version}` });\n")
shutil.copy(os.path.join(SRC, "examples", "lambda-node", "package-lock.json"), fn)
lock = json.load(open(os.path.join(fn, "package-lock.json")))
lock["name"] = lock["packages"][""]["name"] = "kiln-fn"
lock["packages"][""].pop("devDependencies", None)
lock["packages"][""].pop("engines", None)
lock["packages"].pop("node_modules/semver", None)
json.dump(lock, open(os.path.join(fn, "package-lock.json"), "w"), indent=2)
r = kiln("plan", "--explain", "-o", "type=function", fn, env=ENV)
T.check("function: kiln plan -o type=function names the handler and runtime and why",
        r.returncode == 0 and "handler          lib/handler.handler" in r.stdout
        and "why: package.json main lib/handler.js: its handler export" in r.stdout
        and "runtime          nodejs22.x" in r.stdout
        and "why: Node 22 from .nvmrc: AWS Lambda runs it as nodejs22.x" in r.stdout, r.stdout + r.stderr)
zpath = os.path.join(T.tmp, "fn", "function.zip")
r = build(fn, "--output", f"type=function,dest={zpath}")
if T.check("function: builds a zip with no start script", r.returncode == 0 and os.path.exists(zpath),
           r.stderr[-3000:]):
    names = zipfile.ZipFile(zpath).namelist()
    T.check("the zip holds the handler and its dependency", "lib/handler.js" in names
            and "node_modules/ms/package.json" in names, str(names[:20]))
    meta = json.load(open(os.path.join(T.tmp, "fn", "function.json")))
    T.check("function.json: handler lib/handler.handler, runtime nodejs22.x",
            meta.get("handler") == "lib/handler.handler" and meta.get("runtime") == "nodejs22.x", str(meta))
    x = os.path.join(T.tmp, "fn-x")
    zipfile.ZipFile(zpath).extractall(x)
    run = subprocess.run(["node", "-e", "require('./lib/handler.js').handler().then(r => console.log(r.body))"],
                         cwd=x, capture_output=True, text=True)
    T.check("the unzipped handler runs with its dependency", "in 1m on" in run.stdout, run.stdout + run.stderr)
T.done()
