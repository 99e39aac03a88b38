"""kiln build engine behaviour: cache hits and invalidation, reproducible
digests, secrets, cache mounts, failing RUN, Dockerfile errors with line
numbers, -f -, named contexts, outputs (docker archive, digest/metadata
files) and a registry round trip (push, then FROM the pushed image)."""
import gzip
import json
import os
import re
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_image, write_tree  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
# the step opens its mount sources as its own (mapped) root: let it walk in
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)


def build(ctx, *extra, input=None):
    return kiln("build", "--root", ROOT, "--progress", "plain", "--build-arg", f"BASE={BASE}",
                *extra, ctx, input=input)


def ctx_dir(name, files):
    return write_tree(os.path.join(T.tmp, name), files)


def steps(stderr):
    """{step number: 'CACHED' | 'DONE' | 'ERROR'} and titles from plain progress."""
    titles, state = {}, {}
    for line in stderr.splitlines():
        m = re.match(r"#(\d+) (\[.*)", line)
        if m:
            titles[int(m.group(1))] = m.group(2)
        m = re.match(r"#(\d+) (CACHED|DONE|ERROR)", line)
        if m:
            state[int(m.group(1))] = m.group(2)
    return titles, state


def layer_blobs(layout):
    man, _ = read_image(layout)
    for l in man["layers"]:
        with open(os.path.join(layout, "blobs", "sha256", l["digest"].split(":")[1]), "rb") as f:
            data = f.read()
        yield gzip.decompress(data) if l["mediaType"].endswith("gzip") else data


# --- cache -------------------------------------------------------------------
cache_df = """ARG BASE
FROM ${BASE}
COPY a.txt /a.txt
RUN cat /a.txt > /a-copy
COPY b.txt /b.txt
RUN cat /b.txt > /b-copy
"""
c = ctx_dir("cache", {"Dockerfile": cache_df, "a.txt": "A1\n", "b.txt": "B1\n"})
r1 = build(c)
T.check("cache: first build", r1.returncode == 0, r1.stderr)
r2 = build(c)
_, st2 = steps(r2.stderr)
T.check("cache: rebuild hits every COPY and RUN", r2.returncode == 0 and
        [st2.get(i) for i in (2, 3, 4, 5)] == ["CACHED"] * 4, r2.stderr)
T.check("cache: same digest when nothing changed", r1.stdout == r2.stdout and r1.stdout.strip())
with open(os.path.join(c, "b.txt"), "w") as f:
    f.write("B2\n")
r3 = build(c, "-o", f"type=local,dest={T.tmp}/cache-fs")
_, st3 = steps(r3.stderr)
T.check("cache: changing b.txt reruns only its COPY and what follows",
        [st3.get(i) for i in (2, 3, 4, 5)] == ["CACHED", "CACHED", "DONE", "DONE"], r3.stderr)
T.check("cache: rerun saw the new content",
        open(f"{T.tmp}/cache-fs/b-copy").read() == "B2\n" if os.path.exists(f"{T.tmp}/cache-fs/b-copy")
        else False)
r4 = build(c, "--no-cache")
_, st4 = steps(r4.stderr)
T.check("cache: --no-cache runs every step", "CACHED" not in st4.values() and r4.returncode == 0,
        r4.stderr)

r = kiln("build", "--root", ROOT, "--progress", "json", "--build-arg", f"BASE={BASE}", c)
events = []
for line in r.stderr.splitlines():
    try:
        events.append(json.loads(line))
    except ValueError:
        pass
T.check("--progress json: one JSON event per line (start + cached/done per step)",
        r.returncode == 0 and len([ev for ev in events if ev.get("event") == "start"]) == 5 and
        len([ev for ev in events if ev.get("event") in ("cached", "done")]) == 5, r.stderr)

# --- reproducible digests ----------------------------------------------------
d1 = build(c, "--no-cache", "--source-date-epoch", "1700000000")
d2 = build(c, "--no-cache", "--source-date-epoch", "1700000000")
T.check("SOURCE_DATE_EPOCH: identical digests run to run",
        d1.returncode == 0 and d1.stdout == d2.stdout, d1.stdout + d2.stdout + d2.stderr)
