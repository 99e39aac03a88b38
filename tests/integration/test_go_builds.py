#!/usr/bin/env python3
"""Go services built for real: the Go release comes from the Go module proxy
(golang.org/toolchain, checked against its pinned h1 dirhash, fetched once per
release into the kiln root), modules come through the proxy with the module and
build caches as cache mounts, and the binary is static and alone on the minimal
run image.

- tests/fixtures/go/chi-service: `go 1.23` and a dependency (github.com/go-chi/chi/v5)
  builds with kiln's default Go release; its image answers over loopback, runs as
  nonroot, has no shell and no Go toolchain, and its binary has no ELF interpreter.
- tests/fixtures/go/multi-main: two mains under cmd/: the one named like the module
  is built (the plan says why); goMain / KILN_GO_MAIN pick the other.
- a go.mod asking for a Go release that is not available fails, word for word."""
import base64
import gzip
import io
import json
import os
import shutil
import struct
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import ENV, ROOT, build, ensure_images, run_http  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

FIX = os.path.join(SRC, "tests", "fixtures", "go")
DEFAULT = "1.27.3"

ok, log = ensure_images("go-build", "minimal-run")
if not T.check("kiln's go-build and minimal-run images are built (images/build.sh)", ok, log):
    T.done()


def fixture(name, as_=None):
    dst = os.path.join(T.tmp, as_ or name)
    shutil.copytree(os.path.join(FIX, name), dst)
    return dst


def plan(src, env=None):
    e = dict(ENV)
    e.update(env or {})
    return kiln("plan", src, env=e)


def image(layout):
    """(config, {path: bytes or None}) of the single image in an OCI layout."""
    blob = lambda dg: os.path.join(layout, "blobs", *dg.split(":"))  # noqa: E731
    idx = json.load(open(os.path.join(layout, "index.json")))
    man = json.load(open(blob(idx["manifests"][0]["digest"])))
    cfg = json.load(open(blob(man["config"]["digest"])))
    files = {}
    for layer in man["layers"]:
        data = open(blob(layer["digest"]), "rb").read()
        if "gzip" in layer["mediaType"]:
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t.getmembers():
                name = m.name.lstrip("./")
                files[name] = t.extractfile(m).read() if m.isfile() else None
    return cfg, files


