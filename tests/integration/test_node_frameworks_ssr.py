#!/usr/bin/env python3
"""Nuxt, SvelteKit and Astro built for real (their packages from the npm registry, the
lockfiles in tests/fixtures/frameworks), one build per framework and output shared by its
checks:

- nuxt (Nuxt 4): the image holds .output alone (Nitro bundles what it needs) and
  .output/server/index.mjs renders the page and its server API over loopback; a function
  output with Nitro's aws-lambda preset: function.json's handler (index.handler) is what
  the zip's index.mjs exports, its runtime the major of the Node that built it (.nvmrc
  24: nodejs24.x), and the handler answers an API Gateway event;
- sveltekit-node (SvelteKit 3, @sveltejs/adapter-node, options in vite.config.js): the
  image holds build/, package.json and the production dependency (ms) only and `node
  build` answers with HOST=0.0.0.0;
- sveltekit-static (adapter-static): -o type=local writes the prerendered site; as an
  image busybox httpd of kiln's static-run image serves it (no Node, no node_modules);
- astro-node (Astro 7, @astrojs/node standalone): dist/, package.json and the
  production deps; astro-static: the dist/ site.
Every image and site holds no source, lockfile, dev dependency or .git (each copy has a
.git with a marker), and the build reports the image's size. Output dirs pointing outside
the app dir: test_hostile_node_frameworks."""
import json
import os
import re
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import (ENV, ROOT, build, ensure_images, fixture, layout_files,  # noqa: E402
                          need_node_images, run_http)
from kilntest import T, kiln  # noqa: E402
from node_fw_lib import invoke, toolchain_node  # noqa: E402

need_node_images()
ok, log = ensure_images("static-run")
if not T.check("kiln's static-run image is built (images/build.sh)", ok, log):
    T.done()


def copy(name):
    """A private copy of the fixture with a .git holding a marker (must never be shipped)."""
    src = fixture("frameworks", name)
    os.makedirs(os.path.join(src, ".git"))
    open(os.path.join(src, ".git", "kiln-git-marker"), "w").write("history\n")
    return src


def explain(src, lines, *args):
    r = kiln("plan", "--explain", *args, src, env=ENV)
    T.check(f"{os.path.basename(src)}: kiln plan --explain {' '.join(args)}succeeds".replace("  ", " "),
            r.returncode == 0, r.stderr)
    for line in lines:
        T.check(f"{os.path.basename(src)}: the explanation says {line!r}", line in r.stdout, r.stdout)
    return r.stdout


def plan_json(src, *args):
    r = kiln("plan", *args, src, env=ENV)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr}


def image_config(layout):
    blob = lambda dg: os.path.join(layout, "blobs", *dg.split(":"))  # noqa: E731
    idx = json.load(open(os.path.join(layout, "index.json")))
    man = json.load(open(blob(idx["manifests"][0]["digest"])))
    return json.load(open(blob(man["config"]["digest"])))["config"]


def answer(layout, path="/"):
    try:
        return run_http(layout, "latest", path)
    except Exception as e:  # noqa: BLE001
        return f"<{e}>"


def build_image(name, src):
    """Builds src into an OCI layout tagged latest; returns (layout, files) or (None, None)."""
    out = os.path.join(T.tmp, "oci-" + name)
    r = build(src, "-t", f"{name}:latest", "--output", f"type=oci,dest={out}")
    if not T.check(f"{name}: kiln build makes the image", r.returncode == 0, r.stderr[-4000:]):
        return None, None
    m = re.search(r"image size: ([0-9.]+ [kMG]B) compressed, ([0-9.]+ [kMG]B) uncompressed", r.stderr)
    T.check(f"{name}: the build reports the image size", m is not None, r.stderr[-1500:])
    if m:
        print(f"# {name} image: {m.group(1)} compressed, {m.group(2)} uncompressed", flush=True)
    return out, layout_files(out)


def top(files, depth=3):
    return str(sorted(f for f in files if f.startswith("app/") and f.count("/") <= depth))[:3000]


# (Astro's own production dependencies include vite: each case names the dev deps it denies)
SHIPS_NOTHING_ELSE = ("app/.git", "app/package-lock.json", "app/src", "app/node_modules/.cache")


