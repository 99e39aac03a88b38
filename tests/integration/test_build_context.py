#!/usr/bin/env python3
"""Build contexts like docker's, with .git never in them: the fixture project
tests/fixtures/context-git (a static site with a .dockerignore that also tries
`!.git`, and a .kilnignore) gets a .git directory with a marker in its config
and a submodule's .git file; then neither the image nor the static output of a
`kiln build DIR` (with a Dockerfile: COPY . and a RUN bind mount of the
context; an auto build; a git source, by the CLI and by a server build) holds
.git or an ignored file. Hostile ignore files: a link to a host file, one over
the size cap."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)  # the step opens its mount sources as its own (mapped) root
BASE = make_base(ROOT)
GIT_MARKER = "GIT_CONFIG_MARKER_4711"
IGNORED = ("IGNORED_MARKER_ENV", "IGNORED_MARKER_LOG")


def project(name):
    """A copy of the fixture with a .git (marker in its config) and a submodule's .git file."""
    d = os.path.join(T.tmp, name)
    shutil.copytree(os.path.join(SRC, "tests", "fixtures", "context-git"), d, symlinks=True)
    os.makedirs(os.path.join(d, ".git", "objects"))
    with open(os.path.join(d, ".git", "config"), "w") as f:
        f.write(f"[remote \"origin\"]\n\turl = https://user:{GIT_MARKER}@example.invalid/x.git\n")
    os.makedirs(os.path.join(d, "vendor", "lib"), exist_ok=True)
    with open(os.path.join(d, "vendor", "lib", ".git"), "w") as f:
        f.write(f"gitdir: ../../.git/modules/lib {GIT_MARKER}\n")
    return d


def tree(d):
    """{relative path: content} of every file under d."""
    out = {}
    for base, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(base, n)
            rel = os.path.relpath(p, d)
            if os.path.isfile(p) and not os.path.islink(p):
                out[rel] = open(p, errors="replace").read()
            else:
                out.setdefault(rel, "")
    return out


def clean(name, files):
    """Checks that no .git path and no ignored file or marker is in files."""
    gits = [p for p in files if ".git" in p.split(os.sep)]
    leaks = [p for p, c in files.items() if GIT_MARKER in c or any(m in c for m in IGNORED)]
    T.check(f"{name}: no .git (directory or a submodule's file) in it", not gits, str(gits))
    T.check(f"{name}: no ignored file and no marker in it (secret.env, logs/)",
            not leaks and "secret.env" not in files and "logs/app.log" not in files, str(sorted(files)))
    T.check(f"{name}: a !pattern re-includes a file of an ignored directory (logs/keep.log)",
            "logs/keep.log" in files, str(sorted(files)))
    T.check(f"{name}: the rest of the context is there", "index.html" in files
            and "vendor/lib/mod.js" in files, str(sorted(files)))


# --- kiln build DIR with a Dockerfile: COPY . and a RUN bind mount of the context ---
ctx = project("df")
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(f"""FROM {BASE} AS list
RUN --mount=type=bind,target=/m cd /m && find . > /bind-list.txt && cat $(find . -type f) > /bind-all.txt
FROM scratch
COPY . /ctx/
COPY --from=list /bind-list.txt /bind-all.txt /
""")
out = os.path.join(T.tmp, "df-out")
r = kiln("build", "--root", ROOT, "--output", f"type=local,dest={out}", ctx)
T.check("Dockerfile build of a context with .git and .dockerignore succeeds", r.returncode == 0, r.stderr[-3000:])
files = tree(os.path.join(out, "ctx")) if os.path.isdir(out) else {}
clean("COPY . (kiln build DIR)", files)
T.check("COPY .: draft.html is there (.kilnignore is for auto builds only)", "draft.html" in files,
        str(sorted(files)))
listing = open(os.path.join(out, "bind-list.txt")).read() if os.path.exists(os.path.join(out, "bind-list.txt")) else ""
allc = open(os.path.join(out, "bind-all.txt")).read() if os.path.exists(os.path.join(out, "bind-all.txt")) else ""
T.check("RUN bind mount of the context: no .git and no ignored file listed",
        "index.html" in listing and ".git" not in listing and "secret.env" not in listing
        and "logs/app.log" not in listing and "logs/keep.log" in listing, listing)
T.check("RUN bind mount of the context: no marker readable",
        GIT_MARKER not in allc and not any(m in allc for m in IGNORED) and "kiln context-git" in allc, allc[-2000:])

