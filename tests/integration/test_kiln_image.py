#!/usr/bin/env python3
"""kiln's own image (images/kiln) built by kiln from this checkout and pushed by
scripts/release.sh to a docker-registry on loopback: the pushed image runs `kiln version` (the
same version as the kiln that built it), its run stage has no compiler, its entrypoint is kiln;
release.sh refuses a repository without a registry host (never Docker Hub). The build's kiln
root persists under /var/cache/kiln (apt layers and the ccache cache mount carry over: a run
after a source change recompiles only what changed)."""
import json
import os
import re
import subprocess
import time

from kilntest import KILN, SRC, T, kiln, start_registry

IMAGES = os.environ.get("KILN_IMAGES_DIR", "/var/cache/kiln/images")
ROOT = os.environ.get("KILN_IMAGE_ROOT", "/var/cache/kiln/kiln-image-root")

if not os.path.isfile(os.path.join(IMAGES, "base", "index.json")):
    T.skip("kiln image", f"kiln's base image is not built ({IMAGES}/base: images/build.sh)")
    T.done()

# the build stage installs every build package scripts/install-deps.sh has, but the test-only
# ones (a dependency added to meson.build goes there first)
deps = open(os.path.join(SRC, "scripts", "install-deps.sh")).read()
build_pkgs = re.search(r"BUILD_PKGS=\((.*?)\)", deps, re.S).group(1).split()
dockerfile = open(os.path.join(SRC, "images", "kiln", "Dockerfile")).read()
TEST_ONLY = {"clang", "clang-format", "libcmocka-dev", "libclang-rt-14-dev", "libfuzzer-14-dev"}
missing = [p for p in build_pkgs if p not in TEST_ONLY and not re.search(r"\s%s\s" % re.escape(p),
                                                                         dockerfile)]
T.check("images/kiln: the build stage installs every build package of scripts/install-deps.sh",
        build_pkgs and not missing, missing)

env = dict(os.environ, KILN_BIN=KILN, KILN_IMAGES_DIR=IMAGES)
r = subprocess.run(["bash", os.path.join(SRC, "scripts", "release.sh"), "kiln"], env=env,
                   capture_output=True, text=True, timeout=60)
T.check("release.sh: a repository without a registry host is refused before any build",
        r.returncode == 2 and "names no registry host" in r.stderr and "Docker Hub" in r.stderr,
        r.stderr)

# the persistent root keeps only what recent runs used
kiln("prune", "--root", ROOT, "--cache-max-age", "48", "--no-wait")
port = start_registry()
repo = f"127.0.0.1:{port}/kiln"
env.update(KILN_RELEASE_ROOT=ROOT, KILN_RELEASE_FLAGS=f"--insecure-registry 127.0.0.1:{port}")
t0 = time.time()
r = subprocess.run(["bash", os.path.join(SRC, "scripts", "release.sh"), repo, "test"], env=env,
                   capture_output=True, text=True, timeout=1500)
T.diag(f"release.sh (build + push) took {time.time() - t0:.1f} s")
digest = r.stdout.strip()
T.check("release.sh: builds images/kiln with kiln and pushes it, printing the digest",
        r.returncode == 0 and digest.startswith("sha256:"), r.stderr[-3000:])


def skopeo(*args):
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)


tags = skopeo("list-tags", "--tls-verify=false", f"docker://{repo}")
T.check("release.sh: REPOSITORY:VERSION and :latest are pushed",
        tags.returncode == 0 and sorted(json.loads(tags.stdout)["Tags"]) == ["latest", "test"],
        tags.stdout + tags.stderr)
insp = skopeo("inspect", "--tls-verify=false", f"docker://{repo}:test")
T.check("the registry's digest is the one release.sh printed",
        insp.returncode == 0 and json.loads(insp.stdout)["Digest"] == digest, insp.stdout + insp.stderr)
cfg = skopeo("inspect", "--config", "--tls-verify=false", f"docker://{repo}:test")
T.check("the image's entrypoint is kiln", cfg.returncode == 0 and
        json.loads(cfg.stdout)["config"].get("Entrypoint") == ["/usr/bin/kiln"], cfg.stdout[-2000:])

layout = os.path.join(T.tmp, "kiln-image")
cp = skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{repo}:test", f"oci:{layout}:test")
v = kiln("run", "--rootfs", f"oci:{layout}:test", "--", "/usr/bin/kiln", "version", timeout=300)
mine = kiln("version").stdout.splitlines()[0]
T.check("`kiln version` runs in the pushed image and reports this kiln's version",
        cp.returncode == 0 and v.returncode == 0 and v.stdout.splitlines()[:1] == [mine],
        cp.stderr + v.stdout + v.stderr)
tools = kiln("run", "--rootfs", f"oci:{layout}:test", "--", "/bin/sh", "-c",
             "for c in gcc cc meson ninja; do command -v $c; done; ls /usr/include | head -3; true",
             timeout=300)
T.check("the run stage has no compiler, build tool or headers",
        tools.returncode == 0 and tools.stdout.strip() == "", tools.stdout + tools.stderr)
T.done()
