#!/usr/bin/env python3
"""Detection table: every fixture tree under tests/fixtures/detect/<case>/tree
gives the expected plan (a subset match of `kiln plan` JSON) or the expected
error; plus --subdir, symlink containment and the rendered Dockerfile."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import SRC, T, kiln  # noqa: E402

FIX = os.path.join(SRC, "tests", "fixtures", "detect")
CLEAN_ENV = {k: "" for k in ("KILN_NODE_VERSION", "KILN_PYTHON_VERSION", "KILN_IMAGE_PREFIX", "KILN_PROVIDER",
                              "KILN_IMAGES_DIR", "KILN_INSTALL_CMD", "KILN_BUILD_CMD", "KILN_START_CMD", "KILN_OUTPUTS",
                              "KILN_OUTPUT_DIR", "KILN_PORT", "KILN_BUILD_IMAGE", "KILN_RUN_IMAGE")}


def subset(want, got, path="$"):
    """Returns None when `want` is contained in `got`, else where it differs."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: expected an object, got {got!r}"
        for k, v in want.items():
            if k not in got:
                return f"{path}.{k}: missing (have {sorted(got)})"
            d = subset(v, got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{path}: expected {want!r}, got {got!r}"
        for i, (w, g) in enumerate(zip(want, got)):
            d = subset(w, g, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if want == got else f"{path}: expected {want!r}, got {got!r}"


def plan(tree, *args, env=None):
    e = dict(CLEAN_ENV)
    e.update(env or {})
    return kiln("plan", *args, tree, env=e)


cases = sorted(os.listdir(FIX))
T.check("the detection table has at least 40 cases", len(cases) >= 40, str(len(cases)))
for name in cases:
    meta = json.load(open(os.path.join(FIX, name, "case.json")))
    r = plan(os.path.join(FIX, name, "tree"), *meta.get("args", []), env=meta.get("env"))
    if "error" in meta:
        T.check(f"{name}: fails with \"{meta['error']}\"",
                r.returncode == 1 and meta["error"] in r.stderr and r.stdout == "",
                f"rc={r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}")
        continue
    if not T.check(f"{name}: kiln plan succeeds", r.returncode == 0, r.stderr):
        continue
    try:
        got = json.loads(r.stdout)
    except ValueError as e:
        T.check(f"{name}: plan is JSON", False, f"{e}\n{r.stdout}")
        continue
    diff = subset(meta["expect"], got)
    T.check(f"{name}: plan matches", diff is None, f"{diff}\n{json.dumps(got, indent=1)}")

# The no-match error lists what it saw.
r = plan(os.path.join(FIX, "nothing-to-build", "tree"))
T.check("no-match error lists the files seen", "README.md" in r.stderr and "LICENSE" in r.stderr
        and "kiln.json" in r.stderr, r.stderr)

# A symlink pointing outside the tree is resolved inside it (never read outside).
t = os.path.join(T.tmp, "escape")
os.makedirs(t)
os.symlink("/etc/passwd", os.path.join(t, "package.json"))
os.symlink("../../../../../../etc/hostname", os.path.join(t, "index.html"))
r = plan(t)
T.check("symlinks out of the tree are not followed", r.returncode == 1 and "cannot detect" in r.stderr
        and "root:" not in r.stderr, r.stderr)

# --subdir builds a directory of a monorepo; it may not leave the tree.
mono = os.path.join(T.tmp, "mono")
shutil.copytree(os.path.join(FIX, "go-basic", "tree"), os.path.join(mono, "services", "api"))
shutil.copytree(os.path.join(FIX, "static-public", "tree"), os.path.join(mono, "web"))
r = plan(mono, "--subdir", "services/api")
T.check("--subdir picks the service's provider", r.returncode == 0 and json.loads(r.stdout)["provider"] == "go",
        r.stdout + r.stderr)
r = plan(mono, "--subdir", "../etc")
T.check("--subdir with .. is refused", r.returncode == 1 and "--subdir" in r.stderr, r.stderr)
r = plan(os.path.join(T.tmp, "does-not-exist"))
T.check("a missing source directory is a clear error", r.returncode == 1 and "does-not-exist" in r.stderr, r.stderr)
r = kiln("plan")
T.check("kiln plan without a source is a usage error", r.returncode == 2, r.stderr)

# The Dockerfile rendered from a plan: manifests first, cached install, deps and app layers.
r = plan(os.path.join(FIX, "node-npm-lockfile", "tree"), "--dockerfile")
df = r.stdout
T.check("--dockerfile renders", r.returncode == 0 and df.startswith("# kiln auto-build"), r.stderr + df)
lines = df.splitlines()
idx = {k: next((i for i, l in enumerate(lines) if l.startswith(k)), -1)
       for k in ("FROM oci:/var/cache/kiln/images/node-build AS deps", "COPY package.json package-lock.json ./",
                 "RUN --mount=type=cache,id=demo-npm,target=/root/.npm", "FROM deps AS build", "COPY . .",
                 "FROM deps AS prod-deps", "FROM oci:/var/cache/kiln/images/node-run AS run",
                 "COPY --from=node /bin/node /opt/node/bin/node",
                 "ENV PATH=\"/app/node_modules/.bin:/opt/node/bin:",
                 "COPY --from=prod-deps /app/node_modules /app/node_modules",
                 "COPY --from=build /app/. /app",
                 "EXPOSE 8080", "CMD [\"/bin/sh\",\"-c\",\"node server.js\"]")}
T.check("Dockerfile has every expected line", all(v >= 0 for v in idx.values()), json.dumps(idx) + "\n" + df)
order = list(idx.values())
T.check("Dockerfile lines are in layer order (manifests, install, build stage, production deps, run stage, "
        "node binary only, node_modules/.bin on PATH, deps, app, CMD: the start script itself, no npm)",
        order == sorted(order), df)
r = plan(os.path.join(FIX, "node-vite", "tree"), "--dockerfile")
T.check("static plan renders a 'site' stage with the dist dir",
        "FROM scratch AS site\nCOPY --from=build /app/dist /" in r.stdout and "AS run" not in r.stdout, r.stdout)
r = plan(os.path.join(FIX, "kiln-json-function", "tree"), "--dockerfile")
fn = r.stdout[r.stdout.find("FROM deps AS prod-deps"):]
T.check("function plan: production deps are pruned in a prod-deps stage and only they reach the zip",
        r.returncode == 0 and fn.startswith("FROM deps AS prod-deps\nRUN --mount=type=cache,id=thumbnailer-npm")
        and "npm prune --omit=dev" in fn and "FROM scratch AS function" in fn
        and "COPY --from=prod-deps /app/node_modules /node_modules" in fn and "COPY --from=deps" not in fn,
        r.stdout + r.stderr)
T.check("function plan: the build stage still runs on the full deps stage", "FROM deps AS build" in r.stdout
        and r.stdout.find("FROM deps AS build") < r.stdout.find("FROM deps AS prod-deps"), r.stdout)
r = plan(os.path.join(FIX, "dockerfile-first", "tree"), "--dockerfile")
T.check("a Dockerfile source is not rendered", r.returncode == 1 and "Dockerfile builder" in r.stderr, r.stderr)
bad = os.path.join(T.tmp, "inject")
os.makedirs(bad)
open(os.path.join(bad, "index.html"), "w").write("x")
open(os.path.join(bad, "kiln.json"), "w").write(json.dumps({"start": "x", "outputs": "image",
                                                            "images": {"run": "evil\nRUN rm -rf /"}}))
r = plan(bad, "--dockerfile")
T.check("an image name with a newline cannot inject an instruction", r.returncode == 1 and "run image" in r.stderr,
        r.stdout + r.stderr)
T.done()
