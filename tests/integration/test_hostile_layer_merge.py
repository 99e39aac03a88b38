"""Hostile layer tars for the parallel merge of `kiln pull -o type=local` (oci/unpack_merge):
later layers are unpacked into directories of their own and merged in order. Each image is
pushed to a loopback docker-registry, pulled that way, and also applied layer by layer in
place by `kiln store add` (oci/additional_store_add): the two trees must be the same, file by
file (type, mode, content, link target). The shapes whose result depends on the tree below:
`dir/x` before `dir/` where dir is a lower layer's link, a whiteout and its same-named entry in
one layer (both orders: the whiteout hides the lower layers only), directories implied through
a link of the same layer, opaque directories after their own entries or through a lower link,
a layer replacing its own directory by a file and back, a layer's small files (made by writer
threads) met by its own later entries (the same path again and through its own link, a file
replaced by a directory and back, a hardlink to it), an opaque directory and a whiteout over
trees 1,000 levels deep (under the usual 1024 open files: the walk keeps a bounded number). Links of one layer to a host
directory (absolute, and by ..) with the next layers' files, whiteouts, opaque directories
and hardlinks through them: every path lands inside the root, the host's markers are neither
read nor written."""
import os
import re
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.setrecursionlimit(10000)  # shutil.rmtree of the 1,000-deep trees at exit recurses
from kilntest import T, kiln, start_registry  # noqa: E402
from registry_fixtures import layout, tar_of  # noqa: E402

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost"})
MARK = b"KILN-LAYER-MERGE-HOST-MARK"
EVIL = b"KILN-LAYER-MERGE-WRITTEN"
REG = "127.0.0.1:%d" % start_registry()
STORE = os.path.join(T.tmp, "store")
OUT = os.path.join(T.tmp, "out")
os.makedirs(OUT)
# host directories with a marker that the layers' links point at
HOST = os.path.join(T.tmp, "hostdir")
HOST2 = os.path.join(T.tmp, "hostdir2")
for h in (HOST, HOST2):
    os.makedirs(h)
    with open(os.path.join(h, "marker"), "wb") as f:
        f.write(MARK)
UP = "../" * 12  # out of the root by .., as far as any temp dir goes


def mirror_dirs(path):
    """The directory entries that make path (a host path) exist inside the root."""
    comps = path.strip("/").split("/")
    return [("/".join(comps[:k + 1]), "dir") for k in range(len(comps))]