# a named context (--build-context) leaves out .git too (it has no ignore file of its own)
named = project("named")
ctx5 = os.path.join(T.tmp, "df-named")
os.makedirs(ctx5)
with open(os.path.join(ctx5, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY --from=lib . /lib/\n")
out5 = os.path.join(T.tmp, "df-named-out")
r = kiln("build", "--root", ROOT, "--build-context", f"lib={named}", "--output", f"type=local,dest={out5}", ctx5)
files = tree(os.path.join(out5, "lib")) if os.path.isdir(out5) else {}
T.check("a named context: copied without .git (directory or a submodule's file)",
        r.returncode == 0 and "index.html" in files and not any(".git" in p.split(os.sep) for p in files)
        and not any(GIT_MARKER in c for c in files.values()), r.stderr[-2000:] + str(sorted(files)))

# COPY .git is refused by name (not silently empty)
ctx2 = project("df-git")
with open(os.path.join(ctx2, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY .git /g\n")
r = kiln("build", "--root", ROOT, "--output", f"type=local,dest={os.path.join(T.tmp, 'dfg-out')}", ctx2)
T.check("COPY .git fails naming the line and saying .git is never in the context",
        r.returncode != 0 and "Dockerfile:2" in r.stderr and ".git is never part of the build context" in r.stderr,
        r.stderr[-2000:])
T.check("COPY .git: nothing written", not os.path.exists(os.path.join(T.tmp, "dfg-out")), "")

# a .dockerignore that is a link to a host file: read inside the context (not found there), the
# host marker neither read nor honoured
host = os.path.join(T.tmp, "host-ignore")
with open(host, "w") as f:
    f.write("index.html\n")
ctx3 = project("df-link")
os.unlink(os.path.join(ctx3, ".dockerignore"))
os.symlink(host, os.path.join(ctx3, ".dockerignore"))
with open(os.path.join(ctx3, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /ctx/\n")
out3 = os.path.join(T.tmp, "df-link-out")
r = kiln("build", "--root", ROOT, "--output", f"type=local,dest={out3}", ctx3)
files = tree(os.path.join(out3, "ctx")) if os.path.isdir(out3) else {}
T.check("a .dockerignore linking to a host file: the host file's patterns are not used (index.html kept)",
        r.returncode == 0 and "index.html" in files and not any(".git" in p.split(os.sep) for p in files),
        r.stderr[-2000:] + str(sorted(files)))

# a .dockerignore over the cap: refused naming the file and the cap, nothing written
ctx4 = project("df-huge")
with open(os.path.join(ctx4, ".dockerignore"), "w") as f:
    f.write(("a/**/b/**/c*?[x-z]\n" * 60000))
with open(os.path.join(ctx4, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /ctx/\n")
out4 = os.path.join(T.tmp, "df-huge-out")
r = kiln("build", "--root", ROOT, "--output", f"type=local,dest={out4}", ctx4)
T.check("a .dockerignore over 1 MiB is refused naming it", r.returncode != 0 and ".dockerignore" in r.stderr
        and ("larger than" in r.stderr or "too large" in r.stderr or "bytes" in r.stderr), r.stderr[-1500:])
T.check("the huge .dockerignore: nothing written", not os.path.exists(out4), "")

# pathological patterns (backtracking `**` and `*` runs) against a deep path: matching a path is
# bounded; past the bound the build fails naming .dockerignore (never builds from an undecided set)
ctx6 = project("df-patho")
deep = os.path.join(ctx6, *(["a"] * 40))
os.makedirs(deep)
with open(os.path.join(deep, "a" * 64 + "c"), "w") as f:
    f.write("deep\n")
with open(os.path.join(ctx6, ".dockerignore"), "w") as f:
    f.write("**/**/**/**/**/**/**/**/a*a*a*a*a*a*a*a*a*a*a*a*a*b\n" * 200 + "secret.env\nlogs\n")
with open(os.path.join(ctx6, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /ctx/\n")
out6 = os.path.join(T.tmp, "df-patho-out")
r = kiln("build", "--root", ROOT, "--output", f"type=local,dest={out6}", ctx6, timeout=600)
T.check("pathological .dockerignore patterns: the build fails naming .dockerignore and the path",
        r.returncode != 0 and ".dockerignore: its patterns take too long to match a/a/" in r.stderr,
        r.stderr[-1500:])
T.check("pathological .dockerignore patterns: nothing written", not os.path.exists(out6), "")

# --- auto build (no Dockerfile): the static site output ---
images = os.environ.get("KILN_IMAGES_DIR", "/var/cache/kiln/images")
if os.path.isdir(os.path.join(images, "base")):
    actx = project("auto")
    aout = os.path.join(T.tmp, "auto-out")
    r = kiln("build", "--root", ROOT, "--output", f"type=local,dest={aout}", actx,
             env={"KILN_IMAGE_PREFIX": "oci:" + images, "KILN_IMAGES_DIR": images}, timeout=1500)
    T.check("auto build (static) of the project succeeds", r.returncode == 0, r.stderr[-3000:])
    files = tree(aout) if os.path.isdir(aout) else {}
    clean("auto build's static output", files)
    T.check("auto build: .kilnignore applies too (draft.html left out)", "draft.html" not in files
            and not any("IGNORED_MARKER_DRAFT" in c for c in files.values()), str(sorted(files)))
    T.check("auto build: a .kilnignore !pattern re-includes draft-final.html", "draft-final.html" in files,
            str(sorted(files)))

    # --- a git source: the CLI's (file://) and a server build's (http on loopback) ---
    import subprocess
    from gitserve import serve_git
    from server_common import TOKEN, Server
    repo = os.path.join(T.tmp, "repo")
    shutil.copytree(os.path.join(SRC, "tests", "fixtures", "context-git"), repo, symlinks=True)
    g = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.test"]
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    subprocess.run(g + ["add", "-A"], check=True)
    subprocess.run(g + ["commit", "-q", "-m", "site"], check=True)
    subprocess.run(g + ["config", "remote.origin.url", f"https://u:{GIT_MARKER}@example.invalid/x.git"], check=True)
    gout = os.path.join(T.tmp, "git-out")
    r = kiln("build", "--root", ROOT, "--output", f"type=local,dest={gout}", "file://" + repo,
             env={"KILN_IMAGE_PREFIX": "oci:" + images, "KILN_IMAGES_DIR": images}, timeout=1500)
    T.check("auto build of a git source (file://) succeeds", r.returncode == 0, r.stderr[-3000:])
    files = tree(gout) if os.path.isdir(gout) else {}
    clean("git source's static output", files)

    serve = os.path.join(T.tmp, "srv")
    os.makedirs(serve)
    subprocess.run(["git", "clone", "-q", "--bare", repo, os.path.join(serve, "site.git")], check=True)
    gitsrv, git_base = serve_git(serve)
    policy = {"allow_http_git": True, "allow_addresses": ["127.0.0.0/8"], "oci_dirs": [images]}
    srv = Server(os.path.join(T.tmp, "srv-root"), workers=1, config={"tokens": [TOKEN], "policy": policy},
                 extra=["--kiln-root", os.path.join(T.tmp, "kiln-root")],
                 env={"KILN_IMAGE_PREFIX": "oci:" + images}).start()
    st, body = srv.submit({"source": {"git": git_base + "/site.git", "ref": "main"}})
    bid = body.get("id") if isinstance(body, dict) else None
    T.check("server: the git source build is accepted", st == 202 and bid, body)
    if bid:
        srv.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True, timeout=600)
        b = srv.get(bid)
        T.check("server: the build succeeded", b.get("status") == "succeeded", b)
        st, a = srv.request("GET", "/v1/builds/%s/artifacts" % bid)
        paths = [f["path"] for f in a.get("files", [])] if isinstance(a, dict) else []
        T.check("server: the site is in the artifacts", "site/index.html" in paths, a)
        T.check("server: no .git and no ignored file in the artifacts (secret.env, logs/, draft.html)",
                not [p for p in paths if ".git" in p.split("/") or p.split("/")[-1] in
                     ("secret.env", "app.log", "draft.html")], paths)
        for f in a.get("files", []) if isinstance(a, dict) else []:
            st, data, _ = srv.request("GET", f["url"], raw=True)
            if GIT_MARKER.encode() in data or any(m.encode() in data for m in IGNORED):
                T.check("server: no marker in any artifact", False, f["path"])
                break
        else:
            T.check("server: no marker in any artifact", True)
    srv.term()
    gitsrv.shutdown()
else:
    T.skip("auto and git-source builds of the project",
           f"kiln's base image is not built ({images}/base: images/build.sh base)")

T.done()