d3 = kiln("build", "--root", ROOT, "--no-cache", "--build-arg", f"BASE={BASE}", c,
          env={"SOURCE_DATE_EPOCH": "1700000000"})
T.check("SOURCE_DATE_EPOCH from the environment", d3.stdout == d1.stdout, d3.stdout + d3.stderr)

# --- secrets -----------------------------------------------------------------
SECRET = "s3cr3t-kiln-value-91"
sf = os.path.join(T.tmp, "secret.txt")
with open(sf, "w") as f:
    f.write(SECRET)
sec = ctx_dir("secret", {"Dockerfile": """ARG BASE
FROM ${BASE}
RUN --mount=type=secret,id=tok grep -q kiln-value /run/secrets/tok && echo ok > /secret-ok
RUN --mount=type=secret,id=tok,target=/etc/tok.conf grep -q value-91 /etc/tok.conf && echo ok2 > /ok2
"""})
out = os.path.join(T.tmp, "secret-oci")
r = build(sec, "--secret", f"id=tok,src={sf}", "-o", f"type=oci,dest={out}")
T.check("secret: readable in RUN (default and custom target)", r.returncode == 0, r.stderr)
if r.returncode == 0:
    blobs = list(layer_blobs(out))
    names = [m.name for b in blobs for m in tarfile.open(fileobj=__import__("io").BytesIO(b))]
    T.check("secret: value absent from every layer", all(SECRET.encode() not in b for b in blobs))
    T.check("secret: mount points not left in layers",
            not any(n.endswith("run/secrets/tok") or n.endswith("etc/tok.conf") for n in names), names)
    _, cfg = read_image(out)
    T.check("secret: absent from config and logs",
            SECRET not in json.dumps(cfg) and SECRET not in r.stderr + r.stdout)
r = kiln("build", "--root", ROOT, "--build-arg", f"BASE={BASE}", "--no-cache", "--secret",
         "env=KILN_IT_TOK,id=tok", sec, env={"KILN_IT_TOK": SECRET})
T.check("secret from an environment variable (env=VAR)", r.returncode == 0 and
        SECRET not in r.stderr + r.stdout, r.stderr)
r = build(sec)
T.check("secret: missing --secret fails clearly", r.returncode == 1 and "secret tok" in r.stderr,
        r.stderr)

# --- cache mounts persist ----------------------------------------------------
cm = ctx_dir("cachemount", {"Dockerfile": """ARG BASE
FROM ${BASE}
RUN --mount=type=cache,id=kiln-it-cm,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count
"""})
r1 = build(cm, "--no-cache", "-o", f"type=local,dest={T.tmp}/cm1")
r2 = build(cm, "--no-cache", "-o", f"type=local,dest={T.tmp}/cm2")
c1 = open(f"{T.tmp}/cm1/count").read().strip() if r1.returncode == 0 else None
c2 = open(f"{T.tmp}/cm2/count").read().strip() if r2.returncode == 0 else None
T.check("cache mount: content persists across builds", c1 is not None and c2 is not None and
        int(c2) == int(c1) + 1, f"{c1} {c2} {r1.stderr[-500:]} {r2.stderr[-500:]}")
T.check("cache mount: not part of the layer", not os.path.exists(f"{T.tmp}/cm2/cache/log"))

cmo = ctx_dir("cachemount-opts", {"Dockerfile": """ARG BASE
FROM ${BASE}
RUN --mount=type=cache,id=opts,target=/c,uid=1000,gid=1000,mode=0750,sharing=locked ls -ldn /c > /c-perm
"""})
r = build(cmo, "-o", f"type=local,dest={T.tmp}/cmo-fs")
perm = open(f"{T.tmp}/cmo-fs/c-perm").read().split() if r.returncode == 0 else []
T.check("cache mount uid/gid/mode/sharing=locked", perm[:1] == ["drwxr-x---"] and
        perm[2:4] == ["1000", "1000"], r.stderr + " ".join(perm))

