#!/usr/bin/env python3
"""Errors in the user's terms. A failing `npm run build` of an auto build
(tests/fixtures/node-fail-build: package.json scripts.build runs build.js, which
prints 30 lines and an error, then exits 3) reports the user's command, the
package.json script it runs, the exit status and the last lines of its output,
exactly once, and no line of the generated Dockerfile; a failing RUN of a
user's Dockerfile is reported once too. `kiln plan` gives the reason of each
choice (JSON `why`, and `--explain` in words)."""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)
FIX = os.path.join(SRC, "tests", "fixtures", "node-fail-build")
IMAGES = os.environ.get("KILN_IMAGES_DIR", "/var/cache/kiln/images")
ENV = {"KILN_IMAGE_PREFIX": "oci:" + IMAGES, "KILN_IMAGES_DIR": IMAGES}

# --- kiln plan: every choice with its reason ---
r = kiln("plan", FIX, env=ENV)
plan = json.loads(r.stdout) if r.returncode == 0 else {}
why = plan.get("why", {})
T.check("kiln plan: succeeds with a why object", r.returncode == 0 and isinstance(why, dict), r.stderr)
T.check("kiln plan: the build command's reason is package.json's script, with its text",
        why.get("build") == "package.json scripts.build: node build.js", why)
T.check("kiln plan: the start command's reason is package.json's start script",
        why.get("start") == "package.json scripts.start: node server.js", why)
T.check("kiln plan: the package manager's reason is the lockfile", why.get("packageManager") ==
        "package-lock.json is there", why)
T.check("kiln plan: provider, version, install, output and port have a reason too",
        all(why.get(k) for k in ("provider", "version", "install", "output", "port")), why)
r = kiln("plan", "--explain", FIX, env=ENV)
T.check("kiln plan --explain: each choice in words with its reason",
        r.returncode == 0 and "build command    npm run build\n" in r.stdout
        and "why: package.json scripts.build: node build.js" in r.stdout
        and "why: package-lock.json is there" in r.stdout, r.stdout + r.stderr)

# --- a failing auto build step: in the user's terms, once ---
if os.path.isdir(os.path.join(IMAGES, "node-build")) and os.path.isdir(os.path.join(IMAGES, "node-run")):
    src = os.path.join(T.tmp, "fail")
    shutil.copytree(FIX, src)
    out = os.path.join(T.tmp, "fail-out")
    r = kiln("build", "--root", ROOT, "--output", f"type=oci,dest={out}", src, env=ENV, timeout=1500)
    err = r.stderr
    head = "the build step failed: `npm run build` exited with status 3"
    T.check("failing npm run build: the build fails (exit 1) and writes nothing",
            r.returncode == 1 and not os.path.exists(out), err[-3000:])
    T.check("failing npm run build: the user's command and its status are reported exactly once",
            err.count(head) == 1, err[-3000:])
    T.check("failing npm run build: the package.json script it runs is named, once",
            err.count("`npm run build` runs package.json scripts.build: node build.js") == 1, err[-3000:])
    step = re.search(r"^#(\d+) Error: FAILMARKER cannot resolve \./missing-module$", err, re.M)
    T.check("failing npm run build: its output printed once, as it ran; the error points to it",
            err.count("Error: FAILMARKER cannot resolve ./missing-module") == 1 and step
            and "compiling module 30 of 30" not in err.split(head)[-1]
            and f"its output is above (#{step.group(1)})" in err.split(head)[-1], err[-3000:])
    T.check("failing npm run build: no generated Dockerfile line or engine wording in the error",
            "Dockerfile:" not in err and "did not complete successfully" not in err, err[-3000:])
    T.check("failing npm run build: the step is marked failed where it ran (#N ERROR)",
            any(line.startswith("#") and line.endswith(" ERROR") for line in err.splitlines()), err[-3000:])
else:
    T.skip("failing auto build step", f"kiln's node images are not built ({IMAGES}: images/build.sh)")

# --- a failing RUN of a Dockerfile: the engine's message, once ---
base = make_base(ROOT)
ctx = os.path.join(T.tmp, "df")
os.makedirs(ctx)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(f"FROM {base}\nRUN echo first-line && printf 'LAST%sMARK\\n' LINE && exit 7\n")
r = kiln("build", "--root", ROOT, "--output", f"type=oci,dest={os.path.join(T.tmp, 'df-out')}", ctx)
T.check("failing Dockerfile RUN: exit code and line reported exactly once",
        r.returncode == 1 and r.stderr.count("did not complete successfully: exit code: 7") == 1
        and r.stderr.count("Dockerfile:2:") == 1, r.stderr[-2000:])
T.check("failing Dockerfile RUN: its last output line printed once, in the log as it ran",
        r.stderr.count("LASTLINEMARK") == 1 and "LASTLINEMARK" not in r.stderr.split("ERROR")[-1],
        r.stderr[-2000:])

T.done()
