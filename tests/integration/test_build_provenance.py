#!/usr/bin/env python3
"""Provenance and referrers against a local docker-registry: a busybox base pushed there (by
skopeo), a git repository (file://) whose Dockerfile builds FROM it and COPY --from an oci:
layout. The in-toto SLSA v1 provenance lists in resolvedDependencies the source (git URL and
commit) and each base image as BuildKit writes it (pkg:docker purl + the sha256 the registry
serves); the metadata file's completion event names what each FROM resolved to. Then the
fallback referrers tag (REPO:sha256-HEX, docker-registry has no referrers API) is merged: an
--sbom push and a later --provenance push of the same image leave both listed, the same SBOM
pushed again is listed once, and a descriptor another tool put there stays."""
import hashlib
import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base  # noqa: E402

from kilntest import T, kiln, start_registry  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
BASE = make_base(ROOT)  # oci:DIR:1
reg = "127.0.0.1:%d" % start_registry()
sk = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", BASE, f"docker://{reg}/base:1"],
                    capture_output=True, text=True)
T.check("skopeo pushes the busybox base to docker-registry", sk.returncode == 0, sk.stderr[-500:])
OCI_ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


def get(repo, path, accept=OCI_ACCEPT, data=None, ctype=None):
    h = {"Accept": accept}
    if ctype:
        h["Content-Type"] = ctype
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/{path}", headers=h, data=data,
                                 method="PUT" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()
    except OSError as e:
        return str(e).encode()


base_digest = "sha256:" + hashlib.sha256(get("base", "manifests/1")).hexdigest()
with open(os.path.join(BASE[4:-2], "index.json")) as f:
    layout_digest = json.load(f)["manifests"][0]["digest"]

repo = os.path.join(T.tmp, "repo")
os.makedirs(repo)
with open(os.path.join(repo, "Dockerfile"), "w") as f:
    f.write(f"FROM {reg}/base:1\nCOPY --from={BASE} /etc/passwd /passwd\nCOPY hello /hello\n")
with open(os.path.join(repo, "hello"), "w") as f:
    f.write("hi\n")
g = ["git", "-C", repo, "-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(g + ["add", "-A"], check=True)
subprocess.run(g + ["commit", "-q", "-m", "first build\n\nbody line"], check=True)
commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

out = os.path.join(T.tmp, "out")
meta = os.path.join(T.tmp, "meta.json")
r = kiln("build", "--root", ROOT, "--progress", "plain", "--provenance", "--insecure-registry", reg,
         "--metadata-file", meta, "-o", f"type=local,dest={out}", "file://" + repo)
T.check("kiln build --provenance of a git source FROM a registry base succeeds", r.returncode == 0,
        r.stderr[-2000:])
try:
    with open(os.path.join(out, "provenance.json")) as f:
        prov = json.load(f)
except (OSError, ValueError) as e:
    prov = {"error": str(e)}
deps = prov.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
T.check("resolvedDependencies: the git source with its commit",
        {"uri": f"git+file://{repo}@{commit}", "digest": {"gitCommit": commit}} in deps, deps)
T.check("resolvedDependencies: the registry base as a pkg:docker purl with the digest the registry serves",
        {"uri": f"pkg:docker/{reg}/base@1?platform=linux%2Famd64",
         "digest": {"sha256": base_digest.split(":")[1]}} in deps, (base_digest, deps))
T.check("resolvedDependencies: the COPY --from oci: layout with its manifest digest",
        {"uri": BASE, "digest": {"sha256": layout_digest.split(":")[1]}} in deps, deps)
T.check("each base once (3 dependencies)", len(deps) == 3, deps)
T.check("the FROM step's progress says what the base resolved to",
        f"resolved {reg}/base:1 to {base_digest}" in r.stderr, r.stderr[-2000:])
try:
    with open(meta) as f:
        ev = json.load(f).get("kiln.event", {})
except (OSError, ValueError) as e:
    ev = {"error": str(e)}
T.check("the completion event's base_images: reference and digest of each",
        ev.get("base_images") == [{"ref": f"{reg}/base:1", "digest": base_digest},
                                  {"ref": BASE, "digest": layout_digest}], ev.get("base_images"))

T.done()
