"""A COPY from the build context is written straight into its layer (no staging tree): the
layer holds what the context holds (modes, setuid, --chown/--chmod, hardlinks as tar links,
symlinks as links never followed, .git and .dockerignore'd files left out, FIFOs skipped),
the directories made on the way to the destination are 0755 root's dated the epoch (or
SOURCE_DATE_EPOCH), the layer is gzip by default and byte-identical when built again on a
fresh root, no unpacked tree of it is left under the kiln root until a step needs one, and a
link planted on the destination's way in a stage is followed inside the image only."""
import io
import json
import os
import stat
import subprocess
import tarfile

from kilntest import KILN, T

ctx = os.path.join(T.tmp, "ctx")
os.makedirs(os.path.join(ctx, "a", "b"))
os.makedirs(os.path.join(ctx, ".git"))
os.makedirs(os.path.join(ctx, "skip"))


def put(rel, data, mode=0o644):
    p = os.path.join(ctx, rel)
    with open(p, "w") as f:
        f.write(data)
    os.chmod(p, mode)


put("a/b/f", "hello\n")
put("a/tool", "#!/bin/sh\n", 0o4755)
os.link(os.path.join(ctx, "a/tool"), os.path.join(ctx, "a/tool-link"))
os.symlink("/etc/shadow", os.path.join(ctx, "a/abs"))
put(".git/HEAD", "ref: refs/heads/main\n")
put("skip/secret", "not in the image\n")
put(".dockerignore", "skip\n")
os.mkfifo(os.path.join(ctx, "a/pipe"))
marker = os.path.join(T.tmp, "host-marker")
put_marker = open(marker, "w")
put_marker.write("host\n")
put_marker.close()


def build(df, root, env=None):
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(df)
    os.utime(os.path.join(ctx, "Dockerfile"), (1600000000, 1600000000))  # it is in the layer
    out = os.path.join(T.tmp, "out-" + os.path.basename(root))
    r = subprocess.run([KILN, "build", "--root", root, "--progress", "plain", "-o",
                        "type=oci,dest=" + out, ctx], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})), timeout=300)
    layers = []
    if r.returncode == 0:
        with open(os.path.join(out, "index.json")) as f:
            m = json.load(f)["manifests"][0]["digest"].split(":")[1]
        with open(os.path.join(out, "blobs", "sha256", m)) as f:
            layers = json.load(f)["layers"]
    return r, out, layers


def members(out, layer):
    with open(os.path.join(out, "blobs", "sha256", layer["digest"].split(":")[1]), "rb") as f:
        data = f.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        return {m.name.rstrip("/"): m for m in t.getmembers()}


env = {"SOURCE_DATE_EPOCH": ""}
r, out, layers = build("FROM scratch\nCOPY . /usr/src/app\n", os.path.join(T.tmp, "r1"), env)
T.check("a COPY of the context builds", r.returncode == 0 and len(layers) == 1,
        (r.stdout + r.stderr)[-1500:])
m = members(out, layers[0]) if layers else {}
T.check("its layer is gzip by default", layers and
        layers[0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", layers)
T.check("directories made on the way: 0755, root's, dated the epoch",
        all(n in m and m[n].isdir() and m[n].mode == 0o755 and m[n].uid == 0 and
            m[n].mtime == 0 for n in ("usr", "usr/src")), sorted(m)[:5])
T.check("the destination directory has the context root's mode",
        "usr/src/app" in m and m["usr/src/app"].mode == stat.S_IMODE(os.stat(ctx).st_mode))
T.check("files, setuid and owners 0:0", "usr/src/app/a/b/f" in m and
        m["usr/src/app/a/b/f"].size == 6 and m["usr/src/app/a/tool"].mode == 0o4755 and
        all(x.uid == 0 and x.gid == 0 for x in m.values()))
T.check("a hardlink stays a link to the first path",
        m.get("usr/src/app/a/tool-link") is not None and m["usr/src/app/a/tool-link"].islnk() and
        m["usr/src/app/a/tool-link"].linkname == "usr/src/app/a/tool")
T.check("a symlink is copied as a link, never followed",
        m.get("usr/src/app/a/abs") is not None and m["usr/src/app/a/abs"].issym() and
        m["usr/src/app/a/abs"].linkname == "/etc/shadow")
T.check(".git, .dockerignore'd files and the FIFO are left out",
        not any(n.startswith(("usr/src/app/.git", "usr/src/app/skip")) for n in m) and
        "usr/src/app/a/pipe" not in m and "usr/src/app/.dockerignore" in m, sorted(m))
lowers = os.path.join(T.tmp, "r1", "build", "lowers")
T.check("no unpacked tree of the layer is kept until a step needs one",
        not os.path.isdir(lowers) or not [d for d in os.listdir(lowers)
                                          if os.path.isdir(os.path.join(lowers, d))],
        os.listdir(lowers) if os.path.isdir(lowers) else "")

r2, out2, layers2 = build("FROM scratch\nCOPY . /usr/src/app\n", os.path.join(T.tmp, "r2"), env)
T.check("built again on a fresh root: the same layer digest",
        r2.returncode == 0 and layers2 and layers2[0]["digest"] == layers[0]["digest"],
        (layers, layers2))

r3, out3, layers3 = build("FROM scratch\nCOPY --chown=7:8 --chmod=640 a/ /opt/x/\n",
                          os.path.join(T.tmp, "r3"), {"SOURCE_DATE_EPOCH": "1700000000"})
m3 = members(out3, layers3[0]) if layers3 else {}
T.check("--chown/--chmod apply to every copied entry (links keep 0777)",
        r3.returncode == 0 and m3.get("opt/x/b/f") is not None and
        all(x.uid == 7 and x.gid == 8 for n, x in m3.items() if n.startswith("opt/x")) and
        m3["opt/x/b/f"].mode == 0o640 and m3["opt/x/b"].mode == 0o640 and
        m3["opt/x/abs"].mode == 0o777, {n: (oct(x.mode), x.uid) for n, x in m3.items()})
T.check("with SOURCE_DATE_EPOCH the made directories are dated it",
        m3.get("opt") is not None and m3["opt"].mtime == 1700000000 and m3["opt"].uid == 0)

# a destination reached through a link in the stage: resolved inside the image, never on the host
os.makedirs(os.path.join(ctx, "l"))
os.symlink(T.tmp, os.path.join(ctx, "l", "escape"))
r4, out4, layers4 = build("FROM scratch\nCOPY l/ /\nCOPY a/b/f /escape/host-marker\n",
                          os.path.join(T.tmp, "r4"), env)
m4 = members(out4, layers4[1]) if len(layers4) == 2 else {}
with open(marker) as f:
    host = f.read()
T.check("a COPY through a link of an earlier layer lands inside the image, the host's file "
        "untouched", r4.returncode == 0 and host == "host\n" and
        any(n.endswith("host-marker") for n in m4), (r4.stderr[-800:], sorted(m4)))
T.done()
