#!/usr/bin/env python3
"""Provenance and referrers against a local docker-registry: a busybox base pushed there (by
skopeo), a git repository (file://) whose Dockerfile builds FROM it and COPY --from an oci:
layout. The in-toto SLSA v1 provenance lists in resolvedDependencies the source (git URL and
commit) and each base image as BuildKit writes it (pkg:docker purl + the sha256 the registry
serves); the metadata file's completion event names what each FROM resolved to. Then the
fallback referrers tag (REPO:sha256-HEX, docker-registry has no referrers API) is merged: an
--sbom push and a later --provenance push of the same image leave both listed, the same SBOM
pushed again is listed once, and a descriptor another tool put there stays. The provenance
passes the in-toto project's validator (validators_lib.py)."""
import hashlib
import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_json, write_tree  # noqa: E402

from kilntest import T, kiln, start_registry  # noqa: E402
from validators_lib import check_valid  # noqa: E402

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

repo = write_tree(os.path.join(T.tmp, "repo"), {
    "Dockerfile": f"FROM {reg}/base:1\nCOPY --from={BASE} /etc/passwd /passwd\nCOPY hello /hello\n",
    "hello": "hi\n"})
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
prov = read_json(os.path.join(out, "provenance.json"))
deps = prov.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
T.check("resolvedDependencies: the git source with its commit",
        {"uri": f"git+file://{repo}@{commit}", "digest": {"gitCommit": commit}} in deps, deps)
T.check("resolvedDependencies: the registry base as a pkg:docker purl with the digest the registry serves",
        {"uri": f"pkg:docker/{reg}/base@1?platform=linux%2Famd64",
         "digest": {"sha256": base_digest.split(":")[1]}} in deps, (base_digest, deps))
T.check("resolvedDependencies: the COPY --from oci: layout with its manifest digest",
        {"uri": BASE, "digest": {"sha256": layout_digest.split(":")[1]}} in deps, deps)
T.check("each base once (3 dependencies)", len(deps) == 3, deps)
check_valid(T, "in-toto", prov, "the provenance of the git build")
T.check("the FROM step's progress says what the base resolved to",
        f"resolved {reg}/base:1 to {base_digest}" in r.stderr, r.stderr[-2000:])
ev = read_json(meta).get("kiln.event", {})
# the same repository built as a local directory: its HEAD and origin (credentials redacted),
# as buildx records a context's git information
subprocess.run(["git", "-C", repo, "remote", "add", "origin",
                "https://ci-user:s3cr3t-origin-token@git.example.test/acme/app.git"], check=True)
out_dir = os.path.join(T.tmp, "out-dir")
r2 = kiln("build", "--root", ROOT, "--progress", "plain", "--provenance", "--insecure-registry", reg,
          "-o", f"type=local,dest={out_dir}", repo)
prov_dir = read_json(os.path.join(out_dir, "provenance.json"))
deps_dir = prov_dir.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
git_deps = [d for d in deps_dir if d.get("uri", "").startswith("git+")]
T.check("a local directory in a git working tree: its HEAD commit and origin URL in the provenance",
        r2.returncode == 0 and len(git_deps) == 1 and git_deps[0].get("digest") == {"gitCommit": commit}
        and "git.example.test/acme/app.git@" + commit in git_deps[0]["uri"], (r2.stderr[-800:], deps_dir))
T.check("the origin URL's credentials are in no document or output",
        "s3cr3t-origin-token" not in json.dumps(prov_dir) + r2.stdout + r2.stderr, git_deps)
T.check("kiln build <git URL>: the completion event names the commit's author and message",
        ev.get("source", {}).get("author") == "Ada Lovelace"
        and ev.get("source", {}).get("message") == "first build\n\nbody line"
        and ev.get("source", {}).get("commit") in (None, commit), ev.get("source"))
T.check("the completion event's base_images: reference and digest of each",
        ev.get("base_images") == [{"ref": f"{reg}/base:1", "digest": base_digest},
                                  {"ref": BASE, "digest": layout_digest}], ev.get("base_images"))

# --- the fallback referrers tag is merged, not replaced -----------------------------------------
ctx = write_tree(os.path.join(T.tmp, "ctx"), {
    "Dockerfile": f"FROM {reg}/base:1\nCOPY status /var/lib/dpkg/status\n",
    "status": "Package: busybox\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.35\n"})


def push(*flags):
    return kiln("build", "--root", ROOT, "--progress", "plain", "--insecure-registry", reg,
                "--source-date-epoch", "0", *flags, "-o", f"type=registry,name={reg}/app:v1", ctx)


def listed():
    sub = get("app", "manifests/v1")
    tag = "sha256-" + hashlib.sha256(sub).hexdigest()
    try:
        return tag, json.loads(get("app", "manifests/" + tag)).get("manifests", [])
    except ValueError:
        return tag, []