def shipped_only(name, files, want, deny):
    T.check(f"{name}: the image holds {sorted(want)}", set(want) <= files, top(files))
    bad = sorted(f for f in files if any(f == d or f.startswith(d + "/") for d in (*SHIPS_NOTHING_ELSE, *deny)))
    T.check(f"{name}: no source, lockfile, .git or dev dependency in the image ({sorted(deny)})", not bad,
            str(bad[:20]))


def write_site(name, src, want):
    """-o type=local: the directory holds the built site (`want` at its top, the page's
    text in index.html) and nothing of the source."""
    site = os.path.join(T.tmp, "site-" + name)
    r = build(src, "--output", f"type=local,dest={site}")
    if T.check(f"{name}: kiln build -o type=local writes the site", r.returncode == 0, r.stderr[-4000:]):
        have = set(os.listdir(site))
        T.check(f"{name}: the site is {sorted(want)} with the page, nothing of the source",
                f"hello from kiln {name}" in open(os.path.join(site, "index.html")).read() and want <= have
                and not ({".git", "node_modules", "src", "package.json", "package-lock.json"} & have), str(have))


# --- Nuxt: .output alone, index.mjs on $PORT
nuxt = copy("nuxt")
explain(nuxt, ["start command    node .output/server/index.mjs",
               "why: nuxt build writes a Nitro server to .output/ with the node_modules it needs: the image "
               "holds .output only and runs .output/server/index.mjs",
               'why: .nvmrc "24": the highest Node release that satisfies 24'])
T.check("nuxt: the plan's run files are .output", plan_json(nuxt).get("runFiles") == [".output:.output"])
out, files = build_image("nuxt", nuxt)
if out:
    shipped_only("nuxt", files, {"app/.output/server/index.mjs", "app/.output/public", "opt/node/bin/node"},
                 ("app/node_modules", "app/app", "app/server", "app/nuxt.config.ts", "app/package.json", "app/.nuxt"))
    body = answer(out)
    T.check("nuxt: the server renders the page with its API's answer (Node 24 of .nvmrc)",
            "hello from kiln nuxt (node v24." in body, body[-2000:])
    api = answer(out, "/api/hello")
    T.check("nuxt: the server API answers", '"builtWith":"v24.' in api, api)

# --- Nuxt as a function: Nitro's aws-lambda preset
r = kiln("plan", "--explain", "-o", "type=function", nuxt, env=ENV)
T.check("nuxt function: the plan names index.handler in .output/server and nodejs24.x",
        r.returncode == 0 and "handler          index.handler" in r.stdout
        and "why: nuxt's aws-lambda preset (NITRO_PRESET=aws-lambda for this build): .output/server/index.mjs "
            "exports handler" in r.stdout
        and "runtime          nodejs24.x" in r.stdout, r.stdout + r.stderr)
zpath = os.path.join(T.tmp, "fn-nuxt", "function.zip")
r = build(nuxt, "--output", f"type=function,dest={zpath}")
if T.check("nuxt function: kiln build writes the zip", r.returncode == 0 and os.path.exists(zpath), r.stderr[-4000:]):
    meta = json.load(open(os.path.join(T.tmp, "fn-nuxt", "function.json")))
    names = zipfile.ZipFile(zpath).namelist()
    T.check("nuxt function: function.json's handler file is in the zip (index.mjs) with Nitro's bundled deps",
            meta.get("handler", "").rpartition(".")[0] + ".mjs" in names and any(n.startswith("node_modules/vue/") for n in names)
            and not any(n.startswith(("app/", ".git", "node_modules/nuxt/", "node_modules/vite/")) for n in names),
            f"{meta} {names[:30]}")
    print(f"# nuxt function.zip: {os.path.getsize(zpath) / 1e6:.1f} MB, {len(names)} entries", flush=True)
    x = os.path.join(T.tmp, "fn-nuxt-x")
    zipfile.ZipFile(zpath).extractall(x)
    # the Node that built it: the toolchain of the runtime's major in the kiln root
    node = toolchain_node(ROOT, meta.get("runtime", "nodejsX.x")[6:-2])
    T.check("nuxt function: the toolchain of function.json's runtime major is in the kiln root", node, str(meta))
    res, log = invoke(node, x, meta.get("handler", ""), "/api/hello") if node else ({}, "")
    try:
        body = json.loads(res.get("body", "{}"))
    except ValueError:
        body = {}
    T.check("nuxt function: the handler answers an API Gateway event (statusCode 200)",
            res.get("statusCode") == 200 and "node" in body, log[-2000:])
    T.check("nuxt function: function.json's runtime is the major of the Node that built it",
            meta.get("runtime") == "nodejs24.x" and str(body.get("builtWith", "")).startswith("v24."),
            f"{meta} {body}")