def read(path):
    """The file's bytes; None when it cannot be read (a check then fails, the others still run)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def ls(*path):
    """The sorted names in a directory; None when it cannot be listed."""
    try:
        return sorted(os.listdir(os.path.join(*path)))
    except OSError:
        return None


def listing(root):
    """Every path under root (links not followed): type, permission bits, content or target.
    Walked with a list, not os.walk (recursive: deeper than Python's recursion limit)."""
    out = {"(missing)": root} if not os.path.isdir(root) else {}
    todo = [root] if os.path.isdir(root) else []
    while todo:
        top = todo.pop()
        for n in sorted(os.listdir(top)):
            p = os.path.join(top, n)
            st = os.lstat(p)
            what = os.readlink(p) if os.path.islink(p) else read(p) if os.path.isfile(p) else None
            out[os.path.relpath(p, root)] = (st.st_mode, what)
            if os.path.isdir(p) and not os.path.islink(p):
                todo.append(p)
    return out


def stat(*path):
    """os.stat, or an all-zero result when the path is missing."""
    try:
        return os.stat(os.path.join(*path))
    except OSError:
        return os.stat_result((0,) * 10)


def host_untouched():
    return all(ls(h) == ["marker"] and read(os.path.join(h, "marker")) == MARK for h in (HOST, HOST2))


def both(name, layers):
    """Pushes an image of layers; pulls it (merged) and adds it to a store (in place).
    Returns (pull process, its tree, store add process, its tree)."""
    lay = os.path.join(T.tmp, "layout-" + name)
    layout(lay, [tar_of(entries) for entries in layers])
    ref = "%s/t/%s:v1" % (REG, name)
    p = kiln("push", "--root", os.path.join(T.tmp, "s0"), "--insecure-registry", REG, "oci:%s:v1" % lay, ref)
    T.check("setup: push %s" % name, p.returncode == 0, p.stderr)
    dest = os.path.join(OUT, name)
    pull = kiln("pull", "--root", os.path.join(T.tmp, "root-" + name), "--insecure-registry", REG,
                "-o", "type=local,dest=" + dest, ref)
    add = kiln("store", "add", "--root", os.path.join(T.tmp, "root-" + name), "--insecure-registry", REG,
               STORE, ref)
    m = re.match(r"sha256:([0-9a-f]{64}) ", add.stdout)
    return pull, dest, add, os.path.join(STORE, "chains", m.group(1) if m else "none")


def same(name, layers):
    """both(), checked to succeed with the same tree; returns the pulled tree's path."""
    pull, dest, add, chain = both(name, layers)
    T.check("%s: the pull (layers merged) and the store add (in place) succeed" % name,
            pull.returncode == 0 and add.returncode == 0, pull.stderr + add.stderr)
    a, b = listing(dest), listing(chain)
    T.check("%s: the merged tree is the tree applied in place" % name, a == b,
            sorted(set(a.items()) ^ set(b.items()), key=str)[:12])
    return dest


# --- links of layer 1 to a host dir (absolute, by ..) and layer 2's files through them ---
comps = HOST.strip("/").split("/")
d = same("links", [
    mirror_dirs(HOST) +  # HOST inside the root
    [("esc", ("sym", HOST)), ("up", ("sym", UP)), ("lnk", ("sym", HOST)), ("usr", "dir"), ("usr/lib", "dir"),
     ("lib", ("sym", "usr/lib")), ("keep", ("dir", 0o700)), ("keep/a", b"a\n"),
     ("shared", b"linked from layer 2\n"), ("dropdir", "dir"), ("dropdir/x", b"x\n")],
    [("esc/marker", EVIL), ("up/marker2", EVIL), ("lnk", ("dir", 0o750)), ("lnk/inside", b"in\n"),
     ("lib/libz.so", b"z\n"), ("keep/b", b"b\n"), ("hard", ("link", "shared")),
     ("mid", b"from layer 2\n"), (".wh.dropdir", b"")],
    [(".wh.mid", b""), ("keep", ("dir", 0o711)), ("keep/c", b"c\n"), ("rd", ("link", "esc/marker"))]])
inroot = os.path.join(d, *comps)
T.check("links of layer 1 to a host path (absolute, by ..) lead inside the root for layer 2's files",
        read(os.path.join(inroot, "marker")) == EVIL and read(os.path.join(d, "marker2")) == EVIL)
T.check("a hardlink through a link to the host path links the file inside the root (the host's is not read)",
        read(os.path.join(d, "rd")) == EVIL and
        stat(d, "rd").st_ino == stat(inroot, "marker").st_ino)
T.check("links: the host directory is neither read through nor written (marker and listing unchanged)",
        host_untouched())
T.check("layer 2's directory entry replaces layer 1's link of that name (its own mode)",
        not os.path.islink(os.path.join(d, "lnk")) and stat(d, "lnk").st_mode & 0o7777 == 0o750
        and read(os.path.join(d, "lnk", "inside")) == b"in\n")
T.check("a file under a directory layer 2 only implies goes through layer 1's link (lib -> usr/lib)",
        os.path.islink(os.path.join(d, "lib")) and read(os.path.join(d, "usr", "lib", "libz.so")) == b"z\n")
T.check("a hardlink in layer 2 to layer 1's file shares its inode",
        stat(d, "hard").st_ino == stat(d, "shared").st_ino)
T.check("a whiteout in layer 2 removes layer 1's directory; one in layer 3 removes layer 2's file",
        not os.path.lexists(os.path.join(d, "dropdir")) and not os.path.lexists(os.path.join(d, "mid")))
st = stat(d, "keep")
T.check("a directory in three layers: every layer's files, the last directory entry's mode and mtime",
        ls(d, "keep") == ["a", "b", "c"] and st.st_mode & 0o7777 == 0o711 and
        st.st_mtime == 1700000000, (oct(st.st_mode), st.st_mtime))

# --- the odd shapes over links to the host (every layer its own shape) ---
in1, in2 = HOST.strip("/"), HOST2.strip("/")
d = same("host-shapes", [
    mirror_dirs(HOST) + mirror_dirs(HOST2) +
    [(in1 + "/marker", b"decoy"), (in2 + "/marker", b"decoy2"), ("dir", ("sym", HOST)), ("etc", ("sym", HOST)),
     ("dir2", ("sym", UP + in2))],
    [("dir/x", EVIL), ("dir", "dir")],                           # dir/x before dir/ over a link
    [("hl", ("sym", HOST)), ("hl/new/z", EVIL)],                  # implied dirs through its own link
    [("etc", "dir"), ("etc/.wh.marker", b""), ("etc/bar", b"b")],  # a real layer's shape over a link
    [("dir2/.wh..wh..opq", b""), ("dir2/n", EVIL)]])              # an opaque dir through a link by ..
T.check("dir/x before dir/ (dir a link to a host path): x inside the root, dir a new directory without it",
        read(os.path.join(d, in1, "x")) == EVIL and ls(d, "dir") == [])
T.check("directories implied through a layer's own link to a host path are made inside the root",
        read(os.path.join(d, in1, "new", "z")) == EVIL and os.path.islink(os.path.join(d, "hl")))
T.check("a whiteout under a directory entry that replaced a link removes nothing where the link led",
        read(os.path.join(d, in1, "marker")) == b"decoy" and read(os.path.join(d, "etc", "bar")) == b"b")
T.check("an opaque directory through a link by .. empties the directory inside the root",
        ls(d, in2) == ["n"])
T.check("host shapes: the host directories are neither read nor written", host_untouched())

# --- a whiteout and a same-named entry in one layer, both orders ---
d = same("same-name", [
    [("foo", b"lower"), ("d", "dir"), ("d/old", b"o"), ("d/sub", "dir"), ("d/sub/deep", b"o")],
    [(".wh.foo", b""), ("foo", b"mine"), (".wh.d", b""), ("d", "dir"), ("d/new", b"n")],
    [("foo", b"mine3"), (".wh.foo", b""), ("d/sub/m", b"m"), (".wh.d", b"")]])
T.check("a whiteout before its same-named entry: the layer's entry", read(os.path.join(d, "foo")) == b"mine3")
T.check("a whiteout after the layer's own entries hides only the lower layers' (OCI: same layer not hidden)",
        ls(d, "d") == ["sub"] and ls(d, "d", "sub") == ["m"])

# --- directories implied through a link of the same layer ---
d = same("own-link", [
    [("d", "dir"), ("d/sub", ("sym", "/target")), ("target", "dir"), ("e", "dir"), ("e/sub", ("dir", 0o700)),
     ("e/sub/old", b"o")],
    [("d", "dir"), ("l", ("sym", "d")), ("l/sub/y", b"y")],
    [("e", "dir"), ("m", ("sym", "/e")), ("m/sub/y2", b"y")]])
T.check("implied through a layer's link onto a lower link: where that link leads",
        read(os.path.join(d, "target", "y")) == b"y" and os.path.islink(os.path.join(d, "d", "sub")))
T.check("implied through a layer's link onto a lower directory: its mode kept, both layers' files",
        stat(d, "e", "sub").st_mode & 0o7777 == 0o700 and
        ls(d, "e", "sub") == ["old", "y2"])

# --- opaque directories ---
d = same("opaque", [
    [("real", "dir"), ("real/keep", b"k"), ("d", ("sym", "real")), ("o", "dir"), ("o/old", b"o"),
     ("o/sub", "dir"), ("o/sub/deep", b"d")],
    [("d", "dir"), ("d/.wh..wh..opq", b""), ("d/new", b"n"), ("o", "dir"), ("o/.wh..wh..opq", b""),
     ("o/new", b"n")],
    [("o/n3", b"3"), ("o/sub/m", b"m"), ("o/.wh..wh..opq", b"")]])
T.check("an opaque directory after its own directory entry over a link: the link's target untouched",
        ls(d, "real") == ["keep"] and ls(d, "d") == ["new"])
T.check("an opaque directory after the layer's own entries keeps them, hides the lower layers'",
        ls(d, "o") == ["n3", "sub"] and
        ls(d, "o", "sub") == ["m"])

# --- a layer replacing its own directory by a file and back ---
d = same("replace", [
    [("d", "dir"), ("d/old", b"o"), ("g", "dir"), ("g/old", b"o")],
    [("d", "dir"), ("d/x", b"x"), ("d", b"file"), ("d", "dir"), ("d/y", b"y")],
    [("g", b"file"), ("g", "dir"), ("g/y", b"y")]])
T.check("a directory replaced by a file and back in one layer: only what came after",
        ls(d, "d") == ["y"] and ls(d, "g") == ["y"])

# --- an opaque directory and a whiteout over trees 1,000 levels deep, under 1024 open files ---
DEEP = "/".join(["d"] * 1000)  # 2,000 bytes: well inside the unpacker's PATH_MAX
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))  # kiln inherits half the usual limit
try:
    d = same("deep", [
        [("deep/%s/old" % DEEP, b"o"), ("deep/%s/sub/old2" % DEEP, b"o"), ("gone/%s/x" % DEEP, b"x"),
         ("keep/%s/y" % DEEP, b"y")],
        [("deep/%s/new" % DEEP, b"n"), ("deep/.wh..wh..opq", b""), ("gone/.wh..wh..opq", b""),
         ("keep/%s/.wh.y" % DEEP, b""), ("keep/%s/z" % DEEP, b"z")]])