# --- --mount options expand ARG and ENV (as BuildKit) ----------------------------
# id=$CID (an ARG) shares the cache a later step names id=npm; target=$CDIR is an ENV;
# --build-arg CID=yarn moves the first step to the yarn cache (and misses the step cache).
cma = ctx_dir("cachemount-arg", {"Dockerfile": """ARG BASE
FROM ${BASE}
ARG CID=npm
ENV CDIR=/c
RUN --mount=type=cache,id=$CID,target=$CDIR echo "$CID" >> /c/log
RUN --mount=type=cache,id=npm,target=/n --mount=type=cache,id=yarn,target=/y \
    cat /n/log > /seen-npm; cat /y/log > /seen-yarn 2>/dev/null; true
"""})


def seen(dest):
    return [open(f"{dest}/seen-{k}").read().split() for k in ("npm", "yarn")]


r = build(cma, "-o", f"type=local,dest={T.tmp}/cma1")
got = seen(f"{T.tmp}/cma1") if r.returncode == 0 else None
T.check("cache mount id=$ARG (ENV target=$CDIR): shared with a later id=npm step",
        got == [["npm"], []] and not os.path.exists(f"{T.tmp}/cma1/c/log"),
        f"{got} {r.stderr[-800:]}")
r = build(cma, "--build-arg", "CID=yarn", "-o", f"type=local,dest={T.tmp}/cma2")
got = seen(f"{T.tmp}/cma2") if r.returncode == 0 else None
T.check("cache mount id=$ARG: --build-arg CID=yarn uses the yarn cache, npm's untouched",
        got == [["npm"], ["yarn"]], f"{got} {r.stderr[-800:]}")
cmf = ctx_dir("mount-from-var", {"Dockerfile": """ARG BASE
FROM ${BASE} AS tools
FROM ${BASE}
ARG S=tools
RUN --mount=type=bind,from=$S,target=/t true
"""})
r = build(cmf)
T.check("RUN --mount from=$VAR is refused naming it (as BuildKit)", r.returncode == 1 and
        "from=$S" in r.stderr and "alias stage" in r.stderr, r.stderr[-500:])
cmu = ctx_dir("mount-unset-target", {"Dockerfile": """ARG BASE
FROM ${BASE}
RUN --mount=type=cache,target=$UNSET/sub/.. true
"""})
r = build(cmu)
T.check("RUN --mount target=$UNSET (empty: the root /) is refused (as BuildKit)",
        r.returncode == 1 and 'invalid mount target "/sub/.."' in r.stderr, r.stderr[-500:])

# --- independent stages run in parallel ---------------------------------------
# Each stage waits (up to 20 s) for the other's marker in a shared cache mount:
# run one after the other, the first would give up and fail.
wait_for = "i=0; while [ ! -e /c/{o} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; test -e /c/{o}"
par = ctx_dir("parallel", {"Dockerfile": f"""ARG BASE
FROM ${{BASE}} AS left
RUN --mount=type=cache,id=par,target=/c touch /c/left && {wait_for.format(o="right")} && echo L > /l
FROM ${{BASE}} AS right
RUN --mount=type=cache,id=par,target=/c touch /c/right && {wait_for.format(o="left")} && echo R > /r
FROM ${{BASE}}
COPY --from=left /l /l
COPY --from=right /r /r
"""})
r = build(par, "-o", f"type=local,dest={T.tmp}/par-fs")
T.check("independent stages run in parallel", r.returncode == 0 and
        open(f"{T.tmp}/par-fs/l").read() + open(f"{T.tmp}/par-fs/r").read() == "L\nR\n", r.stderr)

