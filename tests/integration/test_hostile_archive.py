#!/usr/bin/env python3
"""Hostile archives given to kiln load: manifest.json paths that climb out ('..', absolute),
layer, config and manifest.json entries that are links (to the host marker, absolute or
relative), entries named to land outside, oversized manifest.json / index.json, an OCI
archive whose blobs are links. Each is refused with a message naming the entry and what is
wrong (or, for entries nothing reads, loaded without anything written outside the store);
the host marker is neither read (its text is in no blob of the store) nor written, and a
refused archive names nothing in the store."""
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import HostMarker, tar_write, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402

host = HostMarker(prefix="HOSTILE-ARCHIVE-")
ROOT = os.path.join(T.tmp, "root")
ctx = write_tree(os.path.join(T.tmp, "ctx"), {"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "hello\n"})
r = kiln("build", "--root", ROOT, "-q", "-t", "good:1", ctx)
assert r.returncode == 0, r.stderr
GOOD = os.path.join(T.tmp, "good.tar")
GOOD_OCI = os.path.join(T.tmp, "good-oci.tar")
assert kiln("save", "--root", ROOT, "-o", GOOD, "good:1").returncode == 0
assert kiln("save", "--root", ROOT, "--format", "oci", "-o", GOOD_OCI, "good:1").returncode == 0


def members(path):
    """[(TarInfo, bytes or None)] of an archive."""
    out = []
    with tarfile.open(path) as t:
        for m in t.getmembers():
            out.append((m, t.extractfile(m).read() if m.isfile() else None))
    return out


GOOD_M = members(GOOD)
MANIFEST = json.loads(next(d for m, d in GOOD_M if m.name == "manifest.json"))[0]
LAYER, CONFIG = MANIFEST["Layers"][0], MANIFEST["Config"]


def write(name, entries):
    """An archive of entries (kilnbuild.tar_write's kinds)."""
    path = os.path.join(T.tmp, name + ".tar")
    with open(path, "wb") as f:
        tar_write(f, entries)
    return path


def variant(name, manifest=None, replace=None, extra=()):
    """The good docker-archive with manifest.json's entry changed, entries replaced by
    name -> value (("sym", target) for a link), and extra entries added."""
    ents = []
    for m, d in GOOD_M:
        if not m.isfile():
            continue
        if m.name == "manifest.json" and manifest is not None:
            d = json.dumps([dict(MANIFEST, **manifest)]).encode()
        if replace and m.name in replace:
            d = replace[m.name]
        ents.append((m.name, d))
    return write(name, ents + list(extra))


def in_store(root):
    """True when the host marker's text is in a blob of root (it was read)."""
    blobs = os.path.join(root, "blobs", "sha256")
    for n in os.listdir(blobs) if os.path.isdir(blobs) else []:
        with open(os.path.join(blobs, n), "rb") as f:
            if host.mark.encode() in f.read():
                return True
    return False


def refused(what, path, message):
    root = os.path.join(T.tmp, "root-" + os.path.basename(path))
    r = kiln("load", "--root", root, "-i", path)
    names = kiln("images", "--root", root, "-q").stdout
    T.check(f"{what}: refused, naming it", r.returncode == 1 and r.stderr == f"kiln: {message}\n",
            r.stderr)
    T.check(f"{what}: the host marker neither read nor written, no name kept",
            host.untouched() and not in_store(root) and names == "", (names, host.state()))


layer_bytes = next(d for m, d in GOOD_M if m.name == LAYER)
p = variant("layers-dotdot", {"Layers": ["../host/secret"]}, extra=[("../host/secret", layer_bytes)])
refused("manifest.json Layers '../host/secret'", p,
        f"docker-archive {p}: manifest.json Layers[0] '../host/secret' is a '..' path, outside the archive")
p = variant("config-abs", {"Config": host.secret})
refused("manifest.json Config as an absolute host path", p,
        f"docker-archive {p}: manifest.json Config '{host.secret}' is an absolute path, outside the archive")
p = variant("layer-symlink-abs", replace={LAYER: ("sym", host.secret)})
refused("a layer entry linking to the host marker (absolute)", p,
        f"docker-archive {p}: layer {LAYER} links outside the archive")
p = variant("layer-symlink-rel", replace={LAYER: ("sym", "../../../../" + host.secret.lstrip("/"))})
refused("a layer entry linking out of the archive ('..')", p,
        f"docker-archive {p}: layer {LAYER} links outside the archive")
p = variant("config-symlink", replace={CONFIG: ("sym", host.secret)})
refused("the config entry a link to the host marker", p,
        f"docker-archive {p}: config {CONFIG} is not a regular file in the archive (a link?)")
p = variant("manifest-symlink", replace={"manifest.json": ("sym", host.secret)})
refused("manifest.json a link to the host marker", p,
        f"docker-archive {p}: {p}: manifest.json is not a regular file (a link?)")
p = variant("manifest-huge", replace={"manifest.json": json.dumps([MANIFEST]).encode() + b" " * (5 << 20)})
refused("manifest.json over 4 MiB", p,
        f"docker-archive {p}: archive entry manifest.json: data exceeds the limit of 4194304 bytes: "
        "No buffer space available")

p = variant("repotags-control", {"RepoTags": ["evil\nkiln: forged line:1"]})
refused("RepoTags with a newline (a forged log line)", p,
        f"docker-archive {p}: RepoTags[0] is not an image name (a string of printable ASCII)")

# OCI archives: an oversized index.json, blobs that are links to the host
oci_m = members(GOOD_OCI)
ents = [(m.name, d) for m, d in oci_m if m.isfile() and m.name != "index.json"]
p = write("oci-index-huge", ents + [("index.json", b'{"schemaVersion":2,"manifests":[]}' + b" " * (9 << 20))])
refused("an OCI archive's index.json over 8 MiB", p,
        f"resolve {p}: archive entry index.json: data exceeds the limit of 8388608 bytes: "
        "No buffer space available")
idx = next(d for m, d in oci_m if m.name == "index.json")
man_hex = json.loads(idx)["manifests"][0]["digest"].split(":")[1]
ents = [(m.name, ("sym", host.secret) if m.name.startswith("blobs/sha256/") and m.name[13:] != man_hex else d)
        for m, d in oci_m if m.isfile()]
p = write("oci-blob-symlinks", ents)
refused("an OCI archive whose config and layer are links to the host marker", p,
        f"resolve {p}: OCI layout {p}: blob sha256:{{}}: archive {p} has no JSON entry "
        f"blobs/sha256/{{}}: No such file or directory".replace("{}", json.loads(
            next(d for m, d in oci_m if m.name == "blobs/sha256/" + man_hex))["config"]["digest"][7:]))

# entries named to land outside: nothing is ever unpacked, so the good image loads and the
# host directory stays as it was
p = variant("entries-outside", extra=[("../../host/w/evil", b"x"), (host.w + "/evil2", b"y")])
root = os.path.join(T.tmp, "root-outside")
r = kiln("load", "--root", root, "-i", p)
T.check("entries named outside the archive: the image loads, nothing written outside",
        r.returncode == 0 and "good:1" in r.stdout and os.listdir(host.w) == [] and host.untouched(),
        r.stdout + r.stderr)
T.done()
