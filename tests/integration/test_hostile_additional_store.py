"""Hostile cases of additional image stores (oci/additional_store, engine/base_store): the store
is the operator's and trusted, so what is checked is that nobody else could have changed it and
that an entry is used only for exactly the layers it was made from; whatever fails, the build
warns naming the store and what would allow it, and pulls as without the store.

- a store writable by others (chmod o+w), by its group, or owned by another user: refused with
  the path, the mode or owner and the fix (chmod go-w / chown); the layers are pulled; kiln
  store add refuses to write into it
- a directory above the store writable by others (not sticky): refused the same way
- an entry whose metadata names another diff_id (or another blob) than the image asks for: not
  used (the warning names both diff_ids), the layers pulled, the tree's planted marker never
  reaches the build
- an entry whose tree is missing: warned about, pulled
- a build that writes, deletes, chmods, chowns and hardlinks the base's files, copies them with
  COPY --from --chown/--chmod and writes through a bind mount of the base stage: the store is
  unchanged (contents, modes, owners)
- a tenant cannot name a store: a job spec with additional_stores is refused naming the field;
  a server-mode FROM oci:STORE is refused (not in oci_dirs); the marker is neither read nor
  written"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import HostMarker, make_base, new_context  # noqa: E402
from kilntest import KILN, T, kiln, start_registry  # noqa: E402
from registry_fixtures import FaultProxy  # noqa: E402

os.chmod(T.tmp, 0o755)
host = HostMarker()
BASE = make_base(os.path.join(T.tmp, "root-base"))
port = start_registry()
REG = "127.0.0.1:%d" % port
proxy = FaultProxy(port)
PREG = "127.0.0.1:%d" % proxy.port
IMG = REG + "/t/base:1"


def out(r):
    return r.stdout + r.stderr


def build(root, df, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), "--progress", "plain",
                "--insecure-registry", REG, "--insecure-registry", PREG, *args,
                new_context(T.tmp, df), timeout=600)


r = build("root-push", "FROM %s\nRUN echo base > /added\n" % BASE, "-t", IMG, "--push")
T.check("a 2-layer base pushed", r.returncode == 0, out(r)[-1500:])


def store_state(d):
    """{path: (mode, uid, gid, content or link target)} of every entry (not times, not links'
    counts: a COPY --from view hardlinks from the tree)."""
    st = {}
    for top, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(top, n)
            s = os.lstat(p)
            body = os.readlink(p) if os.path.islink(p) else (
                open(p, "rb").read() if os.path.isfile(p) else None)
            st[os.path.relpath(p, d)] = (s.st_mode, s.st_uid, s.st_gid, body)
    return st


def make_store(name):
    d = os.path.join(T.tmp, name)
    r = kiln("store", "add", "--root", os.path.join(T.tmp, "root-add"), "--insecure-registry",
             REG, d, IMG)
    if r.returncode != 0:
        raise RuntimeError(out(r))
    return d, re.match(r"sha256:([0-9a-f]{64}) ", r.stdout).group(1)


with open(os.path.join(make_store("s-first")[0], "chains", make_store("s-first")[1] + ".json")) as f:
    LAYERS = json.load(f)["layers"]
USE = "FROM %s/t/base:1\nRUN cat /added > /out && (cat /planted 2>&1 || true) >> /out\n" % PREG
n_root = [0]


def use(store, what):
    """A build on an empty root with the store: (result, base layer blobs fetched, /out)."""
    n_root[0] += 1
    dest = os.path.join(T.tmp, "fs%d" % n_root[0])
    n = len(proxy.log)
    r = build("r%d" % n_root[0], USE, "--additional-store", store, "-o", "type=local,dest=" + dest)
    blobs = [p for (m, p, _) in proxy.log[n:]
             if m == "GET" and any(p.endswith("/blobs/" + l["digest"]) for l in LAYERS)]
    try:
        with open(os.path.join(dest, "out")) as f:
            o = f.read()
    except OSError:
        o = None
    lowers = os.path.join(T.tmp, "r%d" % n_root[0], "build", "lowers")
    unpacked = [l for l in LAYERS if os.path.isdir(os.path.join(lowers, l["diff_id"][7:]))]
    return r, blobs, o, unpacked


def pulled_ok(name, r, got, want, downloaded=True):
    """The build went on as without the store: the layers downloaded (the whole store refused)
    or, when only the entry is unusable, read from the store's blobs and unpacked in the root
    (each diff_id checked there)."""
    _, blobs, o, unpacked = got
    T.check("%s: the build warns naming the store and why" % name,
            r.returncode == 0 and "WARNING" in r.stderr and want in r.stderr, out(r)[-1500:])
    T.check("%s: the layers %s and unpacked in the root, the build correct" %
            (name, "downloaded" if downloaded else "not taken from the entry: read from its blobs"),
            len(blobs) == (len(LAYERS) if downloaded else 0) and len(unpacked) == len(LAYERS)
            and o is not None and o.startswith("base\n") and host.mark not in o,
            str(blobs) + str(unpacked) + repr(o))
    T.check("%s: the host marker is neither read nor written" % name, host.untouched(), "")


# a store writable by others / by its group / owned by another user
for name, mode, owner, want in [
        ("a store writable by others", 0o757, None, "is writable by others (mode 0757)"),
        ("a store writable by its group", 0o775, None, "is writable by its group (mode 0775)"),
        ("a store owned by another user", 0o755, 1000, "is owned by uid 1000"),
]:
    d, _ = make_store("s-" + name.split()[-1])
    os.chmod(d, mode)
    if owner is not None:
        os.chown(d, owner, owner)
    got = use(d, name)
    r = got[0]
    fix = "chown it" if owner else "chmod go-w " + d
    pulled_ok(name, r, got, "%s %s" % (d, want))
    T.check("%s: the warning says what would allow it (%s)" % (name, fix), fix in r.stderr,
            r.stderr[-800:])
    r = kiln("store", "add", "--root", os.path.join(T.tmp, "root-add"), "--insecure-registry",
             REG, d, IMG)
    T.check("%s: kiln store add refuses to write into it" % name,
            r.returncode != 0 and want in r.stderr and fix in r.stderr, out(r))

# a directory above the store writable by others, not sticky
up = os.path.join(T.tmp, "open-parent")
os.makedirs(up)
d, _ = make_store("open-parent/store")
os.chmod(up, 0o777)
got = use(d, "parent")
pulled_ok("a directory above the store writable by others", got[0], got,
          "%s is writable by others (mode 0777)" % up)
os.chmod(up, 0o1777)
r, blobs, o, unpacked = use(d, "sticky parent")
T.check("the same directory sticky (as /tmp): the store is used, nothing pulled or unpacked",
        r.returncode == 0 and "layers from additional store " + d in r.stderr and not blobs
        and not unpacked and o == "base\ncat: can't open '/planted': No such file or directory\n",
        out(r)[-1500:] + str(blobs) + repr(o))

# an entry whose metadata names another diff_id than the image asks for, a marker in its tree
d, chain = make_store("s-diffid")
meta = os.path.join(d, "chains", chain + ".json")
with open(meta) as f:
    m = json.load(f)
asked = m["layers"][1]["diff_id"]
other = "sha256:" + "ab" * 32
m["layers"][1]["diff_id"] = other
with open(meta, "w") as f:
    json.dump(m, f)
with open(os.path.join(d, "chains", chain, "planted"), "w") as f:
    f.write(host.mark + "\n")
got = use(d, "diff_id")
pulled_ok("an entry whose metadata names another diff_id", got[0], got,
          "layer 1 has diff_id %s, the image asks for %s" % (other, asked), downloaded=False)

d, chain = make_store("s-blob")
meta = os.path.join(d, "chains", chain + ".json")
with open(meta) as f:
    m = json.load(f)
m["layers"][0]["digest"] = "sha256:" + "cd" * 32
with open(meta, "w") as f:
    json.dump(m, f)
got = use(d, "blob")
pulled_ok("an entry made from another blob", got[0], got, "layer 0 was unpacked from another blob",
          downloaded=False)

d, chain = make_store("s-notree")
shutil.rmtree(os.path.join(d, "chains", chain))
got = use(d, "no tree")
pulled_ok("an entry whose tree is missing", got[0], got,
          "%s/chains/%s is missing (its metadata is there)" % (d, chain), downloaded=False)

# a build that writes, deletes, chmods and chowns the base's files, links and copies them with
# COPY --from (the view hardlinks from the tree) and writes through a bind mount of the base stage:
# the store is byte for byte, mode and owner what it was
d, chain = make_store("s-writes")
before = store_state(d)
WRITES = """FROM %s/t/base:1 AS base
FROM %s/t/base:1
RUN echo pwn >> /added && chmod 777 /added && chown 1000:1000 /added /bin/busybox && \\
    ln /added /added-link && echo more >> /added-link && rm -rf /bin/true /etc/group /home && touch /new