# --- sharing=private: concurrent writers get instances of their own ------------
# Both stages run at once (shown above); each looks for the other's marker for
# 3 s. A shared cache would show it; private instances must not.
look = "i=0; while [ ! -e /c/{o} ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; ls /c > /{me}"
prv = ctx_dir("private", {"Dockerfile": f"""ARG BASE
FROM ${{BASE}} AS left
RUN --mount=type=cache,id=prv,target=/c,sharing=private touch /c/left && {look.format(o="right", me="l")}
FROM ${{BASE}} AS right
RUN --mount=type=cache,id=prv,target=/c,sharing=private touch /c/right && {look.format(o="left", me="r")}
FROM ${{BASE}}
COPY --from=left /l /l
COPY --from=right /r /r
"""})
r = build(prv, "-o", f"type=local,dest={T.tmp}/prv-fs")
seen_l = open(f"{T.tmp}/prv-fs/l").read().split() if r.returncode == 0 else []
seen_r = open(f"{T.tmp}/prv-fs/r").read().split() if r.returncode == 0 else []
T.check("cache mount sharing=private: concurrent steps see only their own instance",
        "left" in seen_l and "right" not in seen_l and "right" in seen_r and "left" not in seen_r,
        f"{seen_l} {seen_r} {r.stderr[-500:]}")
bad = ctx_dir("badsharing", {"Dockerfile": """ARG BASE
FROM ${BASE}
RUN --mount=type=cache,target=/c,sharing=sometimes true
"""})
r = build(bad)
T.check("cache mount with an unknown sharing mode is an error naming it",
        r.returncode == 1 and "sharing=sometimes" in r.stderr, r.stderr[-500:])

# --- ONBUILD triggers run in the child build ----------------------------------
parent_oci = os.path.join(T.tmp, "onbuild-parent")
pc = ctx_dir("onbuild-parent", {"Dockerfile": """ARG BASE
FROM ${BASE}
ONBUILD COPY app.txt /app/
ONBUILD RUN cat /app/app.txt > /app/seen
"""})
r = build(pc, "-t", "parent:1", "-o", f"type=oci,dest={parent_oci}")
T.check("ONBUILD: parent built with triggers", r.returncode == 0, r.stderr)
cc = ctx_dir("onbuild-child", {"app.txt": "child app\n", "Dockerfile": "FROM oci:%s:1\n" % parent_oci})
child_oci = os.path.join(T.tmp, "onbuild-child-oci")
r = kiln("build", "--root", ROOT, "-o", f"type=local,dest={T.tmp}/onbuild-fs", "-o",
         f"type=oci,dest={child_oci}", cc)
ok = r.returncode == 0 and os.path.exists(f"{T.tmp}/onbuild-fs/app/seen") and \
    open(f"{T.tmp}/onbuild-fs/app/seen").read() == "child app\n"
T.check("ONBUILD: triggers run after FROM in the child", ok, r.stderr)
if ok:
    _, ccfg = read_image(child_oci)
    T.check("ONBUILD: triggers cleared in the child image", not ccfg["config"].get("OnBuild"), ccfg)

