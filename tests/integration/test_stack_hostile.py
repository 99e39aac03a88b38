#!/usr/bin/env python3
"""Hostile JVM and Rust manifests at plan time (kiln plan, no build): huge pom.xml and
Cargo.toml, a pom with too many elements, a pom.xml, a Maven module and a Cargo path
dependency that point outside the source (a marker on the host is neither read nor
written), a pom whose artifactId is a shell command (never in the build command)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln  # noqa: E402

CLEAN = {"KILN_PROVIDER": "", "KILN_IMAGE_PREFIX": "", "KILN_RUST_BIN": "", "KILN_JAVA_VERSION": ""}
SECRET = "KILN-HOST-SECRET-7f3a"
host = os.path.join(T.tmp, "host")
os.makedirs(os.path.join(host, "mod"))
marker = os.path.join(host, "marker.txt")
open(marker, "w").write(SECRET + "\n")
for p in ("pom.xml", os.path.join("mod", "pom.xml")):
    open(os.path.join(host, p), "w").write(
        f"<project><artifactId>{SECRET}</artifactId><version>1</version></project>\n")
open(os.path.join(host, "Cargo.toml"), "w").write(f'[package]\nname = "{SECRET}"\nversion = "1.0.0"\n')


def src(name, files, links=None):
    d = os.path.join(T.tmp, name)
    os.makedirs(d)
    for p, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
        open(os.path.join(d, p), "w").write(text)
    for p, target in (links or {}).items():
        os.symlink(target, os.path.join(d, p))
    return d


def plan(d):
    return kiln("plan", d, env=CLEAN)


def no_leak(r):
    return SECRET not in r.stdout and SECRET not in r.stderr


# Huge manifests: over the 4 MiB a handler reads.
d = src("huge-pom", {"pom.xml": "<project>" + "<!-- x -->" * 500000 + "</project>"})
r = plan(d)
T.check("a pom.xml over 4 MiB is refused naming it", r.returncode == 1 and "pom.xml" in r.stderr, r.stderr)
d = src("huge-cargo", {"Cargo.toml": "# " + "x" * (5 << 20) + "\n[package]\nname = \"a\"\n"})
r = plan(d)
T.check("a Cargo.toml over 4 MiB is refused naming it", r.returncode == 1 and "Cargo.toml" in r.stderr, r.stderr)
d = src("many-elements", {"pom.xml": "<project>" + "<a/>" * 150000 + "</project>"})
r = plan(d)
T.check("a pom.xml with 150,000 elements is refused: \"more than 100000 elements\"",
        r.returncode == 1 and "pom.xml: more than 100000 elements" in r.stderr, r.stderr)
d = src("laughs", {"pom.xml": '<!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                              "<project><artifactId>&b;</artifactId></project>"})
r = plan(d)
T.check("a pom.xml with entities is refused before any expansion",
        r.returncode == 1 and "pom.xml: a DOCTYPE is not allowed in a pom" in r.stderr, r.stderr)

# Links and paths out of the source: the host's files are never read.
d = src("pom-link", {}, {"pom.xml": os.path.join(host, "pom.xml")})
r = plan(d)
T.check("pom.xml linking to a host file: not read (resolved inside the source)",
        r.returncode == 1 and no_leak(r) and "cannot detect" in r.stderr, r.stdout + r.stderr)
d = src("module-link", {"pom.xml": "<project><artifactId>p</artifactId><version>1</version>"
                                   "<packaging>pom</packaging><modules><module>mod</module></modules></project>"},
        {"mod": os.path.join(host, "mod")})
r = plan(d)
T.check("a Maven module linking to a host dir: its pom.xml is not read, the error names the module",
        r.returncode == 1 and no_leak(r) and "module mod has no mod/pom.xml" in r.stderr, r.stdout + r.stderr)
rel = os.path.relpath(host, os.path.join(T.tmp, "cargo-path"))
d = src("cargo-path", {"Cargo.toml": f'[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
                                     f'leak = {{ path = "{rel}" }}\n', "src/main.rs": "fn main() {}\n"})
r = plan(d)
T.check("a Cargo path dependency outside the source is refused naming the dependency and path",
        r.returncode == 1 and no_leak(r) and f'dependencies.leak = "{rel}" points outside the source' in r.stderr,
        r.stderr)
d = src("cargo-member", {"Cargo.toml": f'[workspace]\nmembers = ["{rel}"]\n'})
r = plan(d)
T.check("a Cargo workspace member outside the source is refused naming it",
        r.returncode == 1 and no_leak(r) and f'workspace member "{rel}" is outside the source' in r.stderr,
        r.stderr)
d = src("cargo-link", {"src/main.rs": "fn main() {}\n"}, {"Cargo.toml": os.path.join(host, "Cargo.toml")})
r = plan(d)
T.check("Cargo.toml linking to a host file: not read", r.returncode == 1 and no_leak(r), r.stdout + r.stderr)

# A shell command as artifactId/version: the jar is looked up in target/ instead.
pwned = os.path.join(T.tmp, "pwned")
d = src("artifact-cmd", {"pom.xml": f"<project><artifactId>$(touch {pwned})</artifactId>"
                                    f"<version>1`touch {pwned}`</version></project>"})
r = plan(d)
T.check("a shell command as artifactId: planned, the build command holds no part of it",
        r.returncode == 0 and pwned not in json.loads(r.stdout)["commands"]["build"]
        and "$(ls $PWD/target/*.jar" in json.loads(r.stdout)["commands"]["build"] and not os.path.exists(pwned),
        r.stdout + r.stderr)
T.check("the host marker is unchanged", open(marker).read() == SECRET + "\n", "")
T.done()
