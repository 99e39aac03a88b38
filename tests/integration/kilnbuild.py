"""Helpers for the `kiln build` integration tests (standard library only)."""
import io
import json
import os
import shutil
import subprocess
import tarfile

from kilntest import T, kiln

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_APPLETS = ("sh", "echo", "cat", "ls", "mkdir", "rm", "ln", "chmod", "chown", "touch", "true",
                   "false", "sleep", "id", "env", "test", "wc", "head", "sed", "grep")


def make_busybox_rootfs(rootfs):
    """A minimal busybox-static tree with root and app (1000:1000) users."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/app"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    for a in BUSYBOX_APPLETS:
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\napp:x:1000:\n")
    os.chown(os.path.join(rootfs, "home", "app"), 1000, 1000)
    return rootfs


def make_base(root, name="base"):
    """Imports the busybox tree as an OCI layout; returns "oci:DIR:1"."""
    rootfs = make_busybox_rootfs(os.path.join(T.tmp, name + "-rootfs"))
    layout = os.path.join(T.tmp, name)
    r = kiln("import", rootfs, "-t", "busybox:1", "--root", root, "-o", f"type=oci,dest={layout}",
             "--env", PATH_ENV, "--cmd", '["sh"]', "--source-date-epoch", "0")
    if r.returncode != 0:
        raise RuntimeError("kiln import failed: " + r.stderr)
    return f"oci:{layout}:1"


def read_image(layout):
    """(manifest, config) of the first image of an OCI layout."""
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    man_d = idx["manifests"][0]["digest"].split(":")[1]
    with open(os.path.join(layout, "blobs", "sha256", man_d)) as f:
        man = json.load(f)
    with open(os.path.join(layout, "blobs", "sha256", man["config"]["digest"].split(":")[1])) as f:
        return man, json.load(f)


def write_tree(base, files):
    """Writes {relative path: content} under base."""
    for p, content in files.items():
        fp = os.path.join(base, p)
        os.makedirs(os.path.dirname(fp), exist_ok=True)
        with open(fp, "w") as f:
            f.write(content)
    return base


def read_json(path):
    """A JSON file's value, or {"error": why} when it cannot be read or parsed."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": str(e)}


def tar_write(fileobj, entries):
    """Writes a tar of entries to fileobj: (name, bytes) files, (name, ("sym", target))
    symbolic links, (name, ("hard", target)) hard links."""
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as t:
        for n, v in entries:
            ti = tarfile.TarInfo(n)
            if isinstance(v, tuple):
                ti.type = tarfile.SYMTYPE if v[0] == "sym" else tarfile.LNKTYPE
                ti.linkname = v[1]
                t.addfile(ti)
            else:
                ti.size = len(v)
                t.addfile(ti, io.BytesIO(v))


_CONTEXTS = [0]


def new_context(tmp, df, files=None):
    """A new directory under tmp holding the Dockerfile df and files ({path: text})."""
    _CONTEXTS[0] += 1
    d = os.path.join(tmp, "ctx%d" % _CONTEXTS[0])
    os.makedirs(d)
    return write_tree(d, dict(files or {}, Dockerfile=df))


def read_text(path):
    """A file's text, or None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class HostMarker:
    """A marker planted on the host for hostile cases, outside every context and root:
    T.tmp/host holding `secret` (the marker line), an empty directory `w` and any extra files
    ({name: content}, "{mark}" replaced by the marker). untouched() is true while all of it is
    exactly as planted: no file changed, added, removed or replaced by a link."""

    def __init__(self, prefix="HOSTILE-MARKER-", extra=None):
        self.mark = prefix + os.urandom(6).hex()
        self.dir = os.path.join(T.tmp, "host")
        self.w = os.path.join(self.dir, "w")
        self.secret = os.path.join(self.dir, "secret")
        os.makedirs(self.w)
        files = {"secret": self.mark + "\n"}
        files.update({k: v.replace("{mark}", self.mark) for k, v in (extra or {}).items()})
        for name, content in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(content)
        self.planted = self.state()

    def path(self, name):
        return os.path.join(self.dir, name)

    def state(self):
        """{relative path: ("dir",) | ("link", target) | ("file", bytes)} of the host dir."""
        out = {}
        for d, dirs, names in os.walk(self.dir):
            for n in dirs + names:
                p = os.path.join(d, n)
                rel = os.path.relpath(p, self.dir)
                if os.path.islink(p):
                    out[rel] = ("link", os.readlink(p))
                elif os.path.isdir(p):
                    out[rel] = ("dir",)
                else:
                    with open(p, "rb") as f:
                        out[rel] = ("file", f.read())
        return out

    def untouched(self):
        return self.state() == self.planted

    def _files(self):
        return [os.path.join(d, n) for d, _, names in os.walk(self.dir) for n in names
                if not os.path.islink(os.path.join(d, n))]

    def watch_reads(self):
        """Sets each planted file's atime to 1 (mtime kept): a read under relatime moves it.
        Returns False where this filesystem does not record reads (noatime)."""
        probe = os.path.join(T.tmp, "atime-probe")
        with open(probe, "w") as f:
            f.write("probe\n")
        for p in self._files() + [probe]:
            st = os.stat(p)
            os.utime(p, ns=(1_000_000_000, st.st_mtime_ns))
        with open(probe) as f:
            f.read()
        return os.stat(probe).st_atime_ns != 1_000_000_000

    def unread(self):
        """True while no planted file was opened for reading since watch_reads() (call it
        before untouched(), which reads them; then watch_reads() again)."""
        return all(os.stat(p).st_atime_ns == 1_000_000_000 for p in self._files())

    def reset_w(self):
        """Empties w (so that the next case starts clean)."""
        for n in os.listdir(self.w):
            subprocess.run(["rm", "-rf", os.path.join(self.w, n)], check=False)


def build_none(root, ctx, dockerfile, *extra):
    """`kiln build --network none --no-cache --progress plain` of dockerfile written into ctx."""
    os.makedirs(ctx, exist_ok=True)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    return kiln("build", "--root", root, "--network", "none", "--no-cache", "--progress", "plain",
                *extra, ctx)


def step_out(text, n):
    """The output lines of step #n of a plain progress log (not its title: the command)."""
    return "\n".join(l[len(f"#{n} "):] for l in text.splitlines()
                     if l.startswith(f"#{n} ") and not l.startswith(f"#{n} ["))
