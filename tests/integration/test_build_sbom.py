#!/usr/bin/env python3
"""kiln build --sbom / --provenance on one real build of a busybox image holding a dpkg status,
an installed npm package and a package-lock: the SPDX 2.3 document and the in-toto SLSA v1
statement written inside a type=local dest and beside a type=oci one; the packages found; a
credential-looking build arg's value in neither document nor the output (the image's links
to host files: test_hostile_sbom.py); bad flag values refused by name; the same build pushed
to docker-registry: both documents attached as OCI 1.1 referrers under the fallback tag sha256-HEX (subject the image), readable over HTTP and by skopeo.
Validated by the SPDX and in-toto projects' own Python tools (spdx-tools, in-toto-attestation:
validators_lib.py, installed from PyPI), and against the JSON schemas when ../shared/corpora
has them (else those two checks are skipped)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_json, write_tree  # noqa: E402
import subprocess  # noqa: E402
import urllib.request  # noqa: E402

from kilntest import T, kiln, start_registry  # noqa: E402
from validators_lib import check_valid  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
BASE = make_base(ROOT)
SECRET = "s3cr3t-npm-token-value"

STATUS = """Package: busybox
Status: install ok installed
Architecture: amd64
Version: 1:1.35.0-4+b3

Package: gone
Status: deinstall ok config-files
Version: 1.0
"""
ctx = write_tree(os.path.join(T.tmp, "ctx"), {
    "Dockerfile": f"""FROM {BASE}
