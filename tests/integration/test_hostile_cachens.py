"""Cache namespaces (kiln build/checkout --cache-namespace, set by the server to
the build's tenant): a cache mount, a step cache entry, the stat cache or a git
mirror of one namespace is never seen or written by a build of another, while a
namespace keeps reusing its own; a build without a namespace keeps the shared
historical paths. Namespace directories are 0700 and never reached through a
link a build (or anyone) planted; bad names are refused naming the option."""
import hashlib
import http.server
import json
import os
import re
import stat
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import HostMarker, make_base, read_text as read, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402
from registry_fixtures import MT_CONFIG, MT_LAYER_GZ, MT_MANIFEST, make_layer, sha  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)

HM = HostMarker(prefix="CACHENS-MARKER-")
MARK, HOST, HOSTW = HM.mark, HM.dir, HM.w
N = [0]


def build(df, ns=None, files=None, extra=(), base=True):
    """Builds df (after FROM base, unless base is False) in a fresh context;
    returns (result, output dir)."""
    N[0] += 1
    ctx = os.path.join(T.tmp, f"ctx{N[0]}")
    out = os.path.join(T.tmp, f"out{N[0]}")
    os.makedirs(ctx)
    write_tree(ctx, dict(files or {}))
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write((f"FROM {BASE}\n" if base else "") + df)
    args = ["--cache-namespace", ns] if ns is not None else []
    r = kiln("build", "--root", ROOT, "--progress", "plain", *args, *extra, "-o",
             f"type=local,dest={out}", ctx, timeout=300)
    return r, out


def steps(stderr):
    """{step number: 'CACHED' | 'DONE' | 'ERROR'} from plain progress."""
    st = {}
    for line in stderr.splitlines():
        m = re.match(r"#(\d+) (CACHED|DONE|ERROR)", line)
        if m:
            st[int(m.group(1))] = m.group(2)
    return st


def mode(p):
    s = os.lstat(p)
    return stat.S_IMODE(s.st_mode), s.st_uid


# --- cache mounts: same id, different namespaces ----------------------------
CM = """ARG WHO
RUN --mount=type=cache,id=npm,target=/c ls /c > /seen && echo $WHO > /c/from-$WHO
"""
runs = {}
for who, ns in (("acme1", "acme"), ("globex", "globex"), ("acme2", "acme"), ("cli", None)):
    r, out = build(CM, ns, extra=("--no-cache", "--build-arg", f"WHO={who}"))
    runs[who] = (r, (read(os.path.join(out, "seen")) or "").split())
    T.check(f"cache mount build ({who}, namespace {ns}) succeeds", r.returncode == 0,
            r.stderr[-2000:])
T.check("a namespace starts with an empty cache mount", runs["acme1"][1] == [], runs["acme1"][1])
T.check("another namespace's same cache id does not see the first's marker",
        runs["globex"][1] == [], runs["globex"][1])
T.check("the same namespace reuses its cache mount (sees its own marker, not the other's)",
        runs["acme2"][1] == ["from-acme1"], runs["acme2"][1])
T.check("a build without a namespace sees none of the namespaces' markers",
        "from-acme1" not in runs["cli"][1] and "from-globex" not in runs["cli"][1], runs["cli"][1])
r, out = build(CM, None, extra=("--no-cache", "--build-arg", "WHO=cli2"))
T.check("a build without a namespace keeps the shared historical cache mount",
        (read(os.path.join(out, "seen")) or "").split() == ["from-cli"], r.stderr[-1000:])
T.check("namespaced cache mounts live under <root>/ns/<name>/cache-mounts",
        len(os.listdir(os.path.join(ROOT, "ns", "acme", "cache-mounts"))) == 1 and
        len(os.listdir(os.path.join(ROOT, "ns", "globex", "cache-mounts"))) == 1)
T.check("namespace directories are 0700 and kiln's",
        all(mode(os.path.join(ROOT, *p)) == (0o700, os.geteuid()) for p in
            (("ns",), ("ns", "acme"), ("ns", "acme", "cache-mounts"), ("ns", "globex"))),
        [mode(os.path.join(ROOT, *p)) for p in (("ns",), ("ns", "acme"))])

# --- step cache entries (layers) --------------------------------------------
LC = "COPY f /f\nRUN od -An -tx1 -N16 /dev/urandom > /id\n"
files = {"f": "layer input\n"}
ra1, oa1 = build(LC, "acme", files)
ra2, oa2 = build(LC, "acme", files)
rg, og = build(LC, "globex", files)
rc, oc = build(LC, None, files)
sa1, sa2, sg = steps(ra1.stderr), steps(ra2.stderr), steps(rg.stderr)
T.check("layer cache: the first build of a namespace runs its steps",
        ra1.returncode == 0 and [sa1.get(i) for i in (2, 3)] == ["DONE", "DONE"], ra1.stderr[-2000:])