# --- SvelteKit with adapter-node: build/, package.json and the production deps
sk = copy("sveltekit-node")
explain(sk, ["start command    node build",
             "why: package.json depends on @sveltejs/adapter-node: vite build writes a server to build/; the image "
             "holds it, package.json and the production dependencies it imports",
             "why: adapter-node's server listens on $PORT (and $HOST=0.0.0.0)"])
p = plan_json(sk)
T.check("sveltekit-node: run files build/ and package.json with the production deps",
        p.get("runFiles") == ["build", "package.json"] and p.get("runDeps") is True, json.dumps(p)[:2000])
out, files = build_image("sveltekit-node", sk)
if out:
    shipped_only("sveltekit-node", files,
                 {"app/build/index.js", "app/build/client", "app/package.json", "app/node_modules/ms/index.js"},
                 ("app/.svelte-kit", "app/vite.config.js", "app/node_modules/@sveltejs/kit",
                  "app/node_modules/svelte", "app/node_modules/rolldown", "app/node_modules/vite"))
    env = image_config(out).get("Env", [])
    T.check("sveltekit-node: the image sets HOST=0.0.0.0 and PORT=8080", {"HOST=0.0.0.0", "PORT=8080"} <= set(env),
            str(env))
    body = answer(out)
    T.check("sveltekit-node: node build renders the page with its server load (ms from node_modules, node v26)",
            re.search(r"hello from kiln sveltekit-node \(node v26\.[0-9.]+, in 1m\)", body) is not None, body[-2000:])

# --- SvelteKit with adapter-static: a site, and an image of the site alone
ss = copy("sveltekit-static")
explain(ss, ["output           static site (build/)",
             "why: as an image, busybox httpd (in kiln's static-run image) serves the site, build/ alone"])
write_site("sveltekit-static", ss, {"index.html", "_app"})
out, files = build_image("sveltekit-static", ss)
if out:
    shipped_only("sveltekit-static", files, {"app/index.html", "app/_app"},
                 ("app/node_modules", "app/build", "app/package.json", "opt/node"))
    T.check("sveltekit-static: the image is the site and a static busybox alone (no libc, apt or Node)",
            "bin/busybox" in files and not any(f.startswith(("usr/", "lib", "opt/", "var/")) for f in files),
            str(sorted(f for f in files if not f.startswith("app/"))))
    T.check("sveltekit-static: the image runs busybox httpd", image_config(out).get("Cmd", [])[-1:]
            == ["busybox httpd -f -p $PORT -h /app"], str(image_config(out).get("Cmd")))
    body = answer(out)
    T.check("sveltekit-static: busybox httpd serves the site", "hello from kiln sveltekit-static" in body, body[-2000:])

# --- Astro with @astrojs/node (standalone): dist/, package.json and the production deps
an = copy("astro-node")
explain(an, ["start command    node dist/server/entry.mjs",
             "why: the @astrojs/node server listens on $PORT (and $HOST=0.0.0.0)"])
out, files = build_image("astro-node", an)
if out:
    shipped_only("astro-node", files,
                 {"app/dist/server/entry.mjs", "app/dist/client", "app/package.json",
                  "app/node_modules/@astrojs/node/package.json"},
                 ("app/astro.config.mjs", "app/.astro"))
    body = answer(out)
    T.check("astro-node: the standalone server renders the page on demand (node v26)",
            "hello from kiln astro-node (node v26." in body, body[-2000:])

# --- Astro static: dist/
ast = copy("astro-static")
explain(ast, ["output           static site (dist/)",
              "why: no server adapter (@astrojs/node): astro build writes a static site to dist/"])
write_site("astro-static", ast, {"index.html"})

T.done()
