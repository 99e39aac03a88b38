#!/usr/bin/env python3
"""Rust workspaces built for real with crates.io's toolchain image (tests/fixtures/rust-workspace:
three members, a [[bin]] with its own name and path, a library both binaries use): kiln.json
rust.bin picks the binary (KILN_RUST_BIN wins), the image holds that binary alone and it answers
over loopback; rust-toolchain.toml's pin: the build image's own release is honoured, an older one
is built with the image's rustc and the plan and the build step say so naming what would provide
it, a build image of the user's (kiln.json images.build) is checked by the build step, which stops
naming both versions. One cold build (~1 min), the others reuse the target cache mount."""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import ENV, IMAGES, answer, build, ensure_images, layer_files  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

src = os.path.join(T.tmp, "ws")
shutil.copytree(os.path.join(SRC, "tests", "fixtures", "rust-workspace"), src)
RUSTC = open(os.path.join(SRC, "images", "rust-build", "rustc-version")).read().strip()
KJSON = os.path.join(src, "kiln.json")
TOOLCHAIN = os.path.join(src, "rust-toolchain.toml")


def plan(env=None):
    e = dict(ENV)
    e.update(env or {})
    r = kiln("plan", src, env=e)
    return (json.loads(r.stdout) if r.returncode == 0 else None), r


notice = (f"rust-toolchain.toml pins 1.80.0: built with rustc {RUSTC} instead (the pinned toolchain cannot be "
          "downloaded by builds); a build image with that toolchain (kiln.json images.build, e.g. one FROM "
          "rust:1.80.0) or a Dockerfile would provide it")
p, r = plan()
T.check("the plan builds the [[bin]] kiln.json rust.bin names, from its workspace member, and says why",
        p is not None and " -p api --bin api-server " in p["commands"]["build"]
        and "chosen by kiln.json rust.bin" in p["why"]["build"], r.stdout + r.stderr)
T.check("the plan notes the pinned toolchain and what would provide it, word for word",
        p is not None and notice in p["notes"] and p["versions"]["rust"] == RUSTC
        and p["versionSource"] == "rust-toolchain.toml", r.stdout)
p, r = plan({"KILN_RUST_BIN": "worker"})
T.check("KILN_RUST_BIN wins over kiln.json rust.bin (src/main.rs of member worker)",
        p is not None and " -p worker --bin worker " in p["commands"]["build"], r.stdout + r.stderr)
for body, msg in [
    ('{"rust": {"bin": "nope"}}', 'kiln.json rust.bin names the binary "nope", which no package builds'),
    ("{}", "Cargo.toml: 2 binaries could run: api-server (package api), worker (package worker); choose one with "
     "package.default-run or kiln.json rust.bin (KILN_RUST_BIN)"),
    ('{"rust": {"binary": "x"}}', "kiln.json: rust.binary is not a setting of the rust provider (it has bin)"),
]:
    open(KJSON, "w").write(body)
    p, r = plan()
    T.check(f"kiln.json {body}: refused naming it", p is None and msg in r.stderr, r.stderr)
open(KJSON, "w").write('{"rust": {"bin": "api-server"}}\n')

ok, log = ensure_images("rust-build", "minimal-run")
if T.check("rust-build and minimal-run images are built (rustc " + RUSTC + ", images/rust-build/rustc-version)",
           ok, log[-3000:]):
    out = os.path.join(T.tmp, "ws-image")
    r = build(src, "--progress", "plain", "-t", "ws:latest", "--output", f"type=oci,dest={out}")
    if T.check("the workspace's auto build succeeds", r.returncode == 0, r.stderr[-3000:]):
        T.check("the build step says the pin was built with the image's rustc and what would provide it",
                "kiln: " + notice in r.stderr, r.stderr[-3000:])
        body = answer(out)
        T.check("the [[bin]] api-server answers over loopback with the library's text", body == "rust workspace ok\n",
                body)
        layers = layer_files(out)
        flat = set().union(*layers)
        T.check("the image holds the chosen binary alone: no worker, no source, no toolchain",
                layers[-1] - {"app"} == {"app/api-server"} and "app/worker" not in flat
                and not any(x.endswith(("bin/rustc", "bin/cargo", "bin/sh")) or x.startswith("app/crates")
                            for x in flat), sorted(layers[-1]))

    # A build image of the user's: the pin is that image's to honour, the build step checks it.
    own = json.dumps({"rust": {"bin": "api-server"}, "images": {"build": f"oci:{IMAGES}/rust-build"}})
    open(KJSON, "w").write(own)
    r = build(src, "--progress", "plain", "--output", f"type=oci,dest={os.path.join(T.tmp, 'own-image')}")
    m = re.search(r"kiln: rust-toolchain.toml asks for rustc 1\.80\.0 but the build image's is (\d[^\s:]*): kiln.json "
                  r"images.build must name an image with that toolchain", r.stderr)
    T.check("an own build image without the pinned rustc: the build step stops naming both versions",
            r.returncode != 0 and m is not None and m.group(1).startswith(RUSTC), r.stderr[-3000:])
    open(TOOLCHAIN, "w").write(f'[toolchain]\nchannel = "{RUSTC}"\n')
    p, _ = plan()
    r = build(src, "--progress", "plain", "--output", f"type=oci,dest={os.path.join(T.tmp, 'own-image2')}")
    T.check("an own build image with the pinned rustc: the pin is honoured, the build succeeds without a notice",
            p is not None and p["versions"]["rust"] == RUSTC and not p["notes"] and r.returncode == 0
            and "pins" not in r.stderr, r.stderr[-3000:])
T.done()