T.check("layer cache: a hit within the namespace (same layer)",
        ra2.returncode == 0 and [sa2.get(i) for i in (2, 3)] == ["CACHED", "CACHED"] and
        read(os.path.join(oa1, "id")) == read(os.path.join(oa2, "id")), ra2.stderr[-2000:])
T.check("layer cache: a miss across namespaces (the step runs again, its own layer)",
        rg.returncode == 0 and [sg.get(i) for i in (2, 3)] == ["DONE", "DONE"] and
        read(os.path.join(og, "id")) != read(os.path.join(oa1, "id")), rg.stderr[-2000:])
T.check("layer cache: a build without a namespace does not hit a namespace's entries",
        rc.returncode == 0 and read(os.path.join(oc, "id")) not in
        (read(os.path.join(oa1, "id")), read(os.path.join(og, "id"))), rc.stderr[-2000:])
names = []
for fn in os.listdir(os.path.join(ROOT, "refs")):
    lines = (read(os.path.join(ROOT, "refs", fn)) or "").splitlines()
    if len(lines) > 1:
        names.append(lines[1])
T.check("step cache entries are refs cache/ns/<name>/… in a namespace, cache/… without",
        any(n.startswith("cache/ns/acme/") for n in names) and
        any(n.startswith("cache/ns/globex/") for n in names) and
        any(re.fullmatch(r"cache/[0-9a-f]{64}", n) for n in names), names)
def sc_files(ns):
    d = os.path.join(ROOT, "ns", ns, "statcache")
    return [f for f in os.listdir(d) if f.endswith(".sc")] if os.path.isdir(d) else []
T.check("the stat cache of a namespace is its own directory of per-context files",
        sc_files("acme") and sc_files("globex"), (sc_files("acme"), sc_files("globex")))

# --- bad names: refused naming the option, nothing created --------------------
before = sorted(os.listdir(ROOT))
for bad in ("../evil", "a/b", ".hidden", "", "-x", "x" * 65, "acme\n"):
    r, out = build("RUN true\n", bad)
    T.check(f"--cache-namespace {bad!r} is refused naming the option",
            r.returncode == 2 and "--cache-namespace" in r.stderr and
            ("one path component" in r.stderr or "1 to 64 characters" in r.stderr),
            r.stderr[-500:])
T.check("bad names create nothing in the root or on the host",
        sorted(os.listdir(ROOT)) == before and not os.path.exists(os.path.join(T.tmp, "evil")) and
        HM.untouched(), sorted(os.listdir(ROOT)))

# --- links planted where a namespace lives -----------------------------------
os.symlink(HOSTW, os.path.join(ROOT, "ns", "evil"))
r, out = build(CM, "evil", extra=("--no-cache", "--build-arg", "WHO=evil"))
T.check("a namespace directory that is a link to the host is refused, naming it",
        r.returncode != 0 and os.path.join(ROOT, "ns", "evil") + " is not a directory" in r.stderr,
        r.stderr[-1000:])
T.check("  ... nothing written through it, the host marker not read",
        HM.untouched() and MARK not in r.stdout + r.stderr)
os.symlink(os.path.join(ROOT, "ns", "acme"), os.path.join(ROOT, "ns", "thief"))
r, out = build(CM, "thief", extra=("--no-cache", "--build-arg", "WHO=thief"))
T.check("a namespace that is a link to another namespace is refused (its cache not read)",
        r.returncode != 0 and "ns/thief is not a directory" in r.stderr and
        not os.path.exists(os.path.join(out, "seen")), r.stderr[-1000:])
os.makedirs(os.path.join(ROOT, "ns", "planted"), mode=0o700)
os.symlink(HOSTW, os.path.join(ROOT, "ns", "planted", "cache-mounts"))
r, out = build(CM, "planted", extra=("--no-cache", "--build-arg", "WHO=planted"))
T.check("a namespace's cache-mounts that is a link is refused, naming it",
        r.returncode != 0 and "ns/planted/cache-mounts is not a directory" in r.stderr,
        r.stderr[-1000:])
