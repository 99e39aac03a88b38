#!/usr/bin/env python3
"""End to end: monorepos (tests/fixtures/monorepo: npm and pnpm workspaces with apps/web
depending on the workspace package packages/lib, and an apps/docs whose build fails).
`kiln build --subdir apps/web ROOT` takes the repository root as the context, installs
there with the root lockfile, builds lib then web (never docs), and the image answers
over loopback using the built lib and its dependency ms; the image holds no apps/docs.
The server API's source.subdir goes through the same path (job/auto)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import ENV, build, fixture, need_node_images, plan_of, run_http  # noqa: E402
from kilntest import T, kiln  # noqa: E402

need_node_images()


def source(name, copy=""):
    return fixture("monorepo", name, copy)


def image_files(layout, tag="latest"):
    """The paths under /app of the image's root filesystem."""
    bundle = os.path.join(T.tmp, "unpack-" + os.path.basename(layout))
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", bundle], check=True, capture_output=True)
    app = os.path.join(bundle, "rootfs", "app")
    out = []
    for d, dirs, files in os.walk(app):
        for f in dirs + files:
            out.append(os.path.relpath(os.path.join(d, f), app))
    return out


CASES = [
    # fixture, package manager, lockfile, build command
    ("npm", "npm", "package-lock.json", "npm run build -w packages/lib && npm run build -w apps/web"),
    ("pnpm", "pnpm", "pnpm-lock.yaml", "pnpm --filter @mono/web... run build"),
]

for name, pm, lock, buildcmd in CASES:
    src = source(name)
    p = plan_of(src, "--subdir", "apps/web")
    cmds = p.get("commands", {})
    man = p.get("manifests", [])
    T.check(f"{name}: the plan installs at the root with {pm} and the root's {lock}",
            p.get("packageManager") == pm and lock in man and "apps/web/package.json" in man
            and "packages/lib/package.json" in man, json.dumps(p))
    T.check(f"{name}: the plan builds lib and web only, then leaves apps/docs out",
            cmds.get("build") == buildcmd + " && rm -rf apps/docs"
            and cmds.get("start") == "cd apps/web && npm start", json.dumps(cmds))

    out = os.path.join(T.tmp, "oci-" + name)
    r = build(src, "--subdir", "apps/web", "-t", f"mono-{name}:latest", "--output", f"type=oci,dest={out}")
    if not T.check(f"{name}: kiln build --subdir apps/web builds from the repository root", r.returncode == 0,
                   r.stderr[-3000:]):
        continue
    T.check(f"{name}: the docs app's build never ran", "process.exit(3)" not in r.stderr, r.stderr[-2000:])
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check(f"{name}: the image answers using the built workspace lib and the root-installed ms",
            body.strip() == "web lib 2m lib-built web-built", body)
    files = image_files(out)
    T.check(f"{name}: the image holds apps/web and packages/lib but not apps/docs",
            "apps/web/index.js" in files and "packages/lib/index.js" in files
            and not any(f.startswith("apps/docs") for f in files), str(sorted(files)[:60]))

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
T.done()
