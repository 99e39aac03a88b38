"""OCI image-spec conformance.

1. A small JSON-Schema (draft-04 subset) checker, written here with the
   standard library, plus the rules upstream's validator adds to the schemas
   (Env entries are NAME=value, descriptor data is padded base64, registered
   digest algorithms have fixed-length lowercase hex). It must itself accept
   every valid and reject every invalid case of the corpus.
2. kiln's own validator (`kiln inspect --validate-json MEDIATYPE FILE`)
   accepts every valid case and example and rejects every invalid case.
3. Documents kiln writes (the manifest kiln synthesises from a docker-archive;
   with `kiln import`, a whole layout) validate against the schemas.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import CORPORA, KILN, T  # noqa: E402

SPEC = os.path.join(CORPORA, "oci-image-spec")
SCHEMAS = os.path.join(SPEC, "schema")
BY_MEDIA_TYPE = {
    "application/vnd.oci.image.config.v1+json": "config-schema.json",
    "application/vnd.oci.descriptor.v1+json": "content-descriptor.json",
    "application/vnd.oci.image.index.v1+json": "image-index-schema.json",
    "application/vnd.oci.layout.header.v1+json": "image-layout-schema.json",
    "application/vnd.oci.image.manifest.v1+json": "image-manifest-schema.json",
}
DOCKER_TO_OCI = {
    "application/vnd.docker.distribution.manifest.list.v2+json": "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json": "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.container.image.v1+json": "application/vnd.oci.image.config.v1+json",
}
DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s\"<>]+$")


class Invalid(Exception):
    pass


class Checker:
    """Validates JSON values against the draft-04 keywords the OCI schemas use."""

    def __init__(self, schema_dir):
        self.dir = schema_dir
        self.cache = {}

    def load(self, name):
        if name not in self.cache:
            with open(os.path.join(self.dir, name)) as f:
                self.cache[name] = json.load(f)
        return self.cache[name]

    def resolve(self, ref, base):
        file, _, frag = ref.partition("#")
        doc = self.load(file) if file else self.load(base)
        base = file or base
        for part in [p for p in frag.split("/") if p]:
            doc = doc[part]
        return doc, base

    def check(self, v, s, base, path="$"):
        if "$ref" in s:
            sub, b = self.resolve(s["$ref"], base)
            return self.check(v, sub, b, path)
        t = s.get("type")
        if t is not None:
            types = t if isinstance(t, list) else [t]
            if not any(self.is_type(v, x) for x in types):
                raise Invalid(f"{path}: expected {t}")
        if "enum" in s and v not in s["enum"]:
            raise Invalid(f"{path}: not one of {s['enum']}")
        if "oneOf" in s:
            n = 0
            for sub in s["oneOf"]:
                try:
                    self.check(v, sub, base, path)
                    n += 1
                except Invalid:
                    pass
            if n != 1:
                raise Invalid(f"{path}: matches {n} of oneOf")
        if isinstance(v, str):
            if "pattern" in s and not re.search(s["pattern"], v):
                raise Invalid(f"{path}: does not match {s['pattern']}")
            fmt = s.get("format")
            if fmt == "date-time" and not DATE_TIME.match(v):
                raise Invalid(f"{path}: not a date-time")
            if fmt == "uri" and not URI.match(v):
                raise Invalid(f"{path}: not a URI")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in s and v < s["minimum"]:
                raise Invalid(f"{path}: below minimum")
            if "maximum" in s and v > s["maximum"]:
                raise Invalid(f"{path}: above maximum")
        if isinstance(v, list):
            if len(v) < s.get("minItems", 0):
                raise Invalid(f"{path}: fewer than {s['minItems']} items")
            if "items" in s:
                for i, e in enumerate(v):
                    self.check(e, s["items"], base, f"{path}[{i}]")
        if isinstance(v, dict):
            for k in s.get("required", []):
                if k not in v:
                    raise Invalid(f"{path}: missing {k}")
            props = s.get("properties", {})
            for k, e in v.items():
                if k in props:
                    self.check(e, props[k], base, f"{path}.{k}")
                elif "patternProperties" in s:
                    for pat, sub in s["patternProperties"].items():
                        if re.search(pat, k):
                            self.check(e, sub, base, f"{path}.{k}")
                elif s.get("additionalProperties") is False:
                    raise Invalid(f"{path}: unexpected {k}")
                elif isinstance(s.get("additionalProperties"), dict):
                    self.check(e, s["additionalProperties"], base, f"{path}.{k}")

    @staticmethod
    def is_type(v, t):
        return {
            "object": isinstance(v, dict),
            "array": isinstance(v, list),
            "string": isinstance(v, str),
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "boolean": isinstance(v, bool),
            "null": v is None,
        }[t]


def spec_rules(doc, media_type):
    """Rules upstream's Go validator adds on top of the JSON schemas."""
    def descriptor(d, where):
        if not isinstance(d, dict):
            return
        dg = d.get("digest")
        if isinstance(dg, str) and ":" in dg:
            alg, enc = dg.split(":", 1)
            want = {"sha256": 64, "sha512": 128}.get(alg)
            if want and not re.fullmatch("[a-f0-9]{%d}" % want, enc):
                raise Invalid(f"{where}: {alg} digest must be {want} lowercase hex")
        if "data" in d:
            try:
                base64.b64decode(d["data"], validate=True)
            except Exception:
                raise Invalid(f"{where}: data is not base64")

    if media_type.endswith("descriptor.v1+json"):
        descriptor(doc, "descriptor")
    if media_type.endswith("manifest.v1+json") and isinstance(doc, dict):
        descriptor(doc.get("config"), "config")
        for i, l in enumerate(doc.get("layers") or []):
            descriptor(l, f"layers[{i}]")
    if media_type.endswith("index.v1+json") and isinstance(doc, dict):
        for i, m in enumerate(doc.get("manifests") or []):
            descriptor(m, f"manifests[{i}]")
    if media_type.endswith("config.v1+json") and isinstance(doc, dict):
        for e in ((doc.get("config") or {}).get("Env") or []):
            if isinstance(e, str) and not re.match(r"^[^=]+=.*$", e):
                raise Invalid(f"Env entry {e!r} is not NAME=value")


