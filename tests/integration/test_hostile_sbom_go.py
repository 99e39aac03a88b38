#!/usr/bin/env python3
"""Hostile Go build information given to kiln build --sbom: executables of the image (ELF
files carrying a .go.buildinfo blob, made here byte by byte) whose module lines forge SPDX
text with a control character, whose module text claims more than the 1 MiB cap, a blob in a
file that is not executable, and a link to a Go binary on the host. Only the well-formed
blob's packages are listed (a positive control); the host binary behind the link is neither
read nor written, and its module is in no document or output."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_json  # noqa: E402
from kilntest import T, kiln  # noqa: E402

MARK = "HOSTILE-GO-" + os.urandom(6).hex()
SENTINEL = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def go_binary(version, mod, claim=None):
    """An ELF-looking file with a Go 1.18+ build information blob at a 16-aligned offset;
    claim: the module text length written (default its real length)."""
    text = SENTINEL + mod + SENTINEL
    blob = (b"\xff Go buildinf:" + bytes([8, 2]) + b"\0" * 16 + uvarint(len(version)) + version
            + uvarint(claim if claim is not None else len(text)) + text)
    return b"\x7fELF" + b"\0" * 60 + blob + b"\0" * 64


def write(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


host_bin = os.path.join(T.tmp, "host", "app")
write(host_bin, go_binary(b"go1.21.0", f"path\t{MARK}/cmd\nmod\t{MARK}\tv6.6.6\t\n".encode()), 0o755)
st = os.stat(host_bin)
os.utime(host_bin, ns=(1_000_000_000, st.st_mtime_ns))
host_bytes = open(host_bin, "rb").read()
os.utime(host_bin, ns=(1_000_000_000, st.st_mtime_ns))

ROOT = os.path.join(T.tmp, "root")
BASE = make_base(ROOT)
ctx = os.path.join(T.tmp, "ctx")
write(os.path.join(ctx, "bin", "good"),
      go_binary(b"go1.22.7", b"path\texample.com/good\nmod\texample.com/good\tv1.2.3\t\n"), 0o755)
write(os.path.join(ctx, "bin", "forged"),
      go_binary(b"go1.99.1", b"mod\texample.com/forged\tv1.0.0\t\n"
                b"dep\tevil.example/x\x01\"}],\"injected\tv1.0.0\t\n"), 0o755)
write(os.path.join(ctx, "bin", "huge"),
      go_binary(b"go1.98.1", b"mod\texample.com/huge\tv1.0.0\t\n", claim=(1 << 20) + 1), 0o755)
write(os.path.join(ctx, "bin", "plain"),
      go_binary(b"go1.97.1", b"mod\texample.com/not-executable\tv1.0.0\t\n"), 0o644)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(f"FROM {BASE}\nCOPY bin /opt/bin\nRUN ln -s {host_bin} /opt/bin/hostlink\n")
out = os.path.join(T.tmp, "out")
r = kiln("build", "--root", ROOT, "--progress", "plain", "--sbom", "-o", f"type=local,dest={out}", ctx)
T.check("kiln build --sbom of an image with hostile Go binaries succeeds", r.returncode == 0,
        r.stderr[-1500:])
sbom = read_json(os.path.join(out, "sbom.spdx.json"))
purls = sorted(ref["referenceLocator"] for p in sbom.get("packages", [])
               for ref in p.get("externalRefs", []))
T.check("only the well-formed blob's packages: its Go release and module (positive control)",
        purls == ["pkg:golang/example.com/good@v1.2.3", "pkg:golang/stdlib@1.22.7"], purls)
text = open(os.path.join(out, "sbom.spdx.json")).read() if os.path.exists(
    os.path.join(out, "sbom.spdx.json")) else ""
T.check("a module line with a control character refuses its whole blob (no forged text)",
        "evil.example" not in text and "injected" not in text and "forged" not in text
        and "1.99.1" not in text, purls)
T.check("module text claimed over the 1 MiB cap: the blob skipped", "huge" not in text
        and "1.98.1" not in text, purls)
T.check("a blob in a file that is not executable is not read", "not-executable" not in text, purls)
T.check("the link to the host's Go binary is not followed: its module in no document or output",
        MARK not in text and MARK not in r.stdout + r.stderr, purls)
T.check("the host's Go binary is neither read nor written",
        os.stat(host_bin).st_atime_ns == 1_000_000_000 and open(host_bin, "rb").read() == host_bytes)
T.done()
