"""Validates an SPDX or in-toto document with the projects' own Python tools; run with the
python install.sh prints:

    validate.py spdx FILE...      SPDX 2.3 JSON: spdx-tools' parser, then its full validation
    validate.py in-toto FILE...   in-toto v1 statement with a SLSA v1 provenance predicate

Prints a JSON list with, per FILE, the list of its messages: empty when the document is valid.
Exits 0 when it could judge the documents (valid or not), 2 on bad usage."""
import json
import sys


def key_paths(value, prefix=""):
    """Every object key in value as a path (list indexes left out: order-independent)."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(prefix + "/" + k)
            out |= key_paths(v, prefix + "/" + k)
    elif isinstance(value, list):
        for v in value:
            out |= key_paths(v, prefix + "[]")
    return out


def spdx(path):
    from spdx_tools.spdx.jsonschema.document_converter import DocumentConverter
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.json.json_parser import parse_from_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    try:
        doc = parse_from_file(path)
    except SPDXParsingError as e:
        return ["parse: " + m for m in e.get_messages()]
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        return [f"parse: {type(e).__name__}: {e}"]
    msgs = [f"{m.validation_message} (element {m.context.spdx_id})"
            for m in validate_full_spdx_document(doc, spdx_version="SPDX-2.3")]
    # spdx-tools' parser drops fields its model does not know: a misspelt optional field
    # would pass unseen. Every field of the input must come back out of its model.
    with open(path) as f:
        raw = json.load(f)
    lost = key_paths(raw) - key_paths(DocumentConverter().convert(doc))
    msgs += [f"field unknown to SPDX 2.3 (spdx-tools' model drops it): {p}" for p in sorted(lost)]
    return msgs


def in_toto(path):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    with open(path) as f:
        raw = json.load(f)
    if not isinstance(raw, dict):
        return ["the statement is not a JSON object"]
    msgs = []
    try:
        pb = json_format.ParseDict(raw, statement_pb2.Statement(), ignore_unknown_fields=False)
        Statement.copy_from_pb(pb).validate()
    except (json_format.ParseError, ValueError, TypeError) as e:
        return [f"statement: {e}"]
    if pb.predicate_type != "https://slsa.dev/provenance/v1":
        msgs.append(f"predicateType {pb.predicate_type!r}, want https://slsa.dev/provenance/v1")
    try:
        prov = json_format.ParseDict(raw.get("predicate"), provenance_pb2.Provenance(),
                                     ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError) as e:
        return msgs + [f"SLSA v1 provenance: {e}"]
    # The Python bindings validate statements and resource descriptors only; these are the
    # SLSA v1 required fields their Go bindings' Provenance.Validate checks.
    bd, rd = prov.build_definition, prov.run_details
    if not prov.HasField("build_definition"):
        msgs.append("buildDefinition required")
    if not bd.build_type:
        msgs.append("buildDefinition.buildType required")
    if not bd.HasField("external_parameters"):
        msgs.append("buildDefinition.externalParameters required")
    if not prov.HasField("run_details"):
        msgs.append("runDetails required")
    if not rd.builder.id:
        msgs.append("runDetails.builder.id required")
    for where, descs in [("buildDefinition.resolvedDependencies", bd.resolved_dependencies),
                         ("runDetails.builder.builderDependencies", rd.builder.builder_dependencies),
                         ("runDetails.byproducts", rd.byproducts)]:
        for i, d in enumerate(descs):
            try:
                ResourceDescriptor.copy_from_pb(d).validate()
            except ValueError as e:
                msgs.append(f"{where}[{i}]: {e}")
    return msgs


def main(argv):
    kinds = {"spdx": spdx, "in-toto": in_toto}
    if len(argv) < 3 or argv[1] not in kinds:
        print("usage: validate.py spdx|in-toto FILE...", file=sys.stderr)
        return 2
    print(json.dumps([kinds[argv[1]](path) for path in argv[2:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