COPY --from=base --chown=1000:1000 --chmod=777 /added /copied
RUN --mount=type=bind,from=base,target=/b,rw (echo x >> /b/added; chmod 777 /b/added) 2>&1; true
RUN cat /added /copied > /out
""" % (PREG, PREG)
n_root[0] += 1
dest = os.path.join(T.tmp, "fs%d" % n_root[0])
r = build("r%d" % n_root[0], WRITES, "--additional-store", d, "-o", "type=local,dest=" + dest)
T.check("a build writing over the base's files: it sees its own changes",
        r.returncode == 0 and "layers from additional store " + d in r.stderr
        and open(os.path.join(dest, "out")).read() == "base\npwn\nmore\nbase\n", out(r)[-1500:])
T.check("...and the store is unchanged: contents, modes and owners of every entry",
        store_state(d) == before and host.untouched(), "")

# a tenant cannot name a store
store, _ = make_store("s-tenant")
ctx = new_context(T.tmp, "FROM scratch\n")
spec = {"source": {"git": "https://127.0.0.1:1/acme/app.git"}, "additional_stores": [host.dir]}
p = subprocess.run([KILN, "job", "run", "--spec", "/dev/stdin", "--untrusted", "--root",
                    os.path.join(T.tmp, "r-spec")], input=json.dumps(spec), text=True,
                   capture_output=True, timeout=120)
T.check("a tenant's job spec naming additional_stores: refused naming the field",
        p.returncode == 2 and "field 'additional_stores': unknown field" in p.stdout + p.stderr
        and host.untouched(), p.stdout[-800:] + p.stderr[-800:])
r = kiln("build", "--root", os.path.join(T.tmp, "r-srv"), "--progress", "plain", "--server-mode",
         "--oci-dir=" + os.path.join(T.tmp, "nothing"),
         new_context(T.tmp, "FROM oci:%s\nRUN true\n" % store))
T.check("a server-mode FROM oci:STORE: refused, not a directory builds may read layouts from",
        r.returncode != 0 and "%s is not in a directory server builds may read OCI layouts from"
        % store in r.stderr and host.untouched(), out(r)[-1000:])
proxy.close()
T.done()
