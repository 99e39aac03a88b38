"""COPY --from an earlier stage: keyed by the stage's cache key and the paths
(an unchanged stage is a cache hit without touching its files, a changed
stage is a miss), and on a miss the copied paths are merged from the stage's
layers with overlay semantics (whiteouts, opaque directories, hardlinks,
symlinks, globs). RUN --mount=type=bind keys on what it mounts (a stage's
cache key, context files' content). Also: an OCI layout written on the store's filesystem
(blobs hardlinked) equals one written on another filesystem (blobs copied)."""
import filecmp
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base, read_text as read, write_tree  # noqa: E402
from kilntest import T, kiln  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)

DF = """ARG BASE
FROM ${BASE} AS deps
COPY deps.txt /src/deps.txt
RUN mkdir -p /out/sub /out/opq /out/keep && cat /src/deps.txt > /out/sub/b && \\
    echo gone > /out/gone && echo old > /out/opq/old && echo k > /out/keep/k && \\
    echo linked > /out/hl1 && ln /out/hl1 /out/hl2 && ln -s sub/b /out/lnk && \\
    echo one > /out/one.txt && echo two > /out/two.txt

FROM deps AS mid
COPY app.txt /out/app.txt
RUN rm /out/gone && rm -rf /out/opq && mkdir /out/opq && echo new > /out/opq/new

FROM ${BASE}
COPY --from=deps /out /deps-out
COPY --from=mid /out /mid-out
COPY --from=mid /out/sub/b /b
COPY --from=mid /out/lnk /lnk
COPY --from=mid /out/*.txt /globs/
"""
COPY_STEPS = {"deps": "COPY --from=deps /out /deps-out", "mid": "COPY --from=mid /out /mid-out"}


def build(ctx, *extra):
    return kiln("build", "--root", ROOT, "--progress", "plain", "--build-arg", f"BASE={BASE}",
                *extra, ctx)


def step_states(stderr):
    """{step title: 'CACHED' | 'DONE' | 'ERROR'} from plain progress."""
    titles, state = {}, {}
    for line in stderr.splitlines():
        m = re.match(r"#(\d+) \[[^\]]*\] (.*)", line)
        if m:
            titles[int(m.group(1))] = m.group(2)
        m = re.match(r"#(\d+) (CACHED|DONE|ERROR)", line)
        if m:
            state[int(m.group(1))] = m.group(2)
    return {titles[n]: s for n, s in state.items() if n in titles}


ctx = write_tree(os.path.join(T.tmp, "ctx"), {"Dockerfile": DF, "deps.txt": "deps-1\n",
                                              "app.txt": "app-1\n"})
fs = os.path.join(T.tmp, "fs1")
r = build(ctx, "-o", f"type=local,dest={fs}")
T.check("multi-stage COPY --from builds", r.returncode == 0, r.stderr)
T.check("COPY --from: a directory merged across the stage's layers",
        read(f"{fs}/mid-out/sub/b") == "deps-1\n" and read(f"{fs}/mid-out/app.txt") == "app-1\n" and
        read(f"{fs}/mid-out/keep/k") == "k\n", r.stderr)
T.check("COPY --from: a file deleted in a later layer is not copied",
        not os.path.lexists(f"{fs}/mid-out/gone") and read(f"{fs}/deps-out/gone") == "gone\n")
T.check("COPY --from: a directory recreated in a later layer holds only its new content",
        read(f"{fs}/mid-out/opq/new") == "new\n" and not os.path.lexists(f"{fs}/mid-out/opq/old"),
        str(os.listdir(f"{fs}/mid-out/opq")) if os.path.isdir(f"{fs}/mid-out/opq") else "")
T.check("COPY --from: hardlinks stay hardlinks, symlinks stay symlinks",
        os.path.exists(f"{fs}/mid-out/hl2") and
        os.stat(f"{fs}/mid-out/hl1").st_ino == os.stat(f"{fs}/mid-out/hl2").st_ino and
        os.path.islink(f"{fs}/mid-out/lnk") and os.readlink(f"{fs}/mid-out/lnk") == "sub/b")
T.check("COPY --from: a single file, a symlink source, a glob",
        read(f"{fs}/b") == "deps-1\n" and os.path.lexists(f"{fs}/lnk") and
        sorted(os.listdir(f"{fs}/globs")) == ["app.txt", "one.txt", "two.txt"]
        if os.path.isdir(f"{fs}/globs") else False, r.stderr)

r = build(ctx)
st = step_states(r.stderr)
T.check("unchanged stages: every COPY --from is a cache hit",
        r.returncode == 0 and all(st.get(COPY_STEPS[k]) == "CACHED" for k in COPY_STEPS), st)

write_tree(ctx, {"app.txt": "app-2\n"})
fs2 = os.path.join(T.tmp, "fs2")
r = build(ctx, "-o", f"type=local,dest={fs2}")
st = step_states(r.stderr)
T.check("a changed stage misses, an unchanged one still hits",
        st.get(COPY_STEPS["deps"]) == "CACHED" and st.get(COPY_STEPS["mid"]) == "DONE", st)
T.check("the miss copied the stage's new content", read(f"{fs2}/mid-out/app.txt") == "app-2\n")