def has_interp(elf):
    """True when an ELF64 binary names a program interpreter (PT_INTERP): it is dynamic."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3 for i in range(phnum))


# --- a module with a dependency and a go 1.23 directive --------------------------------------------
src = fixture("chi-service")
r = plan(src)
p = json.loads(r.stdout) if r.returncode == 0 else {}
T.check("chi-service: the plan builds with go%s because of go.mod line 3 (go 1.23)" % DEFAULT,
        p.get("versions") == {"go": DEFAULT} and p.get("versionSource") == "go.mod line 3"
        and p["why"]["version"].startswith("go.mod line 3 (go 1.23) asks for Go 1.23 or newer: go%s" % DEFAULT),
        r.stdout + r.stderr)
T.check("chi-service: go mod download through the proxy, GOTOOLCHAIN=local, caches as mounts",
        p.get("commands", {}).get("install") == "go mod download"
        and p.get("buildEnv", {}).get("GOTOOLCHAIN") == "local"
        and p["buildEnv"].get("GOPROXY", "").startswith("https://proxy.golang.org")
        and "GOFLAGS" not in p["buildEnv"]  # go.sum is there: no -mod=mod
        and [c["target"] for c in p.get("caches", [])] == ["/root/go/pkg/mod", "/root/.cache/go-build"],
        r.stdout)
out = os.path.join(T.tmp, "oci-chi")
r = build(src, "-t", "chi:latest", "--sbom", "--output", f"type=oci,dest={out}")
if T.check("chi-service: kiln build fetches the toolchain and builds", r.returncode == 0, r.stderr[-3000:]):
    # --sbom reads the binary's Go build information (the .go.buildinfo blob)
    try:
        sbom = json.load(open(out + ".sbom.spdx.json"))
    except (OSError, ValueError) as e:
        sbom = {"error": str(e)}
    gopkgs = {ref["referenceLocator"]: p for p in sbom.get("packages", [])
              for ref in p.get("externalRefs", []) if ref["referenceLocator"].startswith("pkg:golang/")}
    T.check("chi-service --sbom: the Go release, the main module and chi from the binary's build info",
            sorted(gopkgs) == ["pkg:golang/example.com/kiln/chi-service@%28devel%29",
                               "pkg:golang/github.com/go-chi/chi/v5@v5.2.3",
                               "pkg:golang/stdlib@" + DEFAULT], sorted(gopkgs) or sbom)
    chi = gopkgs.get("pkg:golang/github.com/go-chi/chi/v5@v5.2.3", {})
    T.check("chi-service --sbom: chi's checksum is the go.sum h1 hash (as SHA256), read from "
            "usr/local/bin/chi-service",
            chi.get("checksums") == [{"algorithm": "SHA256", "checksumValue": base64.b64decode(
                "WQIt9uxdsAbgIYgid+BpYc+liqQZGMHRaUwp0JUcvdE=").hex()}]
            and chi.get("sourceInfo") == "acquired package info from usr/local/bin/chi-service", chi)
    T.check("chi-service: the build downloads the module and compiles with the fetched Go",
            "go mod download" in r.stderr and "-trimpath -buildvcs=false" in r.stderr, r.stderr[-3000:])
    T.check("the toolchain is unpacked once in the kiln root, with its version",
            open(os.path.join(ROOT, "toolchains", "go-" + DEFAULT, ".kiln-version")).read() == DEFAULT
            and os.path.isfile(os.path.join(ROOT, "toolchains", "go-" + DEFAULT, "bin", "go")))
    try:
        body = run_http(out, "latest", "/hello/kiln")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("chi-service: the image answers over loopback, built by go%s with cgo off" % DEFAULT,
            body == "chi says hello to kiln (go%s, cgo off: true)\n" % DEFAULT, body)
    cfg, files = image(out)
    binary = files.get("usr/local/bin/chi-service")
    T.check("chi-service: the run image runs the binary without a shell, as nonroot",
            cfg["config"].get("Cmd") == ["/usr/local/bin/chi-service"]
            and cfg["config"].get("User") == "65532:65532", json.dumps(cfg["config"]))
    T.check("chi-service: no shell, no Go toolchain, no compiler, no Go settings in the run image",
            binary is not None and "bin/sh" not in files and "usr/bin/sh" not in files
            and not any(f.startswith("usr/local/go") for f in files) and "usr/bin/gcc" not in files
            and not any(e.startswith(("GOPROXY=", "GOTOOLCHAIN=", "PATH=/usr/local/go"))
                        for e in cfg["config"].get("Env", [])),
            sorted(f for f in files if f.count("/") < 3)[:60])
    T.check("chi-service: the run image has TLS roots and time zones",
            "etc/ssl/certs/ca-certificates.crt" in files and "usr/share/zoneinfo/UTC" in files,
            sorted(f for f in files if f.startswith("etc/"))[:30])
    T.check("chi-service: the binary is static (no ELF interpreter)",
            binary is not None and binary[:4] == b"\x7fELF" and not has_interp(binary))

# --- two mains under cmd/ -----------------------------------------------------------------------
src = fixture("multi-main")
r = plan(src)
p = json.loads(r.stdout) if r.returncode == 0 else {}
T.check("multi-main: the plan builds ./cmd/api, named like the module, and says why",
        p.get("commands", {}).get("build", "").endswith("-o /usr/local/bin/api ./cmd/api")
        and p["why"]["start"] == "./cmd/api is named like the module (example.com/kiln/api) among the main "
                                 "packages ./cmd/api, ./cmd/worker", r.stdout + r.stderr)
T.check("multi-main: the toolchain line is a minimum the default release satisfies",
        p.get("versions") == {"go": DEFAULT} and p.get("versionSource") == "go.mod line 5", r.stdout)
r = plan(src, {"KILN_GO_MAIN": "worker"})
T.check("multi-main: KILN_GO_MAIN=worker builds ./cmd/worker",
        r.returncode == 0 and json.loads(r.stdout)["commands"]["build"].endswith("./cmd/worker")
        and json.loads(r.stdout)["why"]["start"] == "KILN_GO_MAIN names the main package ./cmd/worker", r.stdout)
r = plan(src, {"KILN_GO_MAIN": "../../etc"})
T.check("multi-main: a goMain leaving the module is refused",
        r.returncode == 1 and "KILN_GO_MAIN \"../../etc\" must be a package directory of the module" in r.stderr,
        r.stderr)
out = os.path.join(T.tmp, "oci-multi")
with open(os.path.join(src, "kiln.json"), "w") as f:
    json.dump({"goMain": "./cmd/worker"}, f)
r = build(src, "-t", "multi:latest", "--output", f"type=oci,dest={out}")
if T.check("multi-main: kiln build with kiln.json goMain ./cmd/worker", r.returncode == 0, r.stderr[-3000:]):
    try:
        body = run_http(out, "latest", "/")
    except Exception as e:  # noqa: BLE001
        body = f"<{e}>"
    T.check("multi-main: the worker's image answers over loopback", body == "hello from cmd/worker\n", body)

# --- a Go release that is not available ---------------------------------------------------------
src2 = fixture("chi-service", "too-new")
with open(os.path.join(src2, "go.mod"), "w") as f:
    f.write("module example.com/kiln/chi-service\n\ngo 1.30\n\nrequire github.com/go-chi/chi/v5 v5.2.3\n")
want = ("go.mod line 3 (go 1.30) asks for Go 1.30 or newer, and no Go release kiln can fetch and verify "
        "is: available are go1.27.4, go1.27.3, go1.26.11, go1.25.14, go1.24.13, go1.23.12, go1.23.0, "
        "go1.22.12, go1.21.13; lower the go line or build with a Dockerfile")
r = plan(src2)
T.check("go 1.30: kiln plan fails naming the line, the version and what is available",
        r.returncode == 1 and r.stderr == "kiln: " + want + "\n", r.stderr)
r = build(src2, "--output", "type=oci,dest=" + os.path.join(T.tmp, "never"))
T.check("go 1.30: kiln build fails with the same message, once, before any step",
        r.returncode != 0 and r.stderr.count(want) == 1 and "#1 " not in r.stderr, r.stderr[-2000:])
T.done()
