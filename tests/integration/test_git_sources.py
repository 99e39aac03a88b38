#!/usr/bin/env python3
"""Git sources: kiln checkout / kiln plan over file:// and over http from
`git http-backend` on 127.0.0.1 — by branch, tag and SHA, with a (nested)
submodule; a private repository needing a token; the mirror cache; bad URLs;
credentials never shown."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gitserve import serve_git  # noqa: E402
from kilntest import T, kiln  # noqa: E402

TOKEN = "s3cr3t-t0ken-do-not-print"
GITENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
              GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_NOSYSTEM="1", HOME=T.tmp)


def git(*args, cwd=None):
    return subprocess.run(["git", "-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, env=GITENV, check=True, capture_output=True, text=True).stdout.strip()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# Upstream repositories (served as bare repos under SERVE).
SERVE = os.path.join(T.tmp, "srv")
WORK = os.path.join(T.tmp, "work")
os.makedirs(SERVE)
os.makedirs(WORK)


def make_repo(name, files, private=False):
    d = os.path.join(WORK, name)
    os.makedirs(d)
    git("init", "-q", d)
    for p, c in files.items():
        write(os.path.join(d, p), c)
    git("add", "-A", cwd=d)
    git("commit", "-qm", "first", cwd=d)
    bare = os.path.join(SERVE, ("private/" if private else "") + name + ".git")
    git("clone", "-q", "--bare", d, bare)
    git("remote", "add", "origin", bare, cwd=d)
    return d, bare


def push(d):
    git("push", "-q", "origin", "--all", cwd=d)
    git("push", "-q", "origin", "--tags", cwd=d)


inner, inner_bare = make_repo("inner", {"inner.txt": "inner v1\n"})
lib, lib_bare = make_repo("lib", {"lib.txt": "lib v1\n"})
git("submodule", "add", "-q", "../inner.git", "deep/inner", cwd=lib)
git("commit", "-qam", "inner submodule", cwd=lib)
push(lib)
app, app_bare = make_repo("app", {"package.json": '{"name": "gitapp", "scripts": {"start": "node index.js"}}\n',
                                  "index.js": "// v1\n", "bin/run.sh": "#!/bin/sh\necho hi\n"})
os.chmod(os.path.join(app, "bin/run.sh"), 0o755)
os.symlink("index.js", os.path.join(app, "link.js"))
git("add", "-A", cwd=app)
git("commit", "-qm", "exec + link", cwd=app)
git("submodule", "add", "-q", "../lib.git", "vendor/lib", cwd=app)
git("commit", "-qam", "lib submodule", cwd=app)
git("tag", "-a", "v1.0", "-m", "release 1.0", cwd=app)
sha_v1 = git("rev-parse", "HEAD", cwd=app)
write(os.path.join(app, "index.js"), "// v2 on main\n")
git("commit", "-qam", "v2", cwd=app)
sha_main = git("rev-parse", "HEAD", cwd=app)
git("checkout", "-qb", "feature", cwd=app)
write(os.path.join(app, "feature.txt"), "feature\n")
git("add", "-A", cwd=app)
git("commit", "-qm", "feature", cwd=app)
sha_feature = git("rev-parse", "HEAD", cwd=app)
git("checkout", "-q", "main", cwd=app)
push(app)
priv, priv_bare = make_repo("secret", {"index.html": "<p>private</p>\n"}, private=True)


srv, BASE = serve_git(SERVE, private_token=TOKEN)
ROOT = os.path.join(T.tmp, "kiln-root")
ENV = {"KILN_ROOT": ROOT, "KILN_GIT_TOKEN": "", "KILN_GIT_CREDENTIALS": ""}
POLICY = ["--allow-http-git", "--allow-address", "127.0.0.1/32"]
n = [0]


def checkout(url, env=None):
    n[0] += 1
    dest = os.path.join(T.tmp, f"co{n[0]}")
    e = dict(ENV)
    e.update(env or {})
    # the test's git server is plain http on loopback: the operator allows both
    return kiln("checkout", *POLICY, url, dest, env=e), dest


def read(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError as e:
        return f"<{e}>"


for scheme, base in (("file", "file://" + SERVE), ("http", BASE)):
    r, d = checkout(f"{base}/app.git")
    T.check(f"{scheme}: default branch checks out", r.returncode == 0 and r.stdout.strip() == sha_main
            and read(f"{d}/index.js") == "// v2 on main\n", r.stdout + r.stderr)
    T.check(f"{scheme}: no .git directory in the checkout", not os.path.exists(f"{d}/.git"))
    T.check(f"{scheme}: submodule and nested submodule are checked out",
            read(f"{d}/vendor/lib/lib.txt") == "lib v1\n" and read(f"{d}/vendor/lib/deep/inner/inner.txt") == "inner v1\n",
            r.stderr)
    T.check(f"{scheme}: executable bit and symlink kept",
            os.access(f"{d}/bin/run.sh", os.X_OK) and os.readlink(f"{d}/link.js") == "index.js")
    r, d = checkout(f"{base}/app.git#feature")
    T.check(f"{scheme}: by branch", r.returncode == 0 and r.stdout.strip() == sha_feature
            and read(f"{d}/feature.txt") == "feature\n", r.stderr)
    r, d = checkout(f"{base}/app.git#v1.0")
    T.check(f"{scheme}: by annotated tag", r.returncode == 0 and r.stdout.strip() == sha_v1
            and read(f"{d}/index.js") == "// v1\n", r.stderr)
    r, d = checkout(f"{base}/app.git#{sha_v1}")
    T.check(f"{scheme}: by full SHA", r.returncode == 0 and r.stdout.strip() == sha_v1, r.stderr)
    r, d = checkout(f"{base}/app.git#{sha_feature[:12]}")
    T.check(f"{scheme}: by abbreviated SHA", r.returncode == 0 and r.stdout.strip() == sha_feature, r.stderr)
    r, d = checkout(f"{base}/app.git#no-such-branch")
    T.check(f"{scheme}: unknown ref is a clear error", r.returncode == 1 and "no-such-branch not found" in r.stderr
            and not os.path.exists(d + "/index.js"), r.stderr)

mirrors = [m for m in os.listdir(os.path.join(ROOT, "git")) if m.endswith(".git")]
T.check("one bare mirror per repository URL (app, lib, inner × file/http)", len(mirrors) == 6, str(mirrors))

# A new upstream commit: the existing mirror is updated in place, the new commit checked out.
write(os.path.join(app, "index.js"), "// v3\n")
git("commit", "-qam", "v3", cwd=app)
sha_v3 = git("rev-parse", "HEAD", cwd=app)
push(app)
r, d = checkout(f"{BASE}/app.git#main")
mirrors2 = [m for m in os.listdir(os.path.join(ROOT, "git")) if m.endswith(".git")]
T.check("the next fetch updates the mirror and sees the new commit",
        r.returncode == 0 and r.stdout.strip() == sha_v3 and sorted(mirrors2) == sorted(mirrors), r.stderr)

# kiln plan on a git URL: detection runs on the checkout; the commit is reported.
e = dict(ENV)
r = kiln("plan", *POLICY, f"{BASE}/app.git#v1.0", env=e)
T.check("kiln plan GIT_URL#TAG plans the checkout and names the commit",
        r.returncode == 0 and '"provider": "node"' in r.stdout and sha_v1 in r.stderr, r.stdout + r.stderr)
work = os.path.join(ROOT, "work")
T.check("kiln plan removes its temporary checkout", os.listdir(work) == [], str(os.listdir(work)))
r = kiln("plan", *POLICY, "--subdir", "vendor/lib", f"{BASE}/app.git", env=e)
T.check("kiln plan --subdir on a git source", r.returncode == 1 and "cannot detect how to build" in r.stderr
        and "lib.txt" in r.stderr, r.stderr)
r = kiln("plan", *POLICY, f"{BASE}/app.git#main:vendor/lib", env=e)
T.check("URL#REF:SUBDIR (BuildKit's git context form) builds the subdirectory",
        r.returncode == 1 and "cannot detect how to build" in r.stderr and "lib.txt" in r.stderr,
        r.stderr)
r = kiln("plan", *POLICY, f"{BASE}/app.git#:vendor/lib", env=e)
T.check("URL#:SUBDIR takes the default branch", r.returncode == 1 and "lib.txt" in r.stderr,
        r.stderr)
r = kiln("plan", *POLICY, "--subdir", "vendor", f"{BASE}/app.git#main:vendor/lib", env=e)
T.check("URL#REF:SUBDIR together with --subdir is refused",
        r.returncode == 1 and "--subdir vendor is given too" in r.stderr, r.stderr)

# Private repository: token from env, from the per-host file, in the URL; failures are clear and redacted.
r, d = checkout(f"{BASE}/private/secret.git")
T.check("private repo without a token fails with an authentication error",
        r.returncode == 1 and "authentication" in r.stderr and "KILN_GIT_TOKEN" in r.stderr, r.stderr)
r, d = checkout(f"{BASE}/private/secret.git", env={"KILN_GIT_TOKEN": TOKEN})
T.check("private repo with KILN_GIT_TOKEN", r.returncode == 0 and read(f"{d}/index.html") == "<p>private</p>\n",
        r.stderr)
T.check("the token is not printed", TOKEN not in r.stdout + r.stderr)
credfile = os.path.join(T.tmp, "creds")
write(credfile, f"# per-host\nexample.invalid nope\n127.0.0.1:{srv.server_address[1]} x-access-token:{TOKEN}\n")
r, d = checkout(f"{BASE}/private/secret.git", env={"KILN_GIT_CREDENTIALS": credfile})
T.check("private repo with a per-host credentials line", r.returncode == 0, r.stderr)
r, d = checkout(f"{BASE}/private/secret.git", env={"KILN_GIT_TOKEN": "wrong-token-value"})
T.check("a refused token is a clear error without the token",
        r.returncode == 1 and "authentication failed" in r.stderr and "wrong-token-value" not in r.stderr, r.stderr)
url = BASE.replace("http://", f"http://x-access-token:{TOKEN}@") + "/private/secret.git"
r, d = checkout(url)
T.check("credentials in the URL work", r.returncode == 0, r.stderr)
bad = BASE.replace("http://", "http://x-access-token:hunter2-wrong@") + "/private/secret.git#nope"
r = kiln("plan", *POLICY, bad, env=ENV)
T.check("URL userinfo is redacted in errors", r.returncode == 1 and "hunter2" not in r.stderr and "***@" in r.stderr,
        r.stderr)
mirror_names = " ".join(os.listdir(os.path.join(ROOT, "git")))
T.check("no credential in the mirror cache names", "hunter2" not in mirror_names and TOKEN not in mirror_names)
cfgs = subprocess.run(["grep", "-rl", TOKEN, os.path.join(ROOT, "git")], capture_output=True, text=True).stdout
T.check("no credential stored in any mirror", cfgs == "", cfgs)

# Bad URLs.
r, d = checkout(f"{BASE}/missing.git")
T.check("a repository that does not exist is a clear error", r.returncode == 1 and "missing.git" in r.stderr, r.stderr)
r, d = checkout("http://127.0.0.1:1/closed.git")
T.check("a refused connection is a clear error", r.returncode == 1 and "127.0.0.1:1" in r.stderr, r.stderr)
r, d = checkout("file:///nonexistent/repo.git")
T.check("a missing file:// repository is a clear error", r.returncode == 1 and "/nonexistent/repo.git" in r.stderr,
        r.stderr)
r = kiln("checkout", "not-a-url", os.path.join(T.tmp, "x"), env=ENV)
T.check("kiln checkout refuses a non-URL (usage)", r.returncode == 2, r.stderr)
r, d = checkout(f"{BASE}/app.git")
r2 = kiln("checkout", *POLICY, f"{BASE}/app.git", d, env=ENV)
T.check("an existing destination is refused", r2.returncode == 1 and "exists" in r2.stderr, r2.stderr)
srv.shutdown()
T.done()