finally:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
T.check("an opaque directory over the layer's own tree 1,000 deep: its file kept, the lower layer's gone",
        ls(d, "deep", DEEP) == ["new"])
T.check("an opaque directory over a lower tree 1,000 deep empties it; a whiteout at the bottom of one removes "
        "the file", ls(d, "gone") == [] and ls(d, "keep", DEEP) == ["z"])

# --- a layer's small files, made by writer threads, met by its own later entries ---
def queued(tag):
    return mirror_dirs(HOST) + [("real", "dir"), ("real/f", b"first " + tag), ("alias", ("sym", "real")),
            ("alias/f", b"second " + tag), ("alias/g", b"g"), ("esc", ("sym", HOST)), ("esc/new", EVIL),
            ("x", b"file"), ("x", "dir"), ("x/y", b"y " + tag), ("z", "dir"), ("z/w", b"w"),
            ("z", b"now a file " + tag), ("h", b"data " + tag), ("h2", ("link", "h")),
            ("m", b"1"), ("m", b"2 " + tag), ("late/a", b"a"), ("late", ("dir", 0o750))] + \
        [("n/p%d/f%d" % (i // 20, i), b"%d" % i) for i in range(400)]


d = same("queued", [queued(b"L0"), queued(b"L1")])
T.check("queued files met by later entries of their layer: the last entry of each path, as in place",
        read(os.path.join(d, "real", "f")) == b"second L1" and read(os.path.join(d, "x", "y")) == b"y L1" and
        read(os.path.join(d, "z")) == b"now a file L1" and read(os.path.join(d, "m")) == b"2 L1" and
        stat(d, "h2").st_ino == stat(d, "h").st_ino and read(os.path.join(d, "h2")) == b"data L1" and
        stat(d, "late").st_mode & 0o7777 == 0o750 and ls(d, "late") == ["a"] and
        len(ls(d, "n", "p19") or []) == 20)
T.check("queued files: a file through the layer's link to a host path lands inside the root",
        read(os.path.join(d, HOST.strip("/"), "new")) == EVIL and host_untouched())

# --- entries under a lower layer's file: both ways fail naming the entry ---
pull, dest, add, _ = both("under-file", [[("f", b"file")], [("f/x", b"x")]])
T.check("entries under a lower layer's file: the pull fails naming the entry and why",
        pull.returncode != 0 and "layer entry 'f/x'" in pull.stderr and "Not a directory" in pull.stderr,
        pull.stderr)
T.check("... as the store add does, and nothing is left at the destination",
        add.returncode != 0 and "layer entry 'f/x'" in add.stderr and not os.path.lexists(dest), add.stderr)
T.check("nothing was written beside the destinations (temp trees gone)",
        ls(OUT) == ["deep", "host-shapes", "links", "opaque", "own-link", "queued", "replace", "same-name"],
        ls(OUT))
T.check("all cases: the host directories are neither read nor written", host_untouched())
T.done()