write_tree(ctx, {"deps.txt": "deps-2\n"})
fs3 = os.path.join(T.tmp, "fs3")
r = build(ctx, "-o", f"type=local,dest={fs3}")
st = step_states(r.stderr)
T.check("changing the first stage invalidates COPY --from of it and of stages built on it",
        st.get(COPY_STEPS["deps"]) == "DONE" and st.get(COPY_STEPS["mid"]) == "DONE" and
        read(f"{fs3}/deps-out/sub/b") == "deps-2\n" and read(f"{fs3}/b") == "deps-2\n", st)

bad = write_tree(os.path.join(T.tmp, "bad"), {"Dockerfile": "ARG BASE\nFROM ${BASE} AS s\n"
                                              "RUN mkdir /d\nFROM ${BASE}\n"
                                              "COPY --from=s /d/missing /x\n"})
r = build(bad)
T.check("COPY --from a path missing in the stage fails naming it",
        r.returncode == 1 and "/d/missing" in r.stderr and "not found" in r.stderr, r.stderr)

dots = write_tree(os.path.join(T.tmp, "dots"), {
    "Dockerfile": "ARG BASE\nFROM ${BASE} AS s\nRUN mkdir -p /d/e && echo in > /d/e/f\n"
                  "FROM ${BASE}\nCOPY --from=s ../../d/./e/../e/f /clamped\n"
                  "COPY --from=s /d/e/.. /whole-d\n"})
fsd = os.path.join(T.tmp, "dots-fs")
r = build(dots, "-o", f"type=local,dest={fsd}")
T.check("COPY --from: '..' and '.' in a stage path are cleaned at the stage's root",
        r.returncode == 0 and read(f"{fsd}/clamped") == "in\n" and
        read(f"{fsd}/whole-d/e/f") == "in\n", r.stderr)

# --- RUN --mount=type=bind: the mounted files are inputs of the step ---------
bind = write_tree(os.path.join(T.tmp, "bind"), {
    "Dockerfile": "ARG BASE\nFROM ${BASE} AS a\nCOPY a.txt /a.txt\nFROM ${BASE}\n"
                  "RUN --mount=type=bind,from=a,source=/a.txt,target=/m cat /m > /from-stage\n"
                  "RUN --mount=type=bind,source=b.txt,target=/n cat /n > /from-context\n",
    "a.txt": "A1\n", "b.txt": "B1\n"})
RUN_STAGE = "RUN --mount=type=bind,from=a,source=/a.txt,target=/m cat /m > /from-stage"
RUN_CTX = "RUN --mount=type=bind,source=b.txt,target=/n cat /n > /from-context"
r = build(bind)
r = build(bind)
st = step_states(r.stderr)
T.check("RUN bind mounts: unchanged sources are cache hits",
        st.get(RUN_STAGE) == "CACHED" and st.get(RUN_CTX) == "CACHED", st)
write_tree(bind, {"a.txt": "A2\n"})
fsb = os.path.join(T.tmp, "bind-fs1")
r = build(bind, "-o", f"type=local,dest={fsb}")
st = step_states(r.stderr)
T.check("RUN --mount=type=bind,from=STAGE reruns when the stage changed",
        st.get(RUN_STAGE) == "DONE" and read(f"{fsb}/from-stage") == "A2\n", st)
write_tree(bind, {"b.txt": "B2\n"})
r = build(bind, "-o", f"type=local,dest={fsb}-2")
T.check("RUN --mount=type=bind of a context file reruns when the file changed",
        step_states(r.stderr).get(RUN_CTX) == "DONE" and read(f"{fsb}-2/from-context") == "B2\n",
        r.stderr)

# --- OCI layout: hardlinked blobs (same filesystem) vs copied blobs ----------
same = os.path.join(T.tmp, "layout-same")
r1 = build(ctx, "-o", f"type=oci,dest={same}")
other_fs = tempfile.mkdtemp(prefix="kiln-it-layout.", dir="/dev/shm") \
    if os.path.isdir("/dev/shm") else None
if other_fs is None or os.stat(other_fs).st_dev == os.stat(ROOT).st_dev:
    T.skip("OCI layout: hardlinked and copied outputs are identical", "no second filesystem")
else:
    try:
        other = os.path.join(other_fs, "layout")
        r2 = build(ctx, "-o", f"type=oci,dest={other}")
        blobs = os.path.join(same, "blobs", "sha256")
        names = sorted(os.listdir(blobs)) if r1.returncode == 0 else []
        store = os.path.join(ROOT, "blobs", "sha256")
        linked = [n for n in names if os.path.exists(os.path.join(store, n)) and
                  os.path.samefile(os.path.join(blobs, n), os.path.join(store, n))]
        T.check("OCI layout on the store's filesystem: blobs are hardlinks of the store's",
                names and len(linked) == len(names), f"{len(linked)}/{len(names)}")
        _, mismatch, errors = filecmp.cmpfiles(same, other, ["index.json", "oci-layout"],
                                               shallow=False)
        bmatch, bmis, berr = filecmp.cmpfiles(os.path.join(same, "blobs", "sha256"),
                                              os.path.join(other, "blobs", "sha256"), names,
                                              shallow=False)
        T.check("OCI layout copied to another filesystem is byte-identical",
                r2.returncode == 0 and not mismatch and not errors and not bmis and not berr and
                sorted(os.listdir(os.path.join(other, "blobs", "sha256"))) == names,
                f"{mismatch} {errors} {bmis} {berr} {r2.stderr[-300:]}")
    finally:
        shutil.rmtree(other_fs, ignore_errors=True)

T.done()