CHECKER = Checker(SCHEMAS)


def schema_validate(text, media_type):
    """Returns None when valid, else the reason."""
    for d, o in DOCKER_TO_OCI.items():
        text = text.replace(d, o)
    try:
        doc = json.loads(text)
    except ValueError as e:
        return f"JSON: {e}"
    try:
        CHECKER.check(doc, CHECKER.load(BY_MEDIA_TYPE[media_type]), BY_MEDIA_TYPE[media_type])
        spec_rules(doc, media_type)
    except Invalid as e:
        return str(e)
    return None


def kiln_validate(path, media_type):
    p = subprocess.run([KILN, "inspect", "--validate-json", media_type, path],
                       capture_output=True, text=True)
    return p.returncode, p.stderr.strip()


def read_index(dirname):
    with open(os.path.join(dirname, "INDEX.tsv")) as f:
        lines = f.read().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, l.split("\t"))) for l in lines[1:] if l.strip()]


def main():
    if not os.path.isdir(SPEC):
        T.skip("oci-image-spec corpus", f"not found at {SPEC}")
        T.done()
    cases = read_index(os.path.join(SPEC, "schema-validation-cases"))
    examples = read_index(os.path.join(SPEC, "examples"))
    T.check("corpus has 71 validation cases and 10 examples", len(cases) == 71 and len(examples) == 10,
            f"{len(cases)} cases, {len(examples)} examples")

    # 1. the checker against the corpus
    wrong = []
    for c in cases:
        with open(os.path.join(SPEC, "schema-validation-cases", c["file"])) as f:
            why = schema_validate(f.read(), c["validated_as_mediatype"])
        if (why is None) != (c["expected"] == "valid"):
            wrong.append(f"{c['file']}: expected {c['expected']}, checker says {why or 'valid'}")
    for e in examples:
        with open(os.path.join(SPEC, "examples", e["file"])) as f:
            why = schema_validate(f.read(), e["mediatype"])
        if why is not None:
            wrong.append(f"example {e['file']}: {why}")
    T.check("the schema checker agrees with all 71 cases and 10 examples", not wrong, "\n".join(wrong))

    # 2. kiln's validator against the corpus
    for kind in ("valid", "invalid"):
        wrong = []
        for c in [c for c in cases if c["expected"] == kind]:
            rc, err = kiln_validate(os.path.join(SPEC, "schema-validation-cases", c["file"]),
                                    c["validated_as_mediatype"])
            if (rc == 0) != (kind == "valid") or rc not in (0, 1):
                wrong.append(f"{c['file']}: rc={rc} {err}")
            elif kind == "invalid" and not err.startswith("kiln: "):
                wrong.append(f"{c['file']}: no error message")
        n = len([c for c in cases if c["expected"] == kind])
        T.check(f"kiln {'accepts' if kind == 'valid' else 'rejects, with a message,'} all {n} {kind} cases",
                not wrong, "\n".join(wrong))
    wrong = [e["file"] for e in examples
             if kiln_validate(os.path.join(SPEC, "examples", e["file"]), e["mediatype"])[0] != 0]
    T.check("kiln accepts the 10 spec examples", not wrong, "\n".join(wrong))
    wrong = []
    oci_to_docker = {o: d for d, o in DOCKER_TO_OCI.items()}
    for c in [c for c in cases if c["file"].startswith("backwards_compatibility")]:
        docker_mt = oci_to_docker[c["validated_as_mediatype"]]
        rc, err = kiln_validate(os.path.join(SPEC, "schema-validation-cases", c["file"]), docker_mt)
        if rc != 0:
            wrong.append(f"{c['file']} as {docker_mt}: {err}")
    T.check("kiln reads the 4 Docker v2s2 list/manifest/config cases under their Docker media types",
            not wrong, "\n".join(wrong))

    # 3. documents kiln writes
    fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oci_fixture.py")
    lay = os.path.join(T.tmp, "fixture")
    subprocess.run([sys.executable, fixture, lay, "one"], check=True, capture_output=True)
    if shutil.which("skopeo"):
        arch = os.path.join(T.tmp, "fixture.tar")
        subprocess.run(["skopeo", "copy", "-q", f"oci:{lay}:one", f"docker-archive:{arch}:x/y:z"],
                       check=True, capture_output=True)
        p = subprocess.run([KILN, "inspect", f"docker-archive:{arch}"], capture_output=True, text=True)
        ok = p.returncode == 0
        why = p.stderr
        if ok:
            d = json.loads(p.stdout)
            why = schema_validate(json.dumps(d["manifest"]), "application/vnd.oci.image.manifest.v1+json") \
                or schema_validate(json.dumps(d["config"]), "application/vnd.oci.image.config.v1+json")
        T.check("the manifest kiln synthesises for a docker-archive validates against the schema",
                ok and why is None, why)
    else:
        T.skip("kiln-synthesised manifest validates", "skopeo not installed")

    has_import = subprocess.run([KILN, "import", "-h"], capture_output=True).returncode == 0
    if has_import:
        root = os.path.join(T.tmp, "rootfs")
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(root, "etc", "hello"), "w") as f:
            f.write("hi\n")
        out = os.path.join(T.tmp, "kiln-layout")
        p = subprocess.run([KILN, "import", root, "-t", "example.com/schema:v1", "--output",
                            f"type=oci,dest={out}", "--cmd", '["/bin/sh"]', "--env", "A=1",
                            "--label", "k=v", "--root", os.path.join(T.tmp, "store")],
                           capture_output=True, text=True)
        wrong = [] if p.returncode == 0 else [p.stderr]
        if p.returncode == 0:
            def blob(desc):
                with open(os.path.join(out, "blobs", "sha256", desc["digest"][7:])) as f:
                    return f.read()
            with open(os.path.join(out, "oci-layout")) as f:
                hdr = f.read()
            with open(os.path.join(out, "index.json")) as f:
                idx = f.read()
            docs = [(hdr, "application/vnd.oci.layout.header.v1+json"),
                    (idx, "application/vnd.oci.image.index.v1+json")]
            for m in json.loads(idx)["manifests"]:
                man = blob(m)
                docs.append((man, "application/vnd.oci.image.manifest.v1+json"))
                docs.append((blob(json.loads(man)["config"]), "application/vnd.oci.image.config.v1+json"))
            for text, mt in docs:
                why = schema_validate(text, mt)
                if why:
                    wrong.append(f"{mt}: {why}")
        T.check("oci-layout, index.json, manifest and config written by kiln import validate", not wrong,
                "\n".join(wrong))
    else:
        T.skip("documents written by kiln import validate", "kiln import not built")
    T.done()


main()
