#!/usr/bin/env python3
"""kiln job run of an uploaded context (a staged tarball, --contexts-dir): the unpack notes
each file it writes in the stat cache of the upload's identity with the content id of what
it wrote, so a re-upload of the same tree with one file changed hashes only that file; a
file whose content changed under the same size and mtime is still read (its new content is
in the image)."""
import json
import os
import subprocess
import tarfile

from kilntest import KILN, T

ROOT = os.path.join(T.tmp, "root")
CTXS = os.path.join(T.tmp, "contexts")
os.makedirs(CTXS)
FILES = {"Dockerfile": "FROM scratch\nCOPY . /app/\n", "a": "aaaa\n", "b": "bbbb\n", "c": "cccc\n"}


def stage(name, files):
    """Writes contexts/NAME.tar with files, every member's mtime the same."""
    with tarfile.open(os.path.join(CTXS, name + ".tar"), "w") as tf:
        for path, text in sorted(files.items()):
            src = os.path.join(T.tmp, "member")
            with open(src, "w") as f:
                f.write(text)
            info = tf.gettarinfo(src, arcname=path)
            info.mtime = 1700000000
            info.uid = info.gid = 0
            with open(src, "rb") as f:
                tf.addfile(info, f)


def run(name, out):
    er, ew = os.pipe()
    spec = {"source": {"context": name}, "outputs": [{"type": "local", "dest": out}]}
    spec_file = os.path.join(T.tmp, name + ".json")
    with open(spec_file, "w") as f:
        json.dump(spec, f)
    p = subprocess.Popen([KILN, "job", "run", "--spec", spec_file, "--events-fd", str(ew), "--root",
                          ROOT, "--contexts-dir", CTXS], pass_fds=(ew,), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    os.close(ew)
    with os.fdopen(er) as f:
        events = [json.loads(line) for line in f.read().splitlines()]
    out_text, err = p.communicate(timeout=600)
    logs = [e.get("text", "") for e in events if e.get("event") == "log"]
    return p.returncode, logs, err + out_text


def read(out, name):
    with open(os.path.join(out, "app", name)) as f:
        return f.read()


stage("ctx-a1", FILES)
out1 = os.path.join(T.tmp, "out1")
rc, logs, err = run("ctx-a1", out1)
T.check("first upload: builds", rc == 0 and read(out1, "b") == "bbbb\n", err[-2000:])
T.check("... its unpack noted its 4 files (nothing to keep yet)",
        "stat cache: 4 files noted, 0 kept their hash" in logs, logs)
T.check("... and the build hashed them", any("0 of 4 files unchanged, 4 hashed" in l for l in logs), logs)

# the same tree again with b changed: same size, same mtime in the tarball
stage("ctx-a2", dict(FILES, b="BBBB\n"))
out2 = os.path.join(T.tmp, "out2")
rc, logs, err = run("ctx-a2", out2)
T.check("re-upload, one file changed: builds", rc == 0, err[-2000:])
T.check("... the unpack kept the hashes of the 3 unchanged files",
        "stat cache: 4 files noted, 3 kept their hash" in logs, logs)
T.check("... the build hashed only the changed file",
        any("3 of 4 files unchanged, 1 hashed" in l for l in logs), logs)
T.check("... whose new content (same size and mtime) is in the image",
        read(out2, "b") == "BBBB\n" and read(out2, "a") == "aaaa\n", read(out2, "b"))
T.done()