ARG NPM_TOKEN
ARG MODE
COPY status /var/lib/dpkg/status
COPY node_modules /app/node_modules
COPY package-lock.json /app/package-lock.json
""",
    "status": STATUS,
    "node_modules/left-pad/package.json": '{"name":"left-pad","version":"1.3.0","license":"WTFPL"}',
    "package-lock.json": json.dumps({"lockfileVersion": 3, "packages": {
        "": {"name": "app"}, "node_modules/left-pad": {"version": "1.3.0"},
        "node_modules/ms": {"version": "2.1.3", "license": "MIT"}}}),
})
out = os.path.join(T.tmp, "out")
layout = os.path.join(T.tmp, "layout")
r = kiln("build", "--root", ROOT, "--progress", "plain", "--sbom", "--provenance=mode=max",
         "--build-arg", f"NPM_TOKEN={SECRET}", "--build-arg", "MODE=prod",
         "-o", f"type=local,dest={out}", "-o", f"type=oci,dest={layout}", ctx)
T.check("kiln build --sbom --provenance succeeds", r.returncode == 0, r.stderr[-1500:])


sbom = read_json(os.path.join(out, "sbom.spdx.json"))
prov = read_json(os.path.join(out, "provenance.json"))
T.check("the SPDX document inside the local dest: spdxVersion SPDX-2.3",
        sbom.get("spdxVersion") == "SPDX-2.3" and sbom.get("dataLicense") == "CC0-1.0", str(sbom)[:500])
purls = sorted(ref["referenceLocator"] for p in sbom.get("packages", [])
               for ref in p.get("externalRefs", []))
T.check("the packages of the dpkg status, node_modules and the package-lock, once each",
        purls == ["pkg:deb/debian/busybox@1%3A1.35.0-4+b3?arch=amd64", "pkg:npm/left-pad@1.3.0",
                  "pkg:npm/ms@2.1.3"], purls)
T.check("the provenance: an in-toto v1 statement with a SLSA v1 predicate",
        prov.get("_type") == "https://in-toto.io/Statement/v1"
        and prov.get("predicateType") == "https://slsa.dev/provenance/v1", str(prov)[:500])
subject = (prov.get("subject") or [{}])[0].get("digest", {}).get("sha256", "")
with open(os.path.join(layout, "index.json")) as f:
    layout_digest = json.load(f)["manifests"][0]["digest"]
T.check("its subject is the image manifest", "sha256:" + subject == layout_digest,
        (subject, layout_digest))
params = prov.get("predicate", {}).get("buildDefinition", {}).get("externalParameters", {})
T.check("the build args: MODE with its value, NPM_TOKEN by name only",
        params.get("args") == {"MODE": "prod"} and params.get("argsRedacted") == ["NPM_TOKEN"], params)
everything = json.dumps(sbom) + json.dumps(prov) + r.stdout + r.stderr
T.check("the secret build arg's value is in no document and no output", SECRET not in everything)
T.check("the builder is kiln with its version",
        prov.get("predicate", {}).get("runDetails", {}).get("builder", {}).get("id", "")
        .startswith("https://kiln.dev/kiln@"), prov.get("predicate", {}).get("runDetails"))
T.check("beside the OCI layout: layout.sbom.spdx.json and layout.provenance.json",
        read_json(layout + ".sbom.spdx.json") == sbom and read_json(layout + ".provenance.json") == prov)

check_valid(T, "spdx", sbom, "the SBOM")
check_valid(T, "in-toto", prov, "the provenance")

corpora = os.environ.get("KILN_CORPORA", "")
schemas = {"SPDX 2.3": os.path.join(corpora, "spdx", "spdx-schema-v2.3.json"),
           "in-toto statement": os.path.join(corpora, "in-toto", "statement.json")}
for what, path in schemas.items():
    if not corpora or not os.path.exists(path):
        T.skip(f"{what} JSON schema validation",
               f"no {what} schema in the corpora ({path})" if corpora
               else "../shared/corpora is absent (KILN_CORPORA unset)")
        continue
    import jsonschema  # noqa: E402
    with open(path) as f:
        schema = json.load(f)
    doc = sbom if what.startswith("SPDX") else prov
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    T.check(f"the document validates against the {what} schema", not errors, errors[:5])

# the same build pushed: the documents attached as OCI 1.1 referrers, through the fallback
# tag scheme (docker-registry 2.8 has no referrers API)
reg = "127.0.0.1:%d" % start_registry()
r = kiln("build", "--root", ROOT, "--progress", "plain", "--sbom", "--provenance",
         "--insecure-registry", reg, "--build-arg", f"NPM_TOKEN={SECRET}",
         "-o", f"type=registry,name={reg}/app:v1", ctx)
T.check("kiln build --sbom --provenance pushes", r.returncode == 0, r.stderr[-1500:])
OCI_ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


def get(path, accept=OCI_ACCEPT):
    req = urllib.request.Request(f"http://{reg}/v2/app/{path}", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()
    except OSError as e:
        return str(e).encode()


subject = get("manifests/v1")
import hashlib  # noqa: E402
sub_digest = "sha256:" + hashlib.sha256(subject).hexdigest()
try:
    idx = json.loads(get("manifests/" + sub_digest.replace(":", "-")))
except ValueError:
    idx = {}
types = sorted(m.get("artifactType", "") for m in idx.get("manifests", []))
T.check("the fallback tag sha256-HEX lists an SPDX and an in-toto referrer",
        types == ["application/spdx+json", "application/vnd.in-toto+json"], idx)
docs = {}
for m in idx.get("manifests", []):
    try:
        art = json.loads(get("manifests/" + m["digest"]))
        docs[m.get("artifactType")] = (art, json.loads(get("blobs/" + art["layers"][0]["digest"], "*/*")))
    except (ValueError, KeyError, IndexError) as e:
        docs[m.get("artifactType")] = ({}, {"error": str(e)})
T.check("each referrer's subject is the pushed image",
        len(docs) == 2 and all(a.get("subject", {}).get("digest") == sub_digest for a, _ in docs.values()),
        [a.get("subject") for a, _ in docs.values()])
spdx_doc = docs.get("application/spdx+json", ({}, {}))[1]
prov_doc = docs.get("application/vnd.in-toto+json", ({}, {}))[1]
T.check("the SPDX referrer: spdxVersion SPDX-2.3 with the image's packages",
        spdx_doc.get("spdxVersion") == "SPDX-2.3" and "pkg:npm/left-pad@1.3.0" in json.dumps(spdx_doc),
        str(spdx_doc)[:300])
T.check("the in-toto referrer: SLSA v1, without the secret build arg's value",
        prov_doc.get("predicateType") == "https://slsa.dev/provenance/v1"
        and SECRET not in json.dumps(prov_doc), str(prov_doc)[:300])
sk = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                     f"docker://{reg}/app:{sub_digest.replace(':', '-')}"], capture_output=True, text=True)
T.check("skopeo reads the referrers index at the fallback tag",
        sk.returncode == 0 and "application/spdx+json" in sk.stdout, sk.stderr[-400:])

for flag, msg in [("--sbom=maybe", "--sbom=maybe: want true or false"),
                  ("--provenance=mode=all",
                   "--provenance=mode=all: want true or false, mode=min or mode=max")]:
    r = kiln("build", "--root", ROOT, flag, ctx)
    T.check(f"{flag}: refused naming it", r.returncode == 2 and r.stderr.startswith(f"kiln build: {msg}\n"),
            r.stderr[-400:])
T.done()
