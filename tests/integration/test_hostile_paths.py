"""Hostile paths: a Dockerfile or a context must never read or write the
host through symlinks, "..", hardlinks, FIFOs or devices. Every case plants a
marker on the host (outside the context) and checks that its content is
absent from the build's output, the image and the error, that nothing was
written next to it, and that the result is docker's (links resolved inside
the image / context / stage root) or the expected error."""
import os
import socket
import stat
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import (HostMarker, make_base, make_busybox_rootfs,  # noqa: E402
                       read_text as read, write_tree)
from kilntest import T, kiln  # noqa: E402

ROOT = os.path.join(T.tmp, "root")
os.chmod(T.tmp, 0o711)
BASE = make_base(ROOT)

HM = HostMarker(extra={"passwd": "evil:x:4242:4242:{mark}:/:/bin/sh\n", "hosttree.txt": "{mark}"})
MARK, HOST, HOSTW, SECRET = HM.mark, HM.dir, HM.w, HM.secret
HOSTPASSWD = HM.path("passwd")
N = [0]


def build(df, files=None, links=None, extra=(), prep=None, timeout=300):
    """Builds df in a fresh context (files, symlinks {path: target}, prep(ctx)
    for anything else) to a local dir. Returns (result, output dir)."""
    N[0] += 1
    ctx = os.path.join(T.tmp, f"ctx{N[0]}")
    out = os.path.join(T.tmp, f"out{N[0]}")
    os.makedirs(ctx)
    write_tree(ctx, dict(files or {}))
    if df is not None:
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(f"FROM {BASE} AS base\n" + df)
    for p, t in (links or {}).items():
        os.makedirs(os.path.dirname(os.path.join(ctx, p)), exist_ok=True)
        os.symlink(t, os.path.join(ctx, p))
    if prep:
        prep(ctx)
    try:
        r = kiln("build", "--root", ROOT, "--progress", "plain", "-o", f"type=local,dest={out}",
                 *extra, ctx, env={"KILN_HOSTILE_ENV": MARK}, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        r = subprocess.CompletedProcess(e.cmd, 124, "", f"timed out after {timeout}s")
    return r, out


def leaked(r, out):
    """Where the marker shows up: the output, the error or a file of the image."""
    where = []
    if MARK in (r.stdout or "") + (r.stderr or ""):
        where.append("build output")
    for d, dirs, names in os.walk(out):
        for n in names:
            p = os.path.join(d, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                if MARK.encode() in f.read():
                    where.append(p)
    return where


def check(name, r, out, ok, expect=None, detail=""):
    """The case's result (ok: built or not), the error text, no leak, no write."""
    lk = leaked(r, out)
    good = (r.returncode == 0) == ok and (expect is None or expect in r.stderr)
    T.check(f"{name}: {'builds' if ok else 'refused'}" + (f" ({expect})" if expect else ""),
            good, (detail + "\n" if detail else "") + r.stderr[-3000:])
    T.check(f"{name}: the host marker is not read", not lk, f"found in {lk}")
    T.check(f"{name}: nothing written on the host", HM.untouched(), os.listdir(HOSTW))
    HM.reset_w()  # so that the next cases start clean


def rl(p):
    try:
        return os.readlink(p)
    except OSError:
        return None


def inside(out, p):
    return os.path.join(out, p.lstrip("/"))


# --- COPY/ADD destinations ----------------------------------------------------
r, out = build(f"RUN ln -s {HOSTW} /evil\nCOPY f /evil/f\n", {"f": "hi\n"})
check("COPY to a dir through an absolute link made by RUN", r, out, True)
T.check("  ... lands inside the image (the link followed in the rootfs)",
        rl(inside(out, "evil")) == HOSTW and read(inside(out, HOSTW + "/f")) == "hi\n",
        r.stderr[-2000:])

r, out = build(f"RUN mkdir -p /a && ln -s ../../../../../../../..{HOSTW} /a/l\nCOPY f /a/l/sub/\n",
               {"f": "hi\n"})
check("COPY through a relative escaping link in a parent", r, out, True)
T.check("  ... lands inside the image", read(inside(out, HOSTW + "/sub/f")) == "hi\n")

r, out = build(f"RUN ln -s {HOSTW} /wd\nWORKDIR /wd/x\nCOPY f .\nRUN test -f /wd/x/f\n",
               {"f": "hi\n"})
check("WORKDIR through a link, then COPY .", r, out, True)
T.check("  ... the work dir is made inside the image", read(inside(out, HOSTW + "/x/f")) == "hi\n")

r, out = build("COPY d1/ d2/ /dst/\n", {"d2/x/evil": "written\n"}, {"d1/x": HOSTW})
check("COPY: a link from an earlier source, a later source writes under it", r, out, True)
T.check("  ... the later source's file is in the image",
        read(inside(out, "dst/x/evil")) == "written\n" or
        read(inside(out, HOSTW + "/evil")) == "written\n", r.stderr[-2000:])


def tar_with_link(ctx):
    with tarfile.open(os.path.join(ctx, "a.tar"), "w") as t:
        li = tarfile.TarInfo("l")
        li.type = tarfile.SYMTYPE
        li.linkname = HOSTW
        t.addfile(li)
        data = b"from-tar\n"
        fi = tarfile.TarInfo("l/f")
        fi.size = len(data)
        import io
        t.addfile(fi, io.BytesIO(data))


r, out = build("ADD a.tar /t/\n", prep=tar_with_link)
check("ADD: an archive with a link then a file under it", r, out, True)
T.check("  ... the file lands inside the image, or the archive is refused by the unpacker and "
        "copied as a file", read(inside(out, "t" + HOSTW + "/f")) == "from-tar\n" or
        os.path.isfile(inside(out, "t/a.tar")), r.stderr[-1500:])


def tar_with_hardlink(ctx):
    with tarfile.open(os.path.join(ctx, "h.tar"), "w") as t:
        hi = tarfile.TarInfo("h")
        hi.type = tarfile.LNKTYPE
        hi.linkname = "../../../../../../.." + SECRET
        t.addfile(hi)


r, out = build("ADD h.tar /t/\n", prep=tar_with_hardlink)
check("ADD: an archive with a hardlink to a host file (copied as a file, not unpacked)", r, out,
      True)
T.check("  ... not unpacked", os.path.isfile(inside(out, "t/h.tar")) and
        not os.path.lexists(inside(out, "t/h")))

# the local exporter applies the layers in order: a directory that replaces an
# earlier layer's link to the host is made in the destination, never followed
r, out = build(f"RUN ln -s {HOSTW} /evil\nRUN rm /evil && mkdir /evil && echo x > /evil/f\n")
check("-o type=local: a layer's directory over an earlier layer's host link", r, out, True)
T.check("  ... the directory and its file are in the destination",
        os.path.isdir(inside(out, "evil")) and not os.path.islink(inside(out, "evil")) and
        read(inside(out, "evil/f")) == "x\n", r.stderr[-1000:])

# --- COPY/ADD sources ---------------------------------------------------------
# a named source is followed as BuildKit does, but inside the context
for name, target in (("absolute", SECRET), ("relative", "../../../../../../../.." + SECRET)):
    r, out = build("COPY leak /x/\n", links={"leak": target})
    check(f"COPY of an {name} context link to a host file", r, out, False, "not found")
r, out = build("COPY good /x/\nCOPY gdir /y/\n", {"f": "in-context\n", "d/a": "a\n"},
               {"good": "/f", "gdir": "../../../d"})
check("COPY of context links to context files (docker: followed in the context)", r, out, True)
T.check("  ... the linked file's content under the link's name",
        read(inside(out, "x/good")) == "in-context\n" and read(inside(out, "y/a")) == "a\n",
        r.stderr[-2000:])

r, out = build("COPY hd/secret /y\n", links={"hd": HOST})
check("COPY through a context link to a host dir", r, out, False, "not found")

r, out = build("COPY hd/* /z/\n", links={"hd": HOST})
check("COPY glob through a context link to a host dir", r, out, False, "no source files")

r, out = build("COPY src/*/ /g/\nCOPY src/* /h/\n", {"src/d1/a": "1", "src/d2/b": "2", "src/f": "f"},
               {"src/l": HOST})
check("globs read through dirfds (a link to the host among the matches)", r, out, True)
T.check("  ... 'dir/*/' matches directories only, as glob(3)",
        sorted(os.listdir(inside(out, "g"))) == ["a", "b"] and
        sorted(os.listdir(inside(out, "h"))) == ["a", "b", "f"], r.stderr[-1000:])

r, out = build("COPY hd/../hd/secret /y\n", links={"hd": "../../../../../../.." + HOST})
check("COPY through a relative escaping link with ..", r, out, False,
      "outside the build context")

r, out = build("COPY sub /s\nCOPY . /c\n", {"sub/ok": "ok\n"}, {"sub/l": SECRET, "hd": HOST})
check("COPY of directories holding links to the host", r, out, True)
T.check("  ... the links stay links", rl(inside(out, "s/l")) == SECRET and
        rl(inside(out, "c/hd")) == HOST)

r, out = build("ADD arch /a\n", links={"arch": SECRET})
check("ADD of a context link to a host file", r, out, False, "not found")

r, out = build("COPY . /c\n", {"f": "x\n"},
               prep=lambda ctx: os.link(SECRET, os.path.join(ctx, "hl"))
               if os.stat(SECRET).st_dev == os.stat(ctx).st_dev else None)
T.check("COPY of a hardlink the context owner made: builds (it is the context's file)",
        r.returncode == 0, r.stderr)

# --- COPY --from a stage --------------------------------------------------------
STAGE = (f"RUN ln -s /proc/self/environ /env && ln -s {HOST} /hd && ln -s / /rootl && "
         f"ln -s ../../../../..{HOST} /rhd\n"
         "FROM base\n")
r, out = build(STAGE + "COPY --from=base /rootl/etc/passwd /p\nCOPY --from=base /rootl/etc /etc2\n")
check("COPY --from: through a stage's link to /", r, out, True)
T.check("  ... the stage's files", "app:x:1000" in (read(inside(out, "p")) or "") and
        "app:x:1000" in (read(inside(out, "etc2/passwd")) or ""))
for src in ("/env", "/hd/secret", "/rhd/secret", "/proc/self/environ", "/hd/"):
    r, out = build(STAGE + f"COPY --from=base {src} /s\n")
    check(f"COPY --from=stage {src}", r, out, False, "not found")
r, out = build(STAGE + "COPY --from=base /hd/* /g/\n")
check("COPY --from=stage glob through a host link", r, out, False, "no source files")

# --- RUN --mount ----------------------------------------------------------------
r, out = build("RUN --mount=type=bind,source=..,target=/m ls /m && cat /m/../hosttree.txt; "
               "cat /m/f\n", {"f": "ctx-file\n"})
check("RUN bind source=.. (clamped to the context)", r, out, True)
T.check("  ... the context is what is mounted", "ctx-file" in r.stderr)
r, out = build("RUN --mount=type=bind,source=./sub/,target=/m cat /m/ok\n",
               {"sub/ok": "bound-ok\n"})
check("RUN bind of a context directory written ./sub/", r, out, True)
T.check("  ... its files are mounted", "bound-ok" in r.stderr, r.stderr[-1000:])
for src, links in (("hd", {"hd": HOST}), ("../../../../.." + HOST, {}),
                   ("rel", {"rel": "../../../../../.." + HOST})):
    r, out = build(f"RUN --mount=type=bind,source={src},target=/m cat /m/secret\n", links=links)
    check(f"RUN bind source={src}", r, out, False, "not found")
r, out = build(STAGE + "RUN --mount=type=bind,from=base,source=/hd,target=/m cat /m/secret\n")
check("RUN bind from=stage source through a host link", r, out, False, "not found")
r, out = build(f"RUN ln -s {HOSTW} /c\n"
               "RUN --mount=type=cache,target=/c/x touch /c/x/y && ls /c/x\n")
check("RUN cache mount target through a link (made inside the rootfs)", r, out, True)
sf = os.path.join(T.tmp, "tok")
with open(sf, "w") as f:
    f.write("tok-value\n")
r, out = build("WORKDIR /app\nRUN --mount=type=secret,id=tok,target=rel cat /app/rel\n",
               extra=("--secret", f"id=tok,src={sf}"))
check("RUN secret mount with a relative target (no crash)", r, out, True)
T.check("  ... mounted under WORKDIR", "tok-value" in r.stderr, r.stderr[-1000:])
r, out = build(f"RUN ln -s {HOSTW} /s\nRUN --mount=type=secret,id=tok,target=/s/t cat /s/t\n",
               extra=("--secret", f"id=tok,src={sf}"))
check("RUN secret mount target through a link (made inside the rootfs)", r, out, True)
T.check("  ... the secret is there", "tok-value" in r.stderr, r.stderr[-1000:])
# a secret id is an opaque name, never a path: one with '/' or ".." given by --secret is
# refused; one only in the Dockerfile is not provided; the step's copy is named by a digest
for sid in ("../../../../../../.." + HOSTW + "/x", "a/b"):
    r, out = build(f"RUN --mount=type=secret,id={sid} cat /run/secrets/x\n",
                   extra=("--secret", f"id={sid},src={sf}"))
    check(f"--secret and RUN secret id {sid}", r, out, False,
          f"field 'secrets.{sid}': is not a valid secret id (letters, digits, '_', '-' and '.', "
          "starting with a letter or '_')")
    r, out = build(f"RUN --mount=type=secret,id={sid},target=/t cat /t\n",
                   extra=("--secret", f"id=tok,src={sf}"))
    check(f"RUN secret id {sid} (only in the Dockerfile)", r, out, False,
          f"secret {sid} not provided (--secret id={sid},src=FILE or env=VAR)")
r, out = build("RUN --mount=type=secret,id=t.. cat /run/secrets/t..\n",
               extra=("--secret", f"id=t..,src={sf}"))
check("RUN secret id t.. (dots in an opaque id)", r, out, True)
T.check("  ... mounted at /run/secrets/t..", "tok-value" in r.stderr, r.stderr[-1000:])

# --mount values expanded from ARG/ENV/--build-arg meet the checks literal ones do
r, out = build("ARG S=sub\nRUN --mount=type=bind,source=$S,target=/m cat /m/ok\n",
               {"sub/ok": "bound-ok\n"})
check("RUN bind source=$S (S=sub, a context directory)", r, out, True)
T.check("  ... its files are mounted", "bound-ok" in r.stderr, r.stderr[-1000:])
for src, links, extra in (("hd", {"hd": HOST}, ()), ("../../../../.." + HOST, {}, ()),
                          ("", {}, ("--build-arg", f"S={HOST}"))):
    r, out = build(f"ARG S{'=' + src if src else ''}\n"
                   "RUN --mount=type=bind,source=$S,target=/m cat /m/secret\n",
                   links=links, extra=extra)
    check(f"RUN bind source=$S ({src or 'build arg ' + HOST})", r, out, False, "not found")
for tgt in ("../../../../.." + HOSTW, "$T"):
    r, out = build(f"ARG T=../../../../..{HOSTW}\nRUN --mount=type=cache,id={tgt},target={tgt} "
                   f"touch {HOSTW}/x\n")
    check(f"RUN cache mount id and target {tgt} (.. out of the root)", r, out, True)
    T.check("  ... the cache is mounted inside the rootfs (not in the layer)",
            not os.path.exists(inside(out, HOSTW + "/x")), r.stderr[-1000:])

# --- the Dockerfile and .dockerignore -------------------------------------------
r, out = build(None, links={"Dockerfile": SECRET})
check("a Dockerfile that is a link to a host file", r, out, False, "Dockerfile")
r, out = build(None, links={"Dockerfile": "../../../../../.." + SECRET})
check("a Dockerfile that is a relative link out of the context", r, out, False, "Dockerfile")
N[0] += 1
fctx = os.path.join(T.tmp, f"ctx{N[0]}")
os.makedirs(os.path.join(fctx, "sub"))
os.symlink(SECRET, os.path.join(fctx, "sub", "df"))
r = kiln("build", "--root", ROOT, "-f", os.path.join(fctx, "sub", "df"), fctx)
check("-f naming a context link to a host file", r, os.path.join(T.tmp, "none"), False,
      "Dockerfile")
# -f outside the context: its own <Dockerfile>.dockerignore next to it, read in that directory
N[0] += 1
fdir = os.path.join(T.tmp, f"dfdir{N[0]}")
fctx = write_tree(os.path.join(T.tmp, f"ctx{N[0]}"), {"keep": "k\n", "drop": "d\n"})
write_tree(fdir, {"Dockerfile": f"FROM {BASE}\nCOPY . /c\n", "Dockerfile.dockerignore": "drop\n"})
out = os.path.join(T.tmp, f"out{N[0]}")
r = kiln("build", "--root", ROOT, "-f", os.path.join(fdir, "Dockerfile"), "-o",
         f"type=local,dest={out}", fctx)
check("-f outside the context with its own .dockerignore", r, out, True)
T.check("  ... applied", read(inside(out, "c/keep")) == "k\n" and
        not os.path.lexists(inside(out, "c/drop")), r.stderr[-1000:])
os.unlink(os.path.join(fdir, "Dockerfile.dockerignore"))
os.symlink(HOSTPASSWD, os.path.join(fdir, "Dockerfile.dockerignore"))
r = kiln("build", "--root", ROOT, "-f", os.path.join(fdir, "Dockerfile"), "-o",
         f"type=local,dest={out}-2", fctx)
check("-f outside the context, its .dockerignore a link to a host file", r, out + "-2", True)
r, out = build(None, prep=lambda ctx: os.mkfifo(os.path.join(ctx, "Dockerfile")), timeout=120)
check("a Dockerfile that is a FIFO (not waited on)", r, out, False, "not a regular file")
r, out = build("COPY . /c\n", {"f": "x\n"}, {".dockerignore": HOSTPASSWD})
check("a .dockerignore that is a link to a host file", r, out, True)

# --- USER / --chown -----------------------------------------------------------
r, out = build(f"RUN ln -sf {HOSTPASSWD} /etc/passwd\nUSER evil\nRUN true\n")
check("USER with /etc/passwd a link to the host's file", r, out, False, "unable to find user evil")
r, out = build(f"RUN ln -sf {HOSTPASSWD} /etc/passwd\nCOPY --chown=evil f /f\n", {"f": "x\n"})
check("COPY --chown with /etc/passwd a link to the host's file", r, out, False,
      "unable to find user evil")
r, out = build("RUN cp /etc/passwd /etc/passwd.real && echo 'ok:x:777:777::/:/bin/sh' >> "
               "/etc/passwd.real && ln -sf passwd.real /etc/passwd\n"
               "COPY --chown=ok f /f\nUSER ok\nRUN id -u\n", {"f": "x\n"})
check("USER / --chown through an in-image passwd link (docker's result)", r, out, True)
T.check("  ... the user's uid", "777" in r.stderr, r.stderr[-1000:])

# kiln run: --user NAME read from the rootfs's /etc/passwd inside the rootfs
rfs = make_busybox_rootfs(os.path.join(T.tmp, "run-rootfs"))
os.unlink(os.path.join(rfs, "etc", "passwd"))
os.symlink(HOSTPASSWD, os.path.join(rfs, "etc", "passwd"))
r = kiln("run", "--rootfs", rfs, "--user", "evil", "--", "id", "-u")
check("kiln run --user with the rootfs's passwd a link to the host's", r, os.path.join(T.tmp, "x"),
      False, "evil")
T.check("  ... the host file's uid is not used", "4242" not in r.stdout, r.stdout)

# --- FIFOs, sockets, devices in the context ------------------------------------


def special(ctx):
    os.mkfifo(os.path.join(ctx, "fifo"))
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(ctx, "sock"))
    s.close()
    os.mknod(os.path.join(ctx, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))


r, out = build("COPY . /c\n", {"f": "x\n"}, prep=special, timeout=120)
check("COPY . with a FIFO, a socket and a device in the context", r, out, True)
T.check("  ... they are skipped", read(inside(out, "c/f")) == "x\n" and
        not any(os.path.lexists(inside(out, "c/" + n)) for n in ("fifo", "sock", "null")))
T.check("  ... with a message naming them", "fifo" in r.stderr and "null" in r.stderr, r.stderr)
for n in ("fifo", "null"):
    r, out = build(f"COPY {n} /x\n", prep=special, timeout=120)
    check(f"COPY of a {n} named as a source", r, out, False, "not a regular file")
r, out = build("RUN --mount=type=bind,source=fifo,target=/m true\n", prep=special, timeout=120)
check("RUN bind of a FIFO", r, out, False, "not a regular file")

T.done()