T.check("  ... nothing written on the host", HM.untouched(), os.listdir(HOSTW))
os.makedirs(os.path.join(ROOT, "ns", "foreign"))
os.chown(os.path.join(ROOT, "ns", "foreign"), 4242, 4242)
r, out = build(CM, "foreign", extra=("--no-cache", "--build-arg", "WHO=foreign"))
T.check("a namespace directory owned by another user is refused, naming the owner",
        r.returncode != 0 and "ns/foreign is owned by uid 4242" in r.stderr, r.stderr[-1000:])
os.chmod(os.path.join(ROOT, "ns", "acme"), 0o755)
r, out = build(CM, "acme", extra=("--no-cache", "--build-arg", "WHO=acme3"))
T.check("a namespace directory with a wider mode is put back to 0700",
        r.returncode == 0 and mode(os.path.join(ROOT, "ns", "acme"))[0] == 0o700, r.stderr[-1000:])

# --- git mirrors of kiln checkout --------------------------------------------
work = os.path.join(T.tmp, "repo")
os.makedirs(work)
git = ["git", "-c", "user.email=t@example.test", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
subprocess.run(git + ["init", "-q", work], check=True)
with open(os.path.join(work, "a.txt"), "w") as f:
    f.write("repo\n")
subprocess.run(git + ["-C", work, "add", "-A"], check=True)
subprocess.run(git + ["-C", work, "commit", "-qm", "one"], check=True)
bare = os.path.join(T.tmp, "repo.git")
subprocess.run(["git", "clone", "-q", "--bare", work, bare], check=True)
legacy_git = os.path.join(ROOT, "git")
legacy_before = sorted(os.listdir(legacy_git)) if os.path.isdir(legacy_git) else []
co = {}
for ns in ("acme", "globex"):
    dest = os.path.join(T.tmp, f"co-{ns}")
    r = kiln("checkout", "--root", ROOT, "--cache-namespace", ns, "file://" + bare, dest)
    mirrors = os.listdir(os.path.join(ROOT, "ns", ns, "git")) \
        if os.path.isdir(os.path.join(ROOT, "ns", ns, "git")) else []
    co[ns] = (r, mirrors, read(os.path.join(dest, "a.txt")))
T.check("kiln checkout in a namespace: its mirror under <root>/ns/<name>/git",
        all(co[ns][0].returncode == 0 and co[ns][2] == "repo\n" and
            any(m.endswith(".git") for m in co[ns][1]) for ns in co),
        "\n".join(co[ns][0].stderr for ns in co))
T.check("  ... not in the shared <root>/git",
        (sorted(os.listdir(legacy_git)) if os.path.isdir(legacy_git) else []) == legacy_before)
T.check("  ... the git directory is 0700",
        mode(os.path.join(ROOT, "ns", "acme", "git"))[0] == 0o700)
r = kiln("checkout", "--root", ROOT, "--cache-namespace", "../x", "file://" + bare,
         os.path.join(T.tmp, "co-x"))
T.check("kiln checkout refuses a bad namespace naming the option",
        r.returncode == 2 and "--cache-namespace" in r.stderr, r.stderr)

# --- a digest is not a key: another namespace's stored blobs and layer trees ---
# acme builds a layer holding a secret; globex knows its digest and diff_id (as
# if leaked from acme's manifest) and names them from a registry of its own.
SECRET_DF = f"RUN echo {MARK}-acme > /s\n"
oci_a = os.path.join(T.tmp, "acme-oci")
r, out = build(SECRET_DF, "acme", extra=("-o", f"type=oci,dest={oci_a}"))
T.check("acme's secret layer built", r.returncode == 0, r.stderr[-1000:])


def layout_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return f.read()


idx = json.loads(read(os.path.join(oci_a, "index.json")))
man_a = json.loads(layout_blob(oci_a, idx["manifests"][0]["digest"]))
cfg_a = json.loads(layout_blob(oci_a, man_a["config"]["digest"]))
base_desc, secret_desc = man_a["layers"][0], man_a["layers"][-1]
base_diff, secret_diff = cfg_a["rootfs"]["diff_ids"][0], cfg_a["rootfs"]["diff_ids"][-1]
BLOBS = {base_desc["digest"]: layout_blob(oci_a, base_desc["digest"])}
MANIFESTS = {}


def serve_image(name, layers, diff_ids):
    """Serves name:1 from the hostile registry: layer descriptors + diff_ids as given."""
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Env": ["PATH=/bin"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    BLOBS[sha(cfg)] = cfg
    MANIFESTS[name] = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                  "config": {"mediaType": MT_CONFIG, "digest": sha(cfg),
                                             "size": len(cfg)},
                                  "layers": layers}).encode()


