"""Helpers for the examples' end-to-end tests (imported by test_examples_*.py):
kiln's base/build/run images (images/build.sh, cached under /var/cache/kiln),
auto-builds of examples/, and running a built OCI image with umoci + runc to
fetch its HTTP answer over loopback."""
import gzip
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request

from kilntest import SRC, T, free_port, kiln

IMAGES = os.environ.get("KILN_IMAGES_DIR", "/var/cache/kiln/images")
# The kiln root of the example builds persists so that npm/pip/go caches and
# the build cache carry over between CI runs, like a build server's.
ROOT = os.environ.get("KILN_EXAMPLES_ROOT", "/var/cache/kiln/examples-root")
ENV = {"KILN_IMAGE_PREFIX": "oci:" + IMAGES, "KILN_IMAGES_DIR": IMAGES, "KILN_ROOT": ROOT}


def ensure_images(*names):
    """Builds (or reuses) kiln's images; returns (ok, log)."""
    e = dict(os.environ, KILN_BIN=os.environ.get("KILN_BIN", ""), KILN_IMAGES_DIR=IMAGES)
    r = subprocess.run(["bash", os.path.join(SRC, "images", "build.sh"), *names], env=e, capture_output=True,
                       text=True, timeout=1500)
    return r.returncode == 0, r.stdout + r.stderr


def need_node_images():
    """Builds (or reuses) kiln's node images; when that fails, one failed check ends the test."""
    ok, log = ensure_images("node-build", "node-run")
    if not T.check("kiln's node build and run images are built (images/build.sh)", ok, log):
        T.done()


def fixture(group, name, copy=""):
    """A private copy of tests/fixtures/<group>/<name> (tests may edit it); copy names a
    second, independent copy."""
    dst = os.path.join(T.tmp, "src-" + name + copy)
    shutil.copytree(os.path.join(SRC, "tests", "fixtures", group, name), dst, symlinks=True)
    return dst


def plan_of(src, *args):
    """kiln plan's JSON for src (args go before it), or {"error": its stderr}."""
    r = kiln("plan", *args, src, env=ENV)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": r.stderr}


def example(name):
    """A private copy of examples/<name> (tests may edit it)."""
    dst = os.path.join(T.tmp, "src-" + name)
    if not os.path.exists(dst):
        shutil.copytree(os.path.join(SRC, "examples", name), dst, symlinks=True)
    return dst


def build(src, *args, env=None):
    e = dict(ENV)
    e.update(env or {})
    return kiln("build", "--root", ROOT, *args, src, env=e, timeout=1500)


def run_http(layout, tag="latest", path="/", timeout=60):
    """Unpacks the image, runs it with runc on the host network with a free
    PORT, and returns the HTTP body of GET path (or raises)."""
    bundle = os.path.join(T.tmp, "bundle-%d" % free_port())
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", bundle], check=True, capture_output=True)
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    port = free_port()
    cfg["process"]["terminal"] = False
    cfg["process"]["env"] = [v for v in cfg["process"]["env"] if not v.startswith("PORT=")] + [f"PORT={port}"]
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    json.dump(cfg, open(cfg_path, "w"))
    cid = "kiln-ex-%d" % port
    log = open(os.path.join(bundle, "run.log"), "w")
    p = T.spawn(["runc", "run", "--bundle", bundle, cid], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
    try:
        end = time.time() + timeout
        last = None
        while time.time() < end:
            if p.poll() is not None:
                raise RuntimeError("container exited %s: %s" % (p.returncode, open(log.name).read()[-2000:]))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                    return resp.read().decode()
            except OSError as e:
                last = e
                time.sleep(0.2)
        raise RuntimeError(f"no HTTP answer on 127.0.0.1:{port}: {last}; log: " + open(log.name).read()[-2000:])
    finally:
        subprocess.run(["runc", "kill", cid, "KILL"], capture_output=True)
        try:
            p.wait(timeout=10)
        except Exception:
            pass
        subprocess.run(["runc", "delete", "--force", cid], capture_output=True)
        shutil.rmtree(bundle, ignore_errors=True)


def manifest_layers(layout):
    """Layer digests of the single image in an OCI layout."""
    idx = json.load(open(os.path.join(layout, "index.json")))
    d = idx["manifests"][0]["digest"].split(":", 1)[1]
    m = json.load(open(os.path.join(layout, "blobs", "sha256", d)))
    return [layer["digest"] for layer in m["layers"]]


_LAYER_PATHS = {}  # layer digest -> its paths: a base layer shared by images is read once


def layout_files(layout):
    """Paths in the single image of an OCI layout (no leading ./ or /), whiteouts applied."""
    idx = json.load(open(os.path.join(layout, "index.json")))
    blob = lambda dg: os.path.join(layout, "blobs", *dg.split(":"))  # noqa: E731
    man = json.load(open(blob(idx["manifests"][0]["digest"])))
    have = set()
    for layer in man["layers"]:
        if layer["digest"] not in _LAYER_PATHS:
            with open(blob(layer["digest"]), "rb") as f:
                src = gzip.GzipFile(fileobj=f) if "gzip" in layer["mediaType"] else f
                with tarfile.open(fileobj=src, mode="r|*") as t:
                    _LAYER_PATHS[layer["digest"]] = [m.name.lstrip("./").rstrip("/") for m in t]
        for p in _LAYER_PATHS[layer["digest"]]:
            base = os.path.basename(p)
            if base.startswith(".wh."):
                have.discard(os.path.join(os.path.dirname(p), base[4:]))
            else:
                have.add(p)
    return have


def layer_files(layout):
    """The file names in each layer of the image in an OCI layout (one set per layer)."""
    blob = lambda dg: os.path.join(layout, "blobs", *dg.split(":"))  # noqa: E731
    idx = json.load(open(os.path.join(layout, "index.json")))
    man = json.load(open(blob(idx["manifests"][0]["digest"])))
    out = []
    for layer in man["layers"]:
        with open(blob(layer["digest"]), "rb") as f:
            src = gzip.GzipFile(fileobj=f) if "gzip" in layer["mediaType"] else f
            with tarfile.open(fileobj=src, mode="r|*") as t:
                out.append({m.name.lstrip("./") for m in t})
    return out


def answer(layout, timeout=60):
    """The image's HTTP answer over loopback, or the error as text."""
    try:
        return run_http(layout, "latest", timeout=timeout)
    except Exception as e:  # noqa: BLE001
        return repr(e)


def build_answering(src, name, expect, built, answers, timeout=60):
    """The stack tests' build-and-answer: an auto build of src tagged NAME:latest into the OCI
    layout T.tmp/NAME-image, checked to succeed (check `built`), then run and checked to answer
    `expect` over loopback (check `answers`). (layout, [files of each layer], every file) for
    more checks, or None when the build failed."""
    out = os.path.join(T.tmp, name + "-image")
    r = build(src, "-t", name + ":latest", "--output", f"type=oci,dest={out}")
    if not T.check(built, r.returncode == 0, r.stderr[-3000:]):
        return None
    body = answer(out, timeout)
    T.check(answers, body == expect, body)
    layers = layer_files(out)
    return out, layers, set().union(*layers)


def no_build_tools(flat):
    """No compiler, JDK or build tool among an image's files."""
    return not any(p.endswith(("bin/javac", "bin/mvn", "bin/gradle", "bin/gcc", "bin/cc")) for p in flat)
