"""Hostile function packages: the build output a type=function zip is made of holds links to
the host (absolute, relative escaping, to /etc/passwd, to a host directory) and hardlinks, and
the repository ships kiln-out/ entries that are links to host files. The zip must keep links as
links (never the content of what they point to on the host), never walk into a linked
directory, hold the image's files for hardlinks, a function dir outside the source (../..,
/etc) is refused before any step, and nothing may be written through a link in kiln-out/. Each case plants a marker on the host and checks that it is neither read (not in
the zip, function.json or the build's output) nor written. One auto build (static provider,
the busybox base as its build image) serves the link cases."""
import json
import os
import stat
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import HostMarker, make_base, write_tree  # noqa: E402
from kilntest import KILN, T  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)
IMAGE_PASSWD = os.path.join(T.tmp, "base-rootfs", "etc", "passwd")  # the build image's

HM = HostMarker(extra={"hosttree.txt": "{mark}", "w/victim": "untouched {mark}\n"})
MARK, HOST, SECRET, VICTIM = HM.mark, HM.dir, HM.secret, HM.path("w/victim")


def project(name, build, fdir="out", links=None):
    """A static-provider function project whose build step runs `build`."""
    ctx = os.path.join(T.tmp, name)
    write_tree(ctx, {"index.html": "hi\n", "kiln.json": json.dumps({
        "provider": "static", "build": build, "outputs": ["function"],
        "images": {"build": BASE},
        "function": {"handler": "index.handler", "runtime": "provided.al2023", "dir": fdir}})})
    for p, t in (links or {}).items():
        os.makedirs(os.path.dirname(os.path.join(ctx, p)), exist_ok=True)
        os.symlink(t, os.path.join(ctx, p))
    return ctx


def build(ctx, *out):
    """kiln build in ctx (its cwd: the default output is ./kiln-out/function.zip)."""
    try:
        return subprocess.run([KILN, "build", "--root", ROOT, "--progress", "plain", *out, "."],
                              cwd=ctx, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, 124, "", f"timed out: {e}")


def read_zip(path):
    """{name: (mode, content)} of every entry, or {} when it cannot be read."""
    try:
        with zipfile.ZipFile(path) as z:
            return {i.filename: (i.external_attr >> 16, z.read(i)) for i in z.infolist()}
    except (OSError, zipfile.BadZipFile):
        return {}


def no_leak(name, r, paths):
    where = ["build output"] if MARK in r.stdout + r.stderr else []
    for p in paths:
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as f:
                if MARK.encode() in f.read():
                    where.append(p)
    T.check(f"{name}: the host marker is not read", not where, f"found in {where}")
    T.check(f"{name}: nothing written on the host", HM.untouched(), str(os.listdir(HM.w)))


# --- links in the build output ------------------------------------------------------------
ctx = project("links", " && ".join([
    "mkdir -p out/d", "echo ok > out/a",
    f"ln -s {SECRET} out/abs",
    f"ln -s ../../../../../../../..{SECRET} out/rel",
    "ln -s /etc/passwd out/passwd",
    f"ln -s {HOST} out/hostdir",
    "ln -s / out/slash",
    "ln /etc/passwd out/hardpasswd",
    "ln out/a out/d/hard-a"]))
zpath = os.path.join(T.tmp, "fn", "function.zip")
r = build(ctx, "-o", f"type=function,dest={zpath}")
T.check("links in the output: the function zip builds", r.returncode == 0, r.stderr[-3000:])
ents = read_zip(zpath)
no_leak("links in the output", r, [zpath, os.path.join(T.tmp, "fn", "function.json")])


def is_link(name, target):
    mode, data = ents.get(name, (0, b""))
    return stat.S_ISLNK(mode) and data == target.encode()


for n, t in [("abs", SECRET), ("rel", "../../../../../../../.." + SECRET),
             ("passwd", "/etc/passwd"), ("hostdir", HOST), ("slash", "/")]:
    T.check(f"  ... {n} -> {t} is stored as a link to that path, not the content",
            is_link(n, t), repr(ents.get(n)))
T.check("  ... nothing below the linked host directory or / is in the zip",
        not [n for n in ents if n.startswith(("hostdir/", "slash/"))],
        str(sorted(ents)))
with open(IMAGE_PASSWD, "rb") as f:
    image_passwd = f.read()
with open("/etc/passwd", "rb") as f:
    host_only = [ln for ln in f.read().splitlines() if ln and ln not in image_passwd.splitlines()]
blob = open(zpath, "rb").read() if os.path.exists(zpath) else b""
T.check("  ... the hardlink to /etc/passwd holds the build image's passwd",
        ents.get("hardpasswd", (0, None))[1] == image_passwd, repr(ents.get("hardpasswd")))
T.check("  ... no line of the host's /etc/passwd is in the zip",
        host_only and not any(ln in blob for ln in host_only), f"{len(host_only)} host-only lines")
T.check("  ... a hardlink inside the output holds the file's content",
        ents.get("d/hard-a", (0, None))[1] == b"ok\n", repr(ents.get("d/hard-a")))

# --- the function dir is itself a link to the host ---------------------------------------
ctx = project("dirlink", f"ln -s {HOST} out", fdir="out")
zpath2 = os.path.join(T.tmp, "fn2", "function.zip")
r = build(ctx, "-o", f"type=function,dest={zpath2}")
ents2 = read_zip(zpath2)
T.check("function dir linked to a host directory: refused, the link resolved inside the build "
        "root (where it names nothing), naming the path", r.returncode != 0 and not ents2 and
        '"/app/out": not found' in r.stderr, r.stderr[-2000:])
no_leak("function dir linked to a host directory", r, [zpath2])

# --- the function dir climbing out of the source: the build image's whole root ---------------
for fdir in ("../../..", "/etc"):
    ctx = project("updir" + str(len(fdir)), "mkdir -p out && echo ok > out/a", fdir=fdir)
    zpath3 = os.path.join(T.tmp, "fn3", "function.zip")
    r = build(ctx, "-o", f"type=function,dest={zpath3}")
    T.check(f"function.dir {fdir}: refused before any step, naming kiln.json's function.dir",
            r.returncode != 0 and "kiln.json: function.dir must be a relative path inside the "
            "repository" in r.stderr and "RUN" not in r.stderr and not os.path.exists(zpath3),
            r.stderr[-2000:])
    no_leak(f"function.dir {fdir}", r, [zpath3])

# --- kiln-out/ shipped by the repository, with links to a host file ------------------------
# The default output is ./kiln-out/function.zip. A link at the temp name the zip used to be
# written to (function.zip.tmp) or at function.zip itself must not be written through.
ctx = project("kilnout", "mkdir -p out && echo ok > out/a",
              links={"kiln-out/function.zip.tmp": VICTIM, "kiln-out/function.zip": VICTIM,
                     "kiln-out/function.json": VICTIM})
r = build(ctx)
zdef = os.path.join(ctx, "kiln-out", "function.zip")
T.check("kiln-out/ with links to a host file: the default function output builds",
        r.returncode == 0, r.stderr[-3000:])
T.check("  ... function.zip and function.json are new regular files, not the links",
        os.path.isfile(zdef) and not os.path.islink(zdef) and
        not os.path.islink(os.path.join(ctx, "kiln-out", "function.json")) and
        read_zip(zdef).get("a", (0, None))[1] == b"ok\n", str(os.listdir(os.path.dirname(zdef))))
no_leak("kiln-out/ with links to a host file", r, [zdef])
T.done()
