"""kiln build's stat cache from the CLI: a rebuild reads only what changed (the COPY step's log
line says how many files were hashed), a file deleted from the context leaves the cache,
--stat-cache-max / KILN_STAT_CACHE_MAX cap it (0 = none; a bad value is a usage error naming
it), a context read from stdin is not cached, and a damaged cache file is ignored (the build
still succeeds, hashing every file) and replaced."""
import os
import re
import subprocess
import time

from kilntest import KILN, T

ctx = os.path.join(T.tmp, "ctx")
root = os.path.join(T.tmp, "root")
os.makedirs(os.path.join(ctx, "src"))
N = 12
for i in range(N):
    with open(os.path.join(ctx, "src", "f%02d" % i), "w") as f:
        f.write("file %d\n" % i)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /app/\n")
# older than the racy window: a rebuild may trust their stat
old = time.time() - 60
for dirpath, _, names in os.walk(ctx):
    for n in names:
        os.utime(os.path.join(dirpath, n), (old, old))
time.sleep(2.5)
SC = os.path.join(root, "build", "statcache")


def build(*extra, env=None, stdin=None, context=ctx):
    r = subprocess.run([KILN, "build", "--root", root, *extra, context], capture_output=True,
                       text=True, env=dict(os.environ, **(env or {})), input=stdin, timeout=300)
    return r, r.stdout + r.stderr


def stat_line(log):
    m = re.search(r"(?m)^#\d+ stat cache: (\d+) of (\d+) files unchanged, (\d+) hashed$", log)
    return tuple(int(x) for x in m.groups()) if m else None


def sc_files():
    return sorted(f for f in os.listdir(SC) if f.endswith(".sc")) if os.path.isdir(SC) else []


files = N + 1
r, log = build()
T.check("first build hashes every context file", r.returncode == 0 and
        stat_line(log) == (0, files, files), log[-1500:])
T.check("one stat cache file for the context, 0600 in a 0700 directory",
        len(sc_files()) == 1 and os.stat(SC).st_mode & 0o777 == 0o700 and
        os.stat(os.path.join(SC, sc_files()[0])).st_mode & 0o777 == 0o600, sc_files())
r, log = build()
T.check("a rebuild with nothing changed reads no file", r.returncode == 0 and
        stat_line(log) == (files, files, 0), log[-1500:])

os.unlink(os.path.join(ctx, "src", "f05"))
with open(os.path.join(ctx, "src", "f01"), "w") as f:
    f.write("changed\n")
time.sleep(2.5)  # past the racy window: the next build's hash of it is trusted later
r, log = build()
T.check("one file changed, one deleted: only the changed one is read", r.returncode == 0 and
        stat_line(log) == (files - 2, files - 1, 1), log[-1500:])
with open(os.path.join(SC, sc_files()[0]), "rb") as f:
    data = f.read()
T.check("the deleted file's entry left the cache file", b"src/f05\0" not in data and
        b"src/f01\0" in data)

# damaged: the build still works (every file hashed) and the file is replaced
with open(os.path.join(SC, sc_files()[0]), "r+b") as f:
    f.seek(len(data) // 2)
    f.write(b"\xff\xff\xff\xff")
r, log = build()
T.check("a damaged cache file is ignored: the build succeeds hashing every file",
        r.returncode == 0 and stat_line(log) == (0, files - 1, files - 1), log[-1500:])
r, log = build()
T.check("… and it was replaced by a good one", r.returncode == 0 and
        stat_line(log) == (files - 1, files - 1, 0), log[-1500:])

# the cap: 0 = none (nothing read or written), a bad value names the setting
r, log = build("--stat-cache-max", "0")
T.check("--stat-cache-max 0: no stat cache (every file hashed)", r.returncode == 0 and
        stat_line(log) == (0, files - 1, files - 1), log[-1500:])
r, log = build(env={"KILN_STAT_CACHE_MAX": "lots"})
T.check("KILN_STAT_CACHE_MAX=lots is a usage error naming it", r.returncode == 2 and
        "KILN_STAT_CACHE_MAX" in log and "lots" in log, log[-500:])
r, log = build("--stat-cache-max", "-3")
T.check("--stat-cache-max -3 is a usage error naming it", r.returncode == 2 and
        "--stat-cache-max" in log, log[-500:])
# a cap smaller than this context's file: after the build the directory holds nothing
r, log = build("--stat-cache-max", "100")
T.check("a cap below one context's file keeps nothing", r.returncode == 0 and sc_files() == [],
        sc_files())

# stdin contexts are new every time: not cached
tar = subprocess.run(["tar", "-C", ctx, "-cf", "-", "."], capture_output=True).stdout
r = subprocess.run([KILN, "build", "--root", root, "-"], input=tar, capture_output=True,
                   timeout=300)
T.check("a context from stdin builds and leaves no stat cache file",
        r.returncode == 0 and sc_files() == [], (r.stderr[-1000:], sc_files()))

# a git source (kiln build URL#REF): each build checks it out anew, the checkout keeps the
# stat cache current for the repository, so a one-file commit reads one file
repo = os.path.join(T.tmp, "repo")
subprocess.run(["cp", "-a", ctx, repo], check=True)
git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(git + ["add", "-A"], check=True)
subprocess.run(git + ["commit", "-q", "-m", "one"], check=True)
gfiles = len(subprocess.run(git + ["ls-files"], capture_output=True, text=True).stdout.split())
url = "file://" + repo + "#main"
r, log = build(context=url)
T.check("git source, first build: every file hashed", r.returncode == 0 and
        stat_line(log) == (0, gfiles, gfiles), log[-1500:])
with open(os.path.join(repo, "src", "f02"), "w") as f:
    f.write("changed in git\n")
subprocess.run(git + ["commit", "-q", "-am", "two"], check=True)
r, log = build(context=url)
T.check("git source, one file committed: only it is read (the checkout kept the others' hashes)",
        r.returncode == 0 and stat_line(log) == (gfiles - 1, gfiles, 1), log[-1500:])
T.done()
