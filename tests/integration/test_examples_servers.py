#!/usr/bin/env python3
"""End to end: examples/go-http, python-http, node-express and next-app (a
Next.js server: `next start`) are auto-detected,
built by `kiln build` on kiln's images into OCI layouts, run with runc, and
answer over loopback. A one-file change rebuilds without rerunning the install
step and keeps the dependencies layer."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import build, ensure_images, example, manifest_layers, run_http  # noqa: E402
from kilntest import T  # noqa: E402

ok, log = ensure_images("go-build", "minimal-run", "python-build", "python-run", "node-build", "node-run")
if not T.check("kiln's build and run images are built (images/build.sh)", ok, log):
    T.done()


def serve(name, expect, path="/"):
    out = os.path.join(T.tmp, "oci-" + name)
    r = build(example(name), "-t", f"{name}:latest", "--output", f"type=oci,dest={out}")
    if not T.check(f"{name}: kiln build auto-detects and builds", r.returncode == 0, r.stderr[-3000:]):
        return None, r
    try:
        body = run_http(out, "latest", path)
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check(f"{name}: the image answers over loopback", expect in body, body)
    return out, r


serve("go-http", "hello from kiln go-http (go1.27.3")
serve("python-http", "hello from kiln python-http, kiln", "/kiln")
out1, r1 = serve("node-express", "hello from kiln node-express (node v26")
T.check("node-express: the plan's provider and steps are in the log", "auto-build: provider node" in r1.stderr
        and "npm ci" in r1.stderr, r1.stderr[-2000:])

# next-app: no output: 'export' in next.config.js, so an image running `next start`;
# the page is rendered per request by the server.
out_next, r_next = serve("next-app", "hello from kiln next-app (node v26")
T.check("next-app: the plan is a server image (target run)", "auto-build: provider node, target run" in r_next.stderr,
        r_next.stderr[-2000:])

# Rebuild after changing one app source file.
src = example("node-express")
with open(os.path.join(src, "lib", "greeting.js"), "w") as f:
    f.write("exports.greeting = () => `hello again from kiln node-express\\n`;\n")
out2 = os.path.join(T.tmp, "oci-node-express-2")
r2 = build(src, "-t", "node-express:latest", "--output", f"type=oci,dest={out2}")
T.check("node-express: the rebuild succeeds", r2.returncode == 0, r2.stderr[-3000:])
if r2.returncode == 0 and out1:
    l1, l2 = manifest_layers(out1), manifest_layers(out2)
    T.check("the rebuild has the same number of layers", len(l1) == len(l2), f"{l1}\n{l2}")
    T.check("only the app layer changed (base + deps layers reused)", l1[:-1] == l2[:-1] and l1[-1] != l2[-1],
            f"{l1}\n{l2}")
    install = [ln for ln in r2.stderr.splitlines() if "npm ci" in ln and "RUN" in ln]
    idx = r2.stderr.find(install[0]) if install else -1
    T.check("the install step is not rerun (cached)", idx >= 0 and "CACHED" in r2.stderr[idx:idx + len(install[0]) + 40],
            r2.stderr[-3000:])
    try:
        body = run_http(out2)
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("the rebuilt image serves the change", "hello again" in body, body)
T.done()
