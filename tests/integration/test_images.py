#!/usr/bin/env python3
"""kiln's images: a missing image is named with the command that makes it (no registry
or DNS error); every build image carries make, gcc, g++, python3, pkg-config, git and
ca-certificates, no run image has a compiler; a native module (bcrypt, no prebuilt
binary reachable: node-gyp compiles it against the Node toolchain's own headers) builds
in an auto build and its image answers over loopback."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import IMAGES, ROOT, build, ensure_images, layout_files, run_http  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

BUILD_IMAGES = ("node-build", "python-build", "go-build")
RUN_IMAGES = ("node-run", "python-run", "static-run", "minimal-run", "base")
BUILD_TOOLS = ("usr/bin/make", "usr/bin/gcc", "usr/bin/g++", "usr/bin/python3", "usr/bin/pkg-config",
               "usr/bin/git", "etc/ssl/certs/ca-certificates.crt")
COMPILERS = ("usr/bin/gcc", "usr/bin/g++", "usr/bin/cc", "usr/bin/c++", "usr/bin/make", "usr/bin/ld")
NOT_A_REGISTRY = ("registry-1.docker.io", "resolve", "GET ", "not an OCI image layout")

site = os.path.join(T.tmp, "site")
os.makedirs(site)
open(os.path.join(site, "index.html"), "w").write("hi\n")


def auto(src, prefix, out="image"):
    env = {"KILN_IMAGE_PREFIX": prefix, "KILN_ROOT": os.path.join(T.tmp, "root")}
    return kiln("build", "--root", env["KILN_ROOT"], "--output", f"type=oci,dest={T.tmp}/{out}", src, env=env)


# The images dir is empty: the first image the build needs (base) is named with its command.
empty = os.path.join(T.tmp, "empty")
os.makedirs(empty)
r = auto(site, "oci:" + empty)
msg = r.stderr
T.check("missing image: the build fails", r.returncode != 0, msg)
T.check("missing image: the message names the image and both commands",
        f"oci:{empty}/base is missing" in msg and "scripts/setup.sh" in msg
        and f"KILN_IMAGES_DIR={empty} images/build.sh base" in msg, msg)
T.check("missing image: no registry, DNS or layout error", not any(s in msg for s in NOT_A_REGISTRY), msg)
T.check("missing image: said once", msg.count("is missing") == 1, msg)

# No KILN_IMAGE_PREFIX at all: kiln's own image directory ($KILN_IMAGES_DIR, default
# /var/cache/kiln/images), never Docker Hub; missing there, the image and the command are named.
r = kiln("build", "--root", os.path.join(T.tmp, "root"), "--output", f"type=oci,dest={T.tmp}/i2", site,
         env={"KILN_IMAGE_PREFIX": "", "KILN_IMAGES_DIR": empty, "KILN_ROOT": os.path.join(T.tmp, "root")})
T.check("no KILN_IMAGE_PREFIX: the image in kiln's image directory is named with scripts/setup.sh",
        r.returncode != 0 and f"oci:{empty}/base is missing" in r.stderr and "scripts/setup.sh" in r.stderr
        and "KILN_IMAGE_PREFIX" in r.stderr, r.stderr)
T.check("no KILN_IMAGE_PREFIX: no registry or DNS error", not any(s in r.stderr for s in NOT_A_REGISTRY), r.stderr)

ok, log = ensure_images(*BUILD_IMAGES, *RUN_IMAGES[:-1])
if not T.check("kiln's images are built (images/build.sh)", ok, log):
    T.done()

# No KILN_IMAGE_PREFIX and kiln's images where images/build.sh put them: `kiln build DIR`
# works with no setup beyond scripts/setup.sh.
r = kiln("build", "--root", os.path.join(T.tmp, "root"), "--output", f"type=oci,dest={T.tmp}/i3", site,
         env={"KILN_IMAGE_PREFIX": "", "KILN_IMAGES_DIR": IMAGES, "KILN_ROOT": os.path.join(T.tmp, "root")})
T.check("no KILN_IMAGE_PREFIX: the site builds on kiln's images from its image directory",
        r.returncode == 0 and os.path.exists(os.path.join(T.tmp, "i3", "index.json")), r.stderr[-2000:])

# Only the base is there: a static site's image names the run image it misses.
partial = os.path.join(T.tmp, "partial")
os.makedirs(partial)
os.symlink(os.path.join(IMAGES, "base"), os.path.join(partial, "base"))
r = auto(site, "oci:" + partial)
T.check("missing run image: names static-run and images/build.sh static-run",
        r.returncode != 0 and f"run image oci:{partial}/static-run is missing" in r.stderr
        and "images/build.sh static-run" in r.stderr and not any(s in r.stderr for s in NOT_A_REGISTRY),
        r.stderr)


def files(name):
    """Paths in one of kiln's images (no leading ./ or /), whiteouts applied."""
    return layout_files(os.path.join(IMAGES, name))


for name in BUILD_IMAGES:
    have = files(name)
    missing = [p for p in BUILD_TOOLS if p not in have]
    T.check(f"{name} carries make, gcc, g++, python3, pkg-config, git, ca-certificates", not missing,
            "missing: %s" % missing)
for name in RUN_IMAGES:
    have = files(name)
    found = [p for p in COMPILERS if p in have]
    T.check(f"{name} has no compiler, linker or make", not found, "found: %s" % found)

# A native module: bcrypt 5's prebuilt binary is on GitHub (unreachable here), so
# node-gyp compiles it, for Node 20 from the npm registry's toolchain.
src = os.path.join(T.tmp, "native")
shutil.copytree(os.path.join(SRC, "tests", "fixtures", "native-module"), src)
out = os.path.join(T.tmp, "native-image")
r = build(src, "-t", "native:latest", "--output", f"type=oci,dest={out}")
T.check("native module: the auto build compiles bcrypt", r.returncode == 0,
        r.stderr[-3000:])
if r.returncode == 0:
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = repr(e)
    T.check("native module: the image answers with bcrypt working", body == "bcrypt ok\n", body)
T.done()
