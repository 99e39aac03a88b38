#!/usr/bin/env python3
"""Errors that say what to do: an unknown `kiln build` flag gets "did you mean"; a registry speaking plain HTTP (docker-registry on loopback,
no --insecure-registry) is named with the flag that allows it; a FROM / COPY --from naming
a stage with a typo suggests the stage before any registry is asked; a failed pull of a
name without a registry says it was expanded to docker.io (run in a network namespace of
its own, so nothing is contacted)."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base  # noqa: E402
from kilntest import KILN, T, kiln, start_registry  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
base = make_base(ROOT)
port = start_registry()
ctx = os.path.join(T.tmp, "ctx")
os.makedirs(ctx)


def build(dockerfile, *args, timeout=120):
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    return kiln("build", "--root", ROOT, *args, ctx, timeout=timeout)


# the failing step's message names the Dockerfile as the build was given it (as tty and plain
# progress print it)
DF = os.path.join(ctx, "Dockerfile")


def error_line(r):
    return next((ln for ln in r.stderr.splitlines() if ln.startswith("ERROR: ")), r.stderr[-500:])


# --- unknown flags: the closest flag suggested; a missing value named ---
for argv, want in ((["--tagg", "x"], "kiln build: unknown flag --tagg; did you mean --tag?"),
                   (["--buid-arg=A=1"], "kiln build: unknown flag --buid-arg; did you mean --build-arg?"),
                   (["--zzz"], "kiln build: unknown flag --zzz"),
                   # flags only kiln itself passes (--tenant, --events-fd) are never suggested
                   (["--tenent", "x"], "kiln build: unknown flag --tenent"),
                   (["--event-fd", "3"], "kiln build: unknown flag --event-fd"),
                   (["-Z"], "kiln build: unknown flag -Z"),
                   (["--buil"], "kiln build: ambiguous flag --buil: --build-arg, --build-context, "
                    "--build-id")):
    r = kiln("build", *argv, ctx)
    T.check(f"kiln build {argv[0]}: exit 2, '{want}'",
            r.returncode == 2 and r.stderr == want + "\nTry 'kiln build -h'.\n", r.stderr)
r = kiln("build", ctx, "--tag")
T.check("kiln build CONTEXT --tag: the flag missing its value is named",
        r.returncode == 2 and r.stderr.startswith("kiln build: --tag needs a value\n"), r.stderr)

host = f"127.0.0.1:{port}"
r = build(f"FROM {host}/busybox:1\n")
T.check("plain-HTTP registry without --insecure-registry: the host and the flag that allows it",
        r.returncode == 1 and error_line(r).startswith(
            f"ERROR: {DF}:1: FROM {host}/busybox:1: GET {host}: TLS handshake failed (")
        and error_line(r).endswith(
            f"; if {host} serves plain HTTP, allow it with --insecure-registry {host}"), r.stderr[-1500:])

r = build(f"FROM {base} AS builder\nRUN true\nFROM {base}\nCOPY --from=buildr /x /x\n")
T.check("COPY --from with a stage typo: the closest stage is suggested, no registry asked",
        r.returncode == 1 and error_line(r) == f"ERROR: {DF}:4: COPY --from=buildr: no stage named "
        "buildr; did you mean builder? (for the image, write docker.io/library/buildr)"
        and "docker.io:" not in r.stderr and "resolve image" not in r.stderr, r.stderr[-1500:])
r = build(f"FROM {base} AS builder\nFROM buildr\n")
T.check("FROM with a stage typo: the closest stage is suggested, no registry asked",
        r.returncode == 1 and error_line(r) == f"ERROR: {DF}:2: FROM buildr: no stage named "
        "buildr; did you mean builder? (for the image, write docker.io/library/buildr)"
        and "resolve image" not in r.stderr, r.stderr[-1500:])

r = build("FROM 127.0.0.1:1/busybox:1\n")
T.check("an unreachable registry named in full: no word of docker.io",
        r.returncode == 1 and error_line(r).startswith(
            f"ERROR: {DF}:1: FROM 127.0.0.1:1/busybox:1: GET 127.0.0.1:1: ")
        and "docker.io" not in r.stderr, r.stderr[-1500:])

if shutil.which("unshare"):
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM busyboxx\n")
    r = subprocess.run(["unshare", "-n", KILN, "build", "--root", ROOT, ctx], capture_output=True,
                       text=True, timeout=120)
    T.check("an unreachable Docker Hub: the error says the name was expanded to docker.io",
            r.returncode == 1 and error_line(r).startswith(
                f"ERROR: {DF}:1: FROM busyboxx: GET registry-1.docker.io: ")
            and error_line(r).endswith(
                " (busyboxx names no registry, so it was expanded to docker.io/library/busyboxx:latest; "
                "write HOST[:PORT]/busyboxx for another registry)"), r.stderr[-1500:])
else:
    T.skip("unreachable Docker Hub", "no unshare(1) to make a network namespace")
T.done()
