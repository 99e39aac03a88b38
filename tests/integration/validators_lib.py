"""The SPDX and in-toto projects' own validators for kiln's documents (tests/pyvalidators:
spdx-tools and in-toto-attestation, pinned, installed from PyPI into a venv cached under
/var/cache/kiln by install.sh). Like the AWS tests' fauxqs from npm, an install that fails
(PyPI unreachable) is a failed check, not a skip: the suite needs the registries anyway.

    check_valid(T, "spdx", doc, "the SBOM")       # the document passes, and broken copies fail
    check_valid(T, "in-toto", doc, "the provenance")
"""
import copy
import json
import os
import shutil
import subprocess
import tempfile

from kilntest import SRC

HERE = os.path.join(SRC, "tests", "pyvalidators")


def _pin(name):
    with open(os.path.join(HERE, "requirements.txt")) as f:
        return next((ln.split("==")[1].strip() for ln in f if ln.startswith(name + "==")), "?")


TOOLS = {"spdx": f"spdx-tools {_pin('spdx-tools')} (parse + validate_full_spdx_document)",
         "in-toto": f"in-toto-attestation {_pin('in-toto-attestation')}"
                    " (Statement + SLSA v1 Provenance, unknown fields refused)"}
_python = []


def validator_python(T):
    """The venv's python (installing it the first time), or None after a failed check."""
    if not _python:
        r = subprocess.run(["bash", os.path.join(HERE, "install.sh")], capture_output=True,
                           text=True, timeout=900)
        ok = r.returncode == 0 and r.stdout.strip() != ""
        T.check("the pinned SPDX and in-toto validators install from PyPI (tests/pyvalidators)",
                ok, r.stderr[-2000:])
        _python.append(r.stdout.strip() if ok else None)
    return _python[0]


def _broken(kind, doc):
    """Copies of doc, each with one defect and a word its validator's message must hold."""
    out = []
    if kind == "spdx":
        d = copy.deepcopy(doc)
        d["packages"][0]["SPDXID"] = "Image"  # no SPDXRef- prefix
        out.append(("a package SPDXID without SPDXRef-", d, 'must begin with "SPDXRef-"'))
        d = copy.deepcopy(doc)
        d["packages"][0]["licenceDeclared"] = d["packages"][0].pop("licenseDeclared", "MIT")
        out.append(("a misspelt package field", d, "/packages[]/licenceDeclared"))
    else:
        d = copy.deepcopy(doc)
        d["subject"] = [{"digest": {}}]
        out.append(("a subject with neither name, URI nor digest", d, "At least one of name, URI"))
        d = copy.deepcopy(doc)
        d["predicate"]["runDetails"]["buildr"] = d["predicate"]["runDetails"].pop("builder", {})
        out.append(("a misspelt predicate field", d, 'no field named "buildr"'))
        d = copy.deepcopy(doc)
        d["predicate"]["buildDefinition"].pop("buildType", None)
        out.append(("no buildDefinition.buildType", d, "buildType required"))
    return out


def check_valid(T, kind, doc, what):
    """Checks that doc (a parsed JSON document) passes the project's validator with no message,
    and that broken copies of it do not (so the check can fail)."""
    py = validator_python(T)
    if py is None:
        return
    try:
        broken = _broken(kind, doc)
    except (KeyError, IndexError, TypeError, AttributeError):
        broken = []  # not even the fields to break: the check of doc itself fails below
    tmp = tempfile.mkdtemp(prefix="validate-", dir=T.tmp)
    paths = []
    for i, d in enumerate([doc] + [b[1] for b in broken]):
        paths.append(os.path.join(tmp, f"{i}.json"))
        with open(paths[-1], "w") as f:
            json.dump(d, f)
    r = subprocess.run([py, os.path.join(HERE, "validate.py"), kind, *paths], capture_output=True,
                       text=True, timeout=300)
    shutil.rmtree(tmp)
    try:
        results = json.loads(r.stdout)
    except ValueError:
        results = None
    if not T.check(f"{what}: {TOOLS[kind]} ran", r.returncode == 0 and isinstance(results, list)
                   and len(results) == len(paths), r.stdout[-500:] + r.stderr[-2000:]):
        return
    T.check(f"{what} passes {TOOLS[kind]} with no message", results[0] == [], results[0])
    for (name, _, want), msgs in zip(broken, results[1:]):
        T.check(f"{what} with {name}: refused ({want})", any(want in m for m in msgs), msgs)