r = push("--sbom")
tag1, first = listed()
T.check("an --sbom push lists the SPDX referrer at the fallback tag",
        r.returncode == 0 and [m.get("artifactType") for m in first] == ["application/spdx+json"],
        r.stderr[-1500:] + str(first))
# another tool's referrer (a signature-like artifact) added to the tag's index by hand
empty = b"{}"
empty_d = "sha256:" + hashlib.sha256(empty).hexdigest()
loc = urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/app/blobs/uploads/", method="POST"),
                             timeout=30).headers["Location"]
urllib.request.urlopen(urllib.request.Request(
    loc + ("&" if "?" in loc else "?") + "digest=" + empty_d, data=empty, method="PUT",
    headers={"Content-Type": "application/octet-stream"}), timeout=30)
sub_body = get("app", "manifests/v1")
sig = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "artifactType": "application/vnd.example.signature",
                  "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_d, "size": 2},
                  "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_d, "size": 2}],
                  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "digest": "sha256:" + hashlib.sha256(sub_body).hexdigest(),
                              "size": len(sub_body)}}).encode()
sig_d = "sha256:" + hashlib.sha256(sig).hexdigest()
get("app", "manifests/" + sig_d, data=sig, ctype="application/vnd.oci.image.manifest.v1+json")
idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
       "manifests": first + [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sig_d,
                              "size": len(sig), "artifactType": "application/vnd.example.signature"}]}
get("app", "manifests/" + tag1, data=json.dumps(idx).encode(), ctype="application/vnd.oci.image.index.v1+json")

r = push("--provenance")
tag2, second = listed()
types = sorted(m.get("artifactType") for m in second)
T.check("a later --provenance push of the same image: SBOM, the other tool's referrer and the provenance "
        "all listed", r.returncode == 0 and tag2 == tag1
        and types == ["application/spdx+json", "application/vnd.example.signature",
                      "application/vnd.in-toto+json"], r.stderr[-1500:] + str(second))
r = push("--sbom")
tag3, third = listed()
T.check("the same SBOM pushed again is listed once (duplicates dropped), the rest kept",
        r.returncode == 0 and tag3 == tag1 and len(third) == 3 and len({m["digest"] for m in third}) == 3
        and sorted(m.get("artifactType") for m in third) == types, str(third))
arts = {}
for m in third:
    try:
        arts[m.get("artifactType")] = json.loads(get("app", "manifests/" + m["digest"]))
    except ValueError:
        arts[m.get("artifactType")] = {}
T.check("every listed referrer is served and names the image as its subject",
        len(arts) == 3 and all(a.get("subject", {}).get("digest") == "sha256:" + tag1[7:]
                               for a in arts.values()), arts)


def sig_manifest(note):
    """A signature-like artifact of the image (distinct per note), PUT by digest; its digest."""
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "artifactType": "application/vnd.example.signature",
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_d,
                                  "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_d,
                                   "size": 2}],
                       "annotations": {"note": note},
                       "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "digest": "sha256:" + tag1[7:], "size": len(sub_body)}}).encode()
    d = "sha256:" + hashlib.sha256(body).hexdigest()
    get("app", "manifests/" + d, data=body, ctype="application/vnd.oci.image.manifest.v1+json")
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(body),
            "artifactType": "application/vnd.example.signature"}


def put_index(descs):
    get("app", "manifests/" + tag1, data=json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descs}).encode(), ctype="application/vnd.oci.image.index.v1+json")


# a referrer the registry no longer has (deleted after it was listed) is dropped, not fatal
gone = sig_manifest("gone")
put_index(third + [gone])
urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/app/manifests/{gone['digest']}",
                                              method="DELETE"), timeout=30)
r = push("--sbom")
_, fourth = listed()
T.check("a listed referrer the registry deleted is dropped from the merged index; the rest kept",
        r.returncode == 0 and gone["digest"] not in [m["digest"] for m in fourth]
        and sorted(m["digest"] for m in fourth) == sorted(m["digest"] for m in third), r.stderr[-800:])
# a full index (256 listed, the SBOM not among them): the oldest listed is left out for it
sigs = [sig_manifest("n%d" % i) for i in range(257)]
put_index(sigs[:256])
r = push("--sbom")
_, full = listed()
T.check("a full index: the new SBOM added, the oldest referrer left out, 256 listed",
        r.returncode == 0 and len(full) == 256 and sigs[0]["digest"] not in [m["digest"] for m in full]
        and full[-1].get("artifactType") == "application/spdx+json"
        and [m["digest"] for m in full[:255]] == [m["digest"] for m in sigs[1:256]], r.stderr[-800:])
# an index listing more referrers than kiln merges: refused naming the tag and the cap, before
# fetching any of them
put_index(sigs)
r = push("--sbom")
T.check("a fallback tag listing more than 256 referrers: the push fails naming it, word for word",
        r.returncode != 0 and f"the referrers index {reg}/app:{tag1} lists more than 256 referrers"
        in r.stderr, r.stderr[-800:])
T.done()
