#!/usr/bin/env python3
"""JVM, Rust, Deno and Ruby auto builds with the real registries (Maven Central, crates.io,
npm): a Spring Boot app (tests/fixtures/jvm-spring) built by Maven with ~/.m2 as a cache
mount, its jar's layers as separate image layers, answering over loopback on the JRE-only run
image, an application change keeping the dependencies layer; a Rust binary with one crates.io
crate (tests/fixtures/rust-http) built --release, statically linked and run alone on
minimal-run; a Deno server (tests/fixtures/deno-http) with Deno from the npm registry, run by
deno task start; a Rack app whose bundle install stops with a message naming the gem source
builds cannot reach. One build per stack (plus the Boot rebuild); caches and images persist
under /var/cache/kiln."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import build, build_answering, ensure_images, fixture, manifest_layers, no_build_tools  # noqa: E402
from kilntest import T  # noqa: E402


# --- JVM: Spring Boot through Maven -------------------------------------------------------
ok, log = ensure_images("jvm-build", "jvm-run")
if T.check("jvm-build and jvm-run images are built (images/build.sh)", ok, log[-3000:]):
    src = fixture("", "jvm-spring")
    got = build_answering(src, "spring", "spring boot ok\n",
                          "spring boot: the auto build succeeds (Maven Central, ~/.m2 cache mount)",
                          "spring boot: the image answers over loopback on $PORT", 120)
    if got:
        out, layers, flat = got
        T.check("spring boot: no javac, mvn or compiler in the run image", no_build_tools(flat),
                sorted(p for p in flat if "bin/" in p)[:40])
        dep = [i for i, files in enumerate(layers) if any(p.startswith("app/BOOT-INF/lib/spring-web") for p in files)]
        app = [i for i, files in enumerate(layers) if "app/BOOT-INF/classes/dev/kiln/demo/App.class" in files]
        T.check("spring boot: dependencies and application are separate layers (dependencies first)",
                len(dep) == 1 and len(app) == 1 and dep[0] < app[0], f"dep={dep} app={app}")
        T.check("spring boot: no source tree in the run image (only the jar's layers)",
                not any(p.startswith("app/src/") or p == "app/pom.xml" for p in flat), "")
        # An application change: rebuilt with the warm ~/.m2, the dependencies layer is the same blob.
        path = os.path.join(src, "src/main/java/dev/kiln/demo/App.java")
        text = open(path).read()
        open(path, "w").write(text.replace("spring boot ok", "spring boot ok again"))
        out2 = os.path.join(T.tmp, "spring-image2")
        r = build(src, "-t", "spring:latest", "--output", f"type=oci,dest={out2}")
        if T.check("spring boot: the rebuild after an application change succeeds", r.returncode == 0,
                   r.stderr[-3000:]):
            l1, l2 = manifest_layers(out), manifest_layers(out2)
            T.check("spring boot: the rebuild keeps the dependencies layer and changes the application's",
                    l1[dep[0]] == l2[dep[0]] and l1[app[0]] != l2[app[0]], f"{l1}\n{l2}")

# --- Rust: one crates.io crate, release build, the static binary alone on minimal-run -------
ok, log = ensure_images("rust-build", "minimal-run")
if T.check("rust-build and minimal-run images are built (Debian 12's newest rustc)", ok, log[-3000:]):
    got = build_answering(fixture("", "rust-http"), "rusthttp", "rust ok 42\n",
                          "rust: the auto build succeeds (crates.io, registry and target cache mounts)",
                          "rust: the image answers over loopback with the crate's output")
    if got:
        _, layers, flat = got
        T.check("rust: the last layer holds only the binary", layers[-1] - {"app"} == {"app/rust-http"},
                sorted(layers[-1]))
        T.check("rust: no rustc, cargo or compiler in the run image, no source or target dir",
                not any(p.endswith(("bin/rustc", "bin/cargo", "bin/gcc", "bin/cc")) or p.startswith("app/src")
                        or p.startswith("app/target") for p in flat), "")
        T.check("rust: statically linked onto the minimal image (no shell, no libc)",
                not any(p.endswith(("bin/sh", "libc.so.6")) for p in flat), sorted(flat)[:40])

# --- Deno: the binary from the npm registry's deno package, deno task start ------------------
ok, log = ensure_images("node-build")
if T.check("node-build image is built (Deno's build image: npm fetches deno)", ok, log[-3000:]):
    got = build_answering(fixture("", "deno-http"), "denohttp", "deno ok 2\n",
                          "deno: the auto build succeeds (deno from the npm registry)",
                          "deno: the image answers over loopback through deno task start")
    if got:
        flat = got[2]
        T.check("deno: the binary is in the run image, npm and node are not",
                "opt/kiln/deno/bin/deno" in flat and not any(p.endswith(("bin/npm", "bin/node", "bin/gcc"))
                                                               for p in flat), "")

# --- Ruby: planned and built up to its dependency step, which says why it cannot go on -------
ok, log = ensure_images("ruby-build", "ruby-run")
if T.check("ruby-build and ruby-run images are built", ok, log[-3000:]):
    src = os.path.join(T.tmp, "rack")
    os.makedirs(src)
    open(os.path.join(src, "Gemfile"), "w").write("source 'https://rubygems.org'\ngem 'rack'\ngem 'puma'\n")
    open(os.path.join(src, "config.ru"), "w").write("run ->(env) { [200, {}, ['ok']] }\n")
    r = build(src, "--output", f"type=oci,dest={os.path.join(T.tmp, 'rack-image')}")
    T.check("ruby: the install step fails naming the unreachable gem source and how to vendor",
            r.returncode != 0 and "the install step failed" in r.stderr
            and "kiln: bundle install could not install the gems from https://rubygems.org" in r.stderr
            and "bundle package (vendor/cache" in r.stderr, r.stderr[-3000:])
T.done()
