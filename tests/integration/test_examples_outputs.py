#!/usr/bin/env python3
"""End to end for the non-image outputs: static sites (examples/static-html,
examples/vite-static, examples/next-static (a Next.js static export) →
type=local), a Lambda function (examples/lambda-node → type=function zip with
production deps only + function.json, then invoked with node), the default
./kiln-out/ output, and a failing build (exit code, the step's last log lines,
nothing written)."""
import json
import os
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import ENV, ROOT, build, example, need_node_images  # noqa: E402
from kilntest import KILN, T  # noqa: E402

need_node_images()


def read(p):
    try:
        return open(p).read()
    except OSError as e:
        return f"<{e}>"


# static-html: no install, no build; the site is the repository.
out = os.path.join(T.tmp, "site-html")
r = build(example("static-html"), "--output", f"type=local,dest={out}")
T.check("static-html: builds to a local directory", r.returncode == 0, r.stderr[-3000:])
T.check("static-html: the site files are there", "hello from kiln static-html" in read(f"{out}/index.html")
        and os.path.exists(f"{out}/css/site.css"), str(os.listdir(out) if os.path.isdir(out) else out))

# vite-static: npm ci + vite build; only dist/ is the output.
out = os.path.join(T.tmp, "site-vite")
r = build(example("vite-static"), "--output", f"type=local,dest={out}")
T.check("vite-static: builds (npm ci, vite build)", r.returncode == 0, r.stderr[-3000:])
files = sorted(os.listdir(out)) if os.path.isdir(out) else []
T.check("vite-static: the output is the built dist/ (index.html + hashed assets)",
        "hello from kiln vite-static" in read(f"{out}/index.html") and "assets" in files
        and any(f.endswith(".js") for f in os.listdir(f"{out}/assets")), str(files))
T.check("vite-static: no sources or node_modules in the site", "node_modules" not in files and "src" not in files
        and "package.json" not in files, str(files))

# next-static: next.config.js sets output: 'export', so the site is next build's out/.
out = os.path.join(T.tmp, "site-next")
r = build(example("next-static"), "--output", f"type=local,dest={out}")
T.check("next-static: builds (npm ci, next build with output: 'export')", r.returncode == 0, r.stderr[-3000:])
files = sorted(os.listdir(out)) if os.path.isdir(out) else []
T.check("next-static: the output is the export (index.html, about.html, _next/static)",
        "hello from kiln next-static" in read(f"{out}/index.html") and "about kiln next-static" in
        read(f"{out}/about.html") and os.path.isdir(f"{out}/_next/static"), str(files))
T.check("next-static: no sources, .next or node_modules in the site", not {"node_modules", ".next", "app",
        "package.json", "next.config.js"} & set(files), str(files))
T.check("next-static: next telemetry is disabled in the build", "anonymous telemetry" not in r.stderr,
        r.stderr[-3000:])

# An image and a function package are different targets: asking one build for both is refused
# before anything runs (a zip of the run image's files would be wrong).
mixed_img = os.path.join(T.tmp, "mixed-img")
mixed_zip = os.path.join(T.tmp, "mixed", "function.zip")
r = build(example("lambda-node"), "--output", f"type=oci,dest={mixed_img}", "--output",
          f"type=function,dest={mixed_zip}")
T.check("lambda-node: image + function outputs in one build are refused naming both kinds",
        r.returncode != 0 and "different kinds (image, function package)" in r.stderr
        and not os.path.exists(mixed_img) and not os.path.exists(mixed_zip), r.stderr[-2000:])

# lambda-node: a zip with the code and production deps, function.json beside it.
fdir = os.path.join(T.tmp, "fn")
zpath = os.path.join(fdir, "function.zip")
r = build(example("lambda-node"), "--output", f"type=function,dest={zpath}")
T.check("lambda-node: builds a function zip", r.returncode == 0 and os.path.exists(zpath), r.stderr[-3000:])
if os.path.exists(zpath):
    names = zipfile.ZipFile(zpath).namelist()
    T.check("the zip holds the handler and its production deps", "index.js" in names
            and "node_modules/ms/package.json" in names and "package.json" in names, str(names[:20]))
    T.check("the zip holds no devDependency (semver: used by the build step only)",
            not any(n.startswith("node_modules/semver") or n == "node_modules/.bin/semver" for n in names),
            str(names))
    T.check("the build step ran with its dev deps (build-info.json is in the zip)", "build-info.json" in names,
            str(names))
    meta = json.loads(read(os.path.join(fdir, "function.json")) or "{}")
    T.check("function.json names the handler and runtime", meta.get("handler") == "index.handler"
            and meta.get("runtime") == "nodejs24.x" and meta.get("zip") == "function.zip", str(meta))
    x = os.path.join(T.tmp, "fn-x")
    zipfile.ZipFile(zpath).extractall(x)
    run = subprocess.run(["node", "-e", "require('./index.js').handler({timestamp: Date.now() - 120000})"
                          ".then(r => console.log(r.body))"], cwd=x, capture_output=True, text=True)
    T.check("the unzipped handler runs and uses its dependency", '"ago":"2m"' in run.stdout, run.stdout + run.stderr)
    T.check("the handler reports the Node of the build step (24: engines >=18 narrowed to the lines "
            "Lambda runs)", '"builtWith":"v24.' in run.stdout,
            run.stdout + run.stderr)

# No --output: the plan's natural output under ./kiln-out/.
cwd = os.path.join(T.tmp, "cwd")
os.makedirs(cwd)
e = dict(os.environ, **ENV)
r = subprocess.run([KILN, "build", "--root", ROOT, example("static-html")], cwd=cwd, env=e, capture_output=True,
                   text=True, timeout=900)
T.check("without --output the site goes to ./kiln-out/site", r.returncode == 0
        and os.path.exists(os.path.join(cwd, "kiln-out", "site", "index.html")), r.stderr[-2000:])

# A failing build: exit code, the step's last log lines, nothing written.
bad = os.path.join(T.tmp, "failing")
os.makedirs(bad)
with open(os.path.join(bad, "package.json"), "w") as f:
    json.dump({"name": "failing", "scripts": {"build": "echo compiling-step-output-marker; exit 3"}}, f)
with open(os.path.join(bad, "kiln.json"), "w") as f:
    json.dump({"outputDir": "dist"}, f)
out = os.path.join(T.tmp, "never")
r = build(bad, "--output", f"type=local,dest={out}")
T.check("a failing build step fails the build", r.returncode != 0, r.stderr[-2000:])
T.check("the error shows the step's last log lines and its exit status, in the project's terms",
        "compiling-step-output-marker" in r.stderr.split("ERROR: ")[-1]
        and "the build step failed: `npm run build` exited with status 3" in r.stderr, r.stderr[-2000:])
T.check("nothing is written for a failed build", not os.path.exists(out))
T.done()