# --- ssh agent forwarding ------------------------------------------------------
if __import__("shutil").which("ssh-agent"):
    sock = os.path.join(T.tmp, "agent.sock")
    agent = T.spawn(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(sock):
            break
        __import__("time").sleep(0.05)
    sc = ctx_dir("ssh", {"Dockerfile": """ARG BASE
FROM ${BASE}
RUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /sock-path
"""})
    r = build(sc, "--ssh", f"default={sock}", "-o", f"type=local,dest={T.tmp}/ssh-fs")
    T.check("RUN --mount=type=ssh sees the caller's agent socket", r.returncode == 0 and
            open(f"{T.tmp}/ssh-fs/sock-path").read() == "/run/buildkit/ssh_agent.0\n", r.stderr)
    r = build(sc, "--no-cache")
    T.check("RUN --mount=type=ssh without --ssh fails clearly",
            r.returncode == 1 and "--ssh default" in r.stderr, r.stderr)
else:
    T.skip("RUN --mount=type=ssh", "ssh-agent not installed")

# --- failing RUN -------------------------------------------------------------
fail_out = os.path.join(T.tmp, "fail-oci")
fr = ctx_dir("failrun", {"Dockerfile": """ARG BASE
FROM ${BASE}
RUN echo before
RUN echo boom-line-1 && echo boom-line-2 >&2 && exit 3
RUN echo never
"""})
r = build(fr, "-o", f"type=oci,dest={fail_out}")
T.check("failing RUN: exit status 1", r.returncode == 1, r.stderr)
T.check("failing RUN: reports the exit code and the line",
        "exit code: 3" in r.stderr and "Dockerfile:4" in r.stderr, r.stderr)
T.check("failing RUN: its output shown once, as it ran (plain: not again in the error)",
        [ln.split(" ", 1)[1:] for ln in r.stderr.splitlines() if ln.endswith("boom-line-2")
         and not ln.endswith("echo boom-line-2")] == [["boom-line-2"]], r.stderr)
T.check("failing RUN: later steps not run, nothing written",
        "never" not in r.stderr and not os.path.exists(fail_out), r.stderr)

# --- Dockerfile errors -------------------------------------------------------
errors = [
    ("unknown instruction", "ARG BASE\nFROM ${BASE}\nFROBNICATE x\n", "Dockerfile:3", "FROBNICATE"),
    ("missing COPY source", "ARG BASE\nFROM ${BASE}\nRUN true\nCOPY nothere /x\n", "Dockerfile:4",
     "not found"),
    ("bad flag", "ARG BASE\nFROM ${BASE}\nCOPY --bogus=1 Dockerfile /x\n", "Dockerfile:3", "--bogus"),
    ("missing FROM build arg", "ARG IMG\nFROM ${IMG}\n", "Dockerfile:2", "blank"),
    ("parse error", "ARG BASE\nFROM ${BASE}\nENV\n", "Dockerfile:3", "ENV"),
    ("JSON not strings", "ARG BASE\nFROM ${BASE}\nCMD [1]\n", "Dockerfile:3", "strings"),
    ("duplicate stage", "ARG BASE\nFROM ${BASE} AS a\nFROM ${BASE} AS A\n", "Dockerfile:3",
     "duplicate stage"),
    ("bad FROM flag", "ARG BASE\nFROM --nope=1 ${BASE}\n", "Dockerfile:2", "--nope"),
    ("unknown stage index", "ARG BASE\nFROM ${BASE}\nCOPY --from=3 /x /y\n", "Dockerfile:3",
     "unknown stage 3"),
    ("later stage", "ARG BASE\nFROM ${BASE} AS first\nCOPY --from=late /x /y\n"
     "FROM ${BASE} AS late\nFROM first\n", "Dockerfile:3", "defined after"),
]
for name, text, where, what in errors:
    e = ctx_dir("err-" + name.replace(" ", "-"), {"Dockerfile": text})
    r = build(e)
    T.check(f"error: {name}", r.returncode == 1 and where in r.stderr and what in r.stderr, r.stderr)
r = build(c, "--target", "nosuchstage")
T.check("error: unknown --target", r.returncode == 1 and "nosuchstage" in r.stderr, r.stderr)

# --- -f -, --target, named contexts, outputs --------------------------------
extra = write_tree(os.path.join(T.tmp, "extra-ctx"), {"lib/data.txt": "from extra\n"})
nc = ctx_dir("named", {"marker": "m\n"})
df = """ARG BASE
FROM ${BASE} AS one
RUN echo one > /one
FROM ${BASE} AS two
COPY --from=extra lib/data.txt /data.txt
COPY --from=one /one /one
COPY marker /marker
"""
fs = os.path.join(T.tmp, "named-fs")
dig = os.path.join(T.tmp, "digest.txt")
meta = os.path.join(T.tmp, "meta.json")
arch = os.path.join(T.tmp, "image.tar")
r = build(nc, "-f", "-", "--build-context", f"extra={extra}", "--target", "two", "-t", "named:1",
          "--label", "org.opencontainers.image.source=kiln-it", "--platform", "linux/amd64",
          "-o", f"type=local,dest={fs}", "-o", f"type=docker,dest={arch}",
          "--digest-file", dig, "--metadata-file", meta, input=df)
T.check("-f - with a named context and --target", r.returncode == 0, r.stderr)
if r.returncode == 0:
    T.check("named context: COPY --from=NAME", open(f"{fs}/data.txt").read() == "from extra\n")
    T.check("stage copy and context copy", open(f"{fs}/one").read() == "one\n" and
            open(f"{fs}/marker").read() == "m\n")
    T.check("--digest-file holds the printed digest", open(dig).read().strip() == r.stdout.strip())
    m = json.load(open(meta))
    T.check("--metadata-file: digests, tags, step timings",
            m.get("containerimage.digest") == r.stdout.strip() and m.get("tags") == ["named:1"] and
            len(m.get("steps", [])) >= 4 and "containerimage.config.digest" in m, json.dumps(m))
    with tarfile.open(arch) as t:
        mf = json.load(t.extractfile("manifest.json"))
    T.check("type=docker writes a docker archive", mf[0].get("RepoTags") == ["named:1"], mf)
    with tarfile.open(arch) as t:
        dcfg = json.load(t.extractfile(mf[0]["Config"]))
    T.check("--label lands in the image config",
            dcfg["config"].get("Labels", {}).get("org.opencontainers.image.source") == "kiln-it",
            dcfg)

# --- hardlinks in a COPY stay hardlinks; docker-image:// named context -----------
hl = ctx_dir("hardlinks", {"Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY . /h/\n"
                           "COPY --from=img /etc/passwd /img-passwd\n", "a": "same\n"})
os.link(os.path.join(hl, "a"), os.path.join(hl, "b"))
r = build(hl, "--build-context", f"img=docker-image://{BASE}", "-o", f"type=local,dest={T.tmp}/hl-fs")
T.check("COPY keeps hardlinks", r.returncode == 0 and
        os.stat(f"{T.tmp}/hl-fs/h/a").st_ino == os.stat(f"{T.tmp}/hl-fs/h/b").st_ino, r.stderr)
T.check("COPY --from a docker-image:// named context",
        r.returncode == 0 and "app:x:1000" in open(f"{T.tmp}/hl-fs/img-passwd").read())

# --- context as a tarball on stdin -------------------------------------------
import io  # noqa: E402
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for name, data in (("Dockerfile", b"ARG BASE\nFROM ${BASE}\nCOPY hello /hello\n"),
                       ("hello", b"from a tarball\n")):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
r = kiln("build", "--root", ROOT, "--build-arg", f"BASE={BASE}", "-o",
         f"type=local,dest={T.tmp}/stdin-fs", "-", input=buf.getvalue())
T.check("context tarball on stdin (-)", r.returncode == 0 and
        open(f"{T.tmp}/stdin-fs/hello").read() == "from a tarball\n", r.stderr)

# --- ADD <url> [--checksum] (a local HTTP server) -------------------------------
import hashlib  # noqa: E402
from kilntest import free_port, wait_port  # noqa: E402
www = write_tree(os.path.join(T.tmp, "www"), {"files/tool.txt": "downloaded\n"})
hport = free_port()
T.spawn([sys.executable, "-m", "http.server", str(hport), "--bind", "127.0.0.1", "--directory", www],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if wait_port(hport):
    url = f"http://127.0.0.1:{hport}/files/tool.txt"
    good = "sha256:" + hashlib.sha256(b"downloaded\n").hexdigest()
    ac = ctx_dir("addurl", {"Dockerfile": f"""ARG BASE
FROM ${{BASE}}
ADD {url} /dl/
ADD --checksum={good} {url} /dl/checked.txt
"""})
    # the server is on loopback: the operator's allowlist opens it for ADD
    r = build(ac, "--allow-address", "127.0.0.1/32", "-o", f"type=local,dest={T.tmp}/addurl-fs")
    fs_ = f"{T.tmp}/addurl-fs"
    ok = r.returncode == 0 and open(f"{fs_}/dl/tool.txt").read() == "downloaded\n" and \
        open(f"{fs_}/dl/checked.txt").read() == "downloaded\n"
    T.check("ADD <url> and ADD --checksum", ok, r.stderr)
    if ok:
        T.check("ADD <url> files are 0600", oct(os.stat(f"{fs_}/dl/tool.txt").st_mode & 0o777) == "0o600")
    bad = ctx_dir("addurl-bad", {"Dockerfile": f"ARG BASE\nFROM ${{BASE}}\n"
                                 f"ADD --checksum=sha256:{'0' * 64} {url} /x\n"})
    r = build(bad, "--allow-address", "127.0.0.1/32")
    T.check("ADD --checksum mismatch fails", r.returncode == 1 and "checksum mismatch" in r.stderr,
            r.stderr)
else:
    T.check("local HTTP server starts", False)

# --- registry round trip ------------------------------------------------------
try:
    port = start_registry()
except Exception as ex:  # noqa: BLE001
    port = None
    T.check("registry starts", False, str(ex))
if port:
    reg = f"127.0.0.1:{port}"
    r = build(c, "-t", f"{reg}/kiln/base:1", "--push", "--insecure-registry", reg)
    T.check("--push to a local registry", r.returncode == 0, r.stderr)
    sk = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{reg}/kiln/base:1"],
                        capture_output=True, text=True)
    T.check("skopeo sees the pushed image", sk.returncode == 0 and
            json.loads(sk.stdout or "{}").get("Digest") == r.stdout.strip(), sk.stderr + sk.stdout)
    # registry cache: push from one root, reuse from a fresh one
    rA = kiln("build", "--root", os.path.join(T.tmp, "rootA"), "--build-arg", f"BASE={BASE}",
              "--insecure-registry", reg, "--cache-to", f"type=registry,ref={reg}/kiln/cache:1,mode=max",
              "--progress", "plain", c)
    T.check("--cache-to type=registry pushes the cache", rA.returncode == 0 and
            "exported" in rA.stderr, rA.stderr)
    rB = kiln("build", "--root", os.path.join(T.tmp, "rootB"), "--build-arg", f"BASE={BASE}",
              "--insecure-registry", reg, "--cache-from", f"type=registry,ref={reg}/kiln/cache:1",
              "--progress", "plain", c)
    _, stB = steps(rB.stderr)
    T.check("--cache-from on a fresh root: every COPY and RUN cached, same digest",
            rB.returncode == 0 and [stB.get(i) for i in (2, 3, 4, 5)] == ["CACHED"] * 4 and
            rB.stdout == rA.stdout, rB.stderr + rA.stdout + rB.stdout)
    rC = kiln("build", "--root", os.path.join(T.tmp, "rootC"), "--build-arg", f"BASE={BASE}",
              "--insecure-registry", reg, "--cache-repo", f"{reg}/kiln/cr", "--progress", "plain", c)
    rD = kiln("build", "--root", os.path.join(T.tmp, "rootD"), "--build-arg", f"BASE={BASE}",
              "--insecure-registry", reg, "--cache-repo", f"{reg}/kiln/cr", "--progress", "plain", c)
    _, stD = steps(rD.stderr)
    T.check("--cache-repo (kaniko style) round trip",
            rC.returncode == 0 and rD.returncode == 0 and
            [stD.get(i) for i in (2, 3, 4, 5)] == ["CACHED"] * 4, rC.stderr + rD.stderr)
    # FROM through a mirror: the image is only in the mirror registry
    mport = start_registry()
    mreg = f"127.0.0.1:{mport}"
    r = build(c, "-t", f"{mreg}/upstream/base:1", "--push", "--insecure-registry", mreg)
    fm = ctx_dir("frommirror", {"Dockerfile": "FROM registry.invalid/upstream/base:1\nRUN cat /b-copy > /m\n"})
    r = kiln("build", "--root", os.path.join(T.tmp, "root-mirror"), "--insecure-registry", mreg,
             "--registry-mirror", f"registry.invalid={mreg}", "-o",
             f"type=local,dest={T.tmp}/mirror-fs", fm)
    T.check("FROM resolves through --registry-mirror", r.returncode == 0 and
            open(f"{T.tmp}/mirror-fs/m").read() == "B2\n", r.stderr)
    fr2 = ctx_dir("fromreg", {"Dockerfile": f"FROM {reg}/kiln/base:1\nRUN cat /a-copy /b-copy > /both\n"})
    r = kiln("build", "--root", os.path.join(T.tmp, "root2"), "--insecure-registry", reg,
             "-o", f"type=local,dest={T.tmp}/fromreg-fs", fr2)
    T.check("FROM a registry image (fresh root: pulled)", r.returncode == 0 and
            open(f"{T.tmp}/fromreg-fs/both").read() == "A1\nB2\n", r.stderr)

T.done()