class Registry(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def answer(self, body):
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", self.path)
        data, ctype = None, "application/octet-stream"
        if self.path == "/v2/":
            data = b"{}"
        elif m and m.group(2) == "manifests":
            data = MANIFESTS.get(m.group(1))
            if data is not None and m.group(3) not in ("1", sha(data)):
                data = None
            ctype = MT_MANIFEST
        elif m:
            data = BLOBS.get(m.group(3))
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Content-Digest", sha(data))
        self.end_headers()
        if body:
            try:
                self.wfile.write(data)
            except OSError:
                pass  # kiln hung up

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
threading.Thread(target=srv.serve_forever, daemon=True).start()
REG = f"127.0.0.1:{srv.server_address[1]}"
# 1. acme's blob named by digest, its bytes never served
serve_image("globex/named", [base_desc, secret_desc], [base_diff, secret_diff])
r, out = build(f"FROM {REG}/globex/named:1\n", "globex", extra=("--insecure-registry", REG),
               base=False)
T.check("a blob another namespace stored, named by digest, is fetched (the registry must "
        "serve it): refused", r.returncode != 0 and secret_desc["digest"][7:19] in r.stderr and
        MARK not in r.stdout + r.stderr and read(os.path.join(out, "s")) is None,
        r.stderr[-1500:])
# 2. acme's diff_id next to a blob of globex's own
junk, junk_diff = make_layer({"junk": b"globex\n"})
BLOBS[sha(junk)] = junk
serve_image("globex/diffid", [base_desc, {"mediaType": MT_LAYER_GZ, "digest": sha(junk),
                                          "size": len(junk)}], [base_diff, secret_diff])
r, out = build(f"FROM {REG}/globex/diffid:1\nRUN cat /s > /out; true\n", "globex",
               extra=("--insecure-registry", REG), base=False)
T.check("another layer's diff_id next to a blob of one's own: the blob is unpacked and refused, "
        "the stored tree never used", r.returncode != 0 and "diff_id" in r.stderr and
        MARK not in r.stdout + r.stderr and MARK not in (read(os.path.join(out, "out")) or ""),
        r.stderr[-1500:])
# 3. a namespace still reuses blobs it fetched itself (and base layers others stored, once fetched)
serve_image("globex/ok", [base_desc, {"mediaType": MT_LAYER_GZ, "digest": sha(junk),
                                      "size": len(junk)}], [base_diff, junk_diff])
ok = []
for i in range(2):
    r, out = build(f"FROM {REG}/globex/ok:1\nRUN cat /junk > /seen\n", "globex",
                   extra=("--insecure-registry", REG, "--no-cache"), base=False)
    ok.append(r.returncode == 0 and read(os.path.join(out, "seen")) == "globex\n")
    if not ok[-1]:
        T.diag(r.stderr[-1500:])
T.check("a namespace's own image pulls and runs (twice: its blobs reused)", ok == [True, True])
T.check("  ... the blobs it fetched are marked as its own",
        all(os.path.exists(os.path.join(ROOT, "ns", "globex", "blobs", d[7:]))
            for d in (base_desc["digest"], sha(junk))) and
        not os.path.exists(os.path.join(ROOT, "ns", "globex", "blobs", secret_desc["digest"][7:])))
srv.shutdown()

# --- a registry cache image naming another namespace's layer ------------------
# globex exports a real cache, rewrites its entries to name acme's secret layer (by
# digest, as if leaked) and imports it into a fresh namespace: the entries are not imported.
import http.client  # noqa: E402
from kilntest import start_registry  # noqa: E402

rport = start_registry()
RREG = f"127.0.0.1:{rport}"


def reg_call(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", rport, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = dict(r.getheaders())
    c.close()
    return r.status, data, hdrs


def reg_put_blob(repo, data):
    st, _, h = reg_call("POST", f"/v2/{repo}/blobs/uploads/")
    loc = h.get("Location", "")
    loc = loc.split(f"127.0.0.1:{rport}", 1)[-1]
    sep = "&" if "?" in loc else "?"
    st, _, _ = reg_call("PUT", f"{loc}{sep}digest={sha(data)}", data,
                        {"Content-Type": "application/octet-stream"})
    return st


CDF = "RUN echo globex > /x\n"
r, out = build(CDF, "globex", extra=("--insecure-registry", RREG, "--cache-to",
                                      f"type=registry,ref={RREG}/globex/cache:1,mode=max"))
T.check("globex exports its cache to a registry", r.returncode == 0 and "exported" in r.stderr,
        r.stderr[-1500:])
st, mbody, _ = reg_call("GET", "/v2/globex/cache/manifests/1", headers={"Accept": MT_MANIFEST})
cman = json.loads(mbody) if st == 200 else {"config": {"digest": ""}, "layers": []}
st, cbody, _ = reg_call("GET", "/v2/globex/cache/blobs/" + cman["config"]["digest"])
ccfg = json.loads(cbody) if st == 200 else {}
entries = ccfg.get("kiln.cache.v1", {})
for entry in entries.values():
    if "layer" in entry:
        entry["layer"] = secret_desc
        entry["diff_id"] = secret_diff
nb = json.dumps(ccfg).encode()
ok = bool(entries) and reg_put_blob("globex/cache", nb) == 201
cman["config"] = {"mediaType": cman["config"].get("mediaType", MT_CONFIG), "digest": sha(nb),
                  "size": len(nb)}
st, _, _ = reg_call("PUT", "/v2/globex/cache/manifests/2", json.dumps(cman).encode(),
                    {"Content-Type": MT_MANIFEST})
T.check("  ... a rewritten cache image naming acme's layer is pushed", ok and st == 201, st)
r, out = build(CDF, "globex2", extra=("--insecure-registry", RREG, "--cache-from",
                                       f"type=registry,ref={RREG}/globex/cache:2"))
T.check("a cache image's entries naming a layer the namespace never fetched are not imported "
        "(the step runs; acme's secret layer is not in the image)",
        r.returncode == 0 and read(os.path.join(out, "x")) == "globex\n" and
        read(os.path.join(out, "s")) is None and MARK not in r.stdout + r.stderr,
        r.stderr[-1500:])

# --- RUN --security=insecure cannot write into shared layer trees or the context ---
# (CAP_SYS_ADMIN in its user namespace: it can remount its bind mounts rw)
POISON = ("FROM {base} AS s\nRUN echo layer > /f\nFROM {base}\n"
          "RUN --security=insecure --mount=type=bind,from=s,target=/m "
          "--mount=type=bind,target=/ctx sh -c 'busybox mount -o remount,rw,bind /m; "
          "busybox mount -o remount,rw,bind /ctx; echo poisoned > /m/f; "
          "echo poisoned >> /m/etc/group; echo poisoned > /ctx/c; cat /m/f /ctx/c'\n")
r, out = build(POISON.format(base=BASE), "acme", files={"c": "context\n"},
               extra=("--allow", "security.insecure"), base=False)
T.check("an insecure step's writes through rw-remounted bind mounts stay in its copies",
        r.returncode == 0 and "poisoned\npoisoned" in r.stderr.replace("#4 ", ""),
        r.stderr[-2000:])
poisoned = []
for d, _, names in os.walk(os.path.join(ROOT, "build", "lowers")):
    for nm in names:
        p = os.path.join(d, nm)
        if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) < 1 << 20:
            with open(p, "rb") as f:
                if b"poisoned" in f.read():
                    poisoned.append(p)
T.check("  ... no shared layer tree was written (stage files and base image files)", not poisoned,
        poisoned)
T.check("  ... the build context was not written",
        read(os.path.join(T.tmp, f"ctx{N[0]}", "c")) == "context\n")
r, out = build("RUN cat /etc/group > /g\n", "globex", extra=("--no-cache",))
T.check("  ... another namespace's build of the same base sees the base unchanged",
        r.returncode == 0 and "poisoned" not in (read(os.path.join(out, "g")) or "poisoned"),
        r.stderr[-1000:])

# --- kiln prune finds namespaced step cache entries ---------------------------
for fn in os.listdir(os.path.join(ROOT, "refs")):  # every entry last used a day ago
    os.utime(os.path.join(ROOT, "refs", fn), (os.path.getmtime(ROOT) - 86400,) * 2)
r = kiln("prune", "--root", ROOT, "--cache-max-age", "1")
left = [n for n in (((read(os.path.join(ROOT, "refs", fn)) or "").splitlines() + ["", ""])[1]
                    for fn in os.listdir(os.path.join(ROOT, "refs"))) if n.startswith("cache/")]
ra3, _ = build(LC, "acme", files)
T.check("kiln prune --cache-max-age drops namespaced cache entries too (next build misses)",
        r.returncode == 0 and left == [] and steps(ra3.stderr).get(3) == "DONE",
        r.stderr + str(left) + ra3.stderr[-1000:])
T.check("the host is untouched at the end", HM.untouched())
T.done()
