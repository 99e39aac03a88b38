#!/usr/bin/env python3
"""Hostile inputs around a context uploaded to kiln serve (POST /v1/contexts) and the stat cache
its unpack feeds. The notes of the unpack (<root>/contexts/ID.notes) replaced before the build
by a foreign file, a truncated one, one past its caps (an entry's path over 4096 bytes, more
entries than an upload may have), a link to a host file and a fifo: each refused by name in the
build's log ("the upload's notes refused (...): every file is hashed"), the build hashing every
file and succeeding with the uploaded content; the host marker behind the link neither read nor
written. Two tenants uploading the same paths: tenant B gets no stat-cache hit from tenant A's
upload (its own namespace; a request naming a cache namespace is refused), A's stat cache
file neither read nor written by B's builds; B's re-upload hits its own."""
import os
import struct

from kilnbuild import HostMarker
from kilntest import T
from server_common import Server, noted_line, stat_line, tar_gz

host = HostMarker(prefix="HOSTILE-UPLOAD-")
TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}
kroot = os.path.join(T.tmp, "kiln-root")
config = {"tenants": [{"name": n, "tokens": [t]} for n, t in TOKENS.items()]}
srv = Server(os.path.join(T.tmp, "root"), workers=1, config=config,
             extra=["--kiln-root=" + kroot]).start()
CTXS = os.path.join(T.tmp, "root", "contexts")
UP = {"Dockerfile": b"FROM scratch\nCOPY . /app/\n"}
UP.update({"u%d.txt" % i: b"upload %d\n" % i for i in range(6)})
FILES = len(UP)


def upload(tenant, files=UP):
    st, body = srv.request("POST", "/v1/contexts", body=tar_gz(files), token=TOKENS[tenant])
    assert st == 201, (st, body)
    return body["context"]


def build(tenant, ctx, extra=None):
    req = {"source": {"context": ctx}, "outputs": [{"type": "local", "dest": "fs"}]}
    req.update(extra or {})
    rec, log = srv.build_to_end(req, token=TOKENS[tenant])
    return rec, log


def output_ok(rec, files=UP):
    """The build's local output holds the uploaded bytes."""
    base = os.path.join(T.tmp, "root", "artifacts", rec.get("id", "-"), "fs", "app")
    try:
        return all(open(os.path.join(base, n), "rb").read() == d for n, d in files.items())
    except OSError:
        return False


def sc_files(tenant):
    """{name: (bytes, mtime_ns, atime_ns)} of a tenant's stat cache directory."""
    d = os.path.join(kroot, "ns", tenant, "statcache")
    out = {}
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        st = os.stat(os.path.join(d, n))
        with open(os.path.join(d, n), "rb") as f:
            data = f.read()
        os.utime(os.path.join(d, n), ns=(1_000_000_000, st.st_mtime_ns))  # reads now show
        out[n] = (data, st.st_mtime_ns)
    return out


def sc_unread(tenant):
    d = os.path.join(kroot, "ns", tenant, "statcache")
    return all(os.stat(os.path.join(d, n)).st_atime_ns == 1_000_000_000 for n in os.listdir(d))


# --- one tenant's stat cache across its uploads (the control: hits are seen) ---
a1 = upload("acme")
r, log = build("acme", a1)
T.check("acme, first upload: its unpack noted every file, none known; all hashed",
        r.get("status") == "succeeded" and noted_line(log) == (FILES, 0)
        and stat_line(log) == (0, FILES, FILES), (r, log[-1500:]))
r, log = build("acme", upload("acme"))
T.check("acme, the same paths uploaded again: every hash kept, nothing hashed",
        r.get("status") == "succeeded" and noted_line(log) == (FILES, FILES)
        and stat_line(log) == (FILES, FILES, 0), (r, log[-1500:]))

# --- another tenant, the same paths and bytes: nothing of acme's cache ---
acme_sc = sc_files("acme")
T.check("acme's stat cache: one file for the upload's identity", len(acme_sc) == 1, list(acme_sc))
r, log = build("globex", upload("globex"), {"cache": {"namespace": "acme"}})
T.check("globex's request naming acme's cache namespace: refused (400) naming the field",
        r.get("status") == "submit 400" and r.get("body") == {"error": "field 'cache': unknown field"},
        r)
