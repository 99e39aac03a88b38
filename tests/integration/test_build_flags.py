#!/usr/bin/env python3
"""docker build's flags on kiln build, against docker-registry on loopback: -q prints
nothing but the image digest, --iidfile writes it, --label labels the image, --platform
linux/amd64 is accepted and any other platform refused by name, and --pull builds on the
base tag as the registry has it now (pushed again between two builds)."""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_image, write_tree  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
base = make_base(ROOT)
host = f"127.0.0.1:{start_registry()}"
INS = ("--insecure-registry", host)


def push_base(word):
    """Pushes FROM busybox + /v containing word as HOST/b:1; returns its manifest's layers."""
    ctx = write_tree(os.path.join(T.tmp, "base-" + word), {"Dockerfile": f"FROM {base}\nRUN echo {word} > /v\n"})
    r = kiln("build", "--root", ROOT, *INS, "-o", f"type=registry,name={host}/b:1", ctx)
    if r.returncode != 0:
        raise RuntimeError("push of the base failed: " + r.stderr[-1500:])
    req = urllib.request.Request(f"http://{host}/v2/b/manifests/1", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=30) as f:
        return [layer["digest"] for layer in json.load(f)["layers"]]


app = write_tree(os.path.join(T.tmp, "app"), {"Dockerfile": f"FROM {host}/b:1\nRUN cat /v > /seen\n"})
one = push_base("one")
out1, iid = os.path.join(T.tmp, "out1"), os.path.join(T.tmp, "iid")
r = kiln("build", "--root", ROOT, *INS, "-q", "--iidfile", iid, "--label", "org.example.k=v 1",
         "--platform", "linux/amd64", "--pull", "-o", f"type=oci,dest={out1}", app)
man1, cfg1 = read_image(out1) if r.returncode == 0 else ({}, {})
with open(os.path.join(out1, "index.json")) as f:
    digest1 = json.load(f)["manifests"][0]["digest"] if r.returncode == 0 else None
T.check("-q: stdout is the image digest alone, stderr is empty",
        r.returncode == 0 and r.stdout == f"{digest1}\n" and r.stderr == "", r.stdout + r.stderr[-1500:])
T.check("--iidfile: the same digest, written to the file",
        os.path.exists(iid) and open(iid).read() == digest1, digest1)
T.check("--label k=v: the image config carries the label",
        cfg1.get("config", {}).get("Labels", {}).get("org.example.k") == "v 1", cfg1.get("config"))
T.check("--platform linux/amd64: an amd64/linux image",
        cfg1.get("architecture") == "amd64" and cfg1.get("os") == "linux", cfg1.get("architecture"))
T.check("--pull: the build is on the base as pushed (its layers first)",
        [x["digest"] for x in man1.get("layers", [])][:len(one)] == one, man1)

two = push_base("two")
out2 = os.path.join(T.tmp, "out2")
r = kiln("build", "--root", ROOT, *INS, "-q", "--pull", "-o", f"type=oci,dest={out2}", app)
man2 = read_image(out2)[0] if r.returncode == 0 else {}
T.check("--pull after the tag was pushed again: the new base's layers, not the old",
        r.returncode == 0 and two != one
        and [x["digest"] for x in man2.get("layers", [])][:len(two)] == two, r.stderr[-1500:])

r = kiln("build", "--root", ROOT, "--platform", "linux/arm64", app)
T.check("--platform linux/arm64: refused, naming the platform and the one supported",
        r.returncode == 2 and r.stderr == "kiln build: only --platform linux/amd64 is supported, not "
        "'linux/arm64'\nTry 'kiln build -h'.\n", r.stderr)
T.done()