r, log = build("globex", upload("globex"))
T.check("globex uploads acme's paths and bytes: no stat-cache hit, every file hashed",
        r.get("status") == "succeeded" and noted_line(log) == (FILES, 0)
        and stat_line(log) == (0, FILES, FILES) and output_ok(r), (r, log[-1500:]))
T.check("... acme's stat cache neither read nor written", sc_unread("acme") and
        {n: v[1] for n, v in sc_files("acme").items()} == {n: v[1] for n, v in acme_sc.items()})
# the namespace is the tenant's whatever the request says: globex's own cache has it now
r, log = build("globex", upload("globex"))
T.check("globex's re-upload hits its own stat cache (ns/globex), one file there",
        r.get("status") == "succeeded" and noted_line(log) == (FILES, FILES)
        and stat_line(log) == (FILES, FILES, 0) and len(sc_files("globex")) == 1, (r, log[-1500:]))
T.check("... acme's stat cache again neither read nor written", sc_unread("acme"))
T.check("acme's stat cache still one file, the same bytes",
        {n: v[0] for n, v in sc_files("acme").items()} == {n: v[0] for n, v in acme_sc.items()})

# --- the upload's notes file replaced before its build ---
REC = struct.Struct("<QQQqqqqII20s4x")
MAGIC = b"kiln-context-notes 1\n"


def rec(path, ino=1):
    p = path.encode()
    return REC.pack(1, ino, 9, 0, 0, 0, 0, 0o100644, len(p), b"\xab" * 20) + p


def truncated(path):
    with open(path, "rb") as f:
        data = f.read()
    return data[:-3]


CASES = [
    ("foreign", lambda p: b"PK\x03\x04 not notes at all", "not a context notes file"),
    ("truncated", truncated, "truncated or past its caps"),
    ("an entry's path past 4096 bytes", lambda p: MAGIC + rec("a" * 5000), "truncated or past its caps"),
    ("more entries than an upload may have (100001)",
     lambda p: MAGIC + b"".join(rec("f", i) for i in range(100001)), "truncated or past its caps"),
    ("a link to a host file", ("link", host.secret), "a symbolic link, not a context notes file"),
    ("a fifo", ("fifo",), "not a regular file, not a context notes file"),
]
watching = host.watch_reads()
for what, make, msg in CASES:
    ctx = upload("acme", dict(UP, **{"u0.txt": b"changed %s\n" % what.encode()}))
    notes = os.path.join(CTXS, ctx + ".notes")
    T.check(f"notes {what}: the upload's notes are beside its tree", os.path.isfile(notes))
    if isinstance(make, tuple):
        os.unlink(notes)
        if make[0] == "link":
            os.symlink(make[1], notes)
        else:
            os.mkfifo(notes)
    else:
        data = make(notes)
        with open(notes + ".new", "wb") as f:
            f.write(data)
        os.rename(notes + ".new", notes)
    r, log = build("acme", ctx)
    want = f"stat cache: the upload's notes refused ({notes}: {msg}): every file is hashed"
    T.check(f"notes {what}: refused by name in the build log, the build hashes every file",
            r.get("status") == "succeeded" and want in log.splitlines()
            and noted_line(log) is None and stat_line(log) in (None, (0, FILES, FILES)),
            (want, r, log[-1500:]))
    T.check(f"notes {what}: the output holds the uploaded bytes",
            output_ok(r, dict(UP, **{"u0.txt": b"changed %s\n" % what.encode()})))
    if what.startswith("a link"):
        if watching:
            T.check("notes a link to a host file: the host marker is not read", host.unread())
        else:
            T.skip("notes a link to a host file: the host marker is not read",
                   "this filesystem records no reads (noatime)")
        T.check("... nor written, and its text is in no log", host.untouched()
                and host.mark not in log)
srv.term()
T.done()
