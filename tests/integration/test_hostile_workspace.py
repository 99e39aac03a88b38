#!/usr/bin/env python3
"""Hostile monorepos: a repository's workspace patterns, package names and symlinked
package directories never make `kiln plan --subdir` (the detection every auto build runs)
read a file outside the repository, put a hostile name into a command, or walk without
bound. Each case plants a marker on the host (a package.json outside the context whose
name and scripts carry it) and checks that it appears nowhere in the plan or the error,
that nothing was written next to it, and that the message says what was refused or
ignored and why."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln, write_tree  # noqa: E402

MARK = "HOSTILE-WS-MARKER-" + os.urandom(6).hex()
HOST = os.path.join(T.tmp, "host")  # the host: nothing here may be read or written
os.makedirs(os.path.join(HOST, "pkg"))
for d in (HOST, os.path.join(HOST, "pkg")):
    with open(os.path.join(d, "package.json"), "w") as f:
        json.dump({"name": MARK, "scripts": {"build": f"echo {MARK}"}}, f)
HOST_BEFORE = sorted(os.listdir(HOST))
N = [0]


def repo(workspaces, files=None, links=None):
    """A repository under T.tmp/ctxN/repo (so "../.." from a package reaches T.tmp and
    the host dir): root package.json with `workspaces`, apps/web depending on
    packages/lib, plus files {path: text or dict} and symlinks {path: target}."""
    N[0] += 1
    root = os.path.join(T.tmp, f"ctx{N[0]}", "repo")
    tree = {
        "package.json": {"name": "root", "private": True, "workspaces": workspaces},
        "package-lock.json": {"lockfileVersion": 3},
        "apps/web/package.json": {"name": "@m/web", "scripts": {"build": "true", "start": "node ."},
                                  "dependencies": {"@m/lib": "*"}},
        "packages/lib/package.json": {"name": "@m/lib", "scripts": {"build": "true"}},
    }
    tree.update(files or {})
    write_tree(root, tree, links)
    return root


def plan(root, subdir="apps/web"):
    r = kiln("plan", "--subdir", subdir, root, timeout=120)
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        return r, {}


def untouched(name, r):
    T.check(f"{name}: the host marker is in neither the plan nor the error, nothing written beside it",
            MARK not in r.stdout and MARK not in r.stderr and sorted(os.listdir(HOST)) == HOST_BEFORE,
            (r.stdout + r.stderr)[-1500:])


def notes(p):
    return "\n".join(p.get("notes", []))


# 1. patterns that leave the repository: relative "..", absolute, and a ".." in the middle
rel = os.path.relpath(HOST, os.path.join(T.tmp, "ctx1", "repo"))
r, p = plan(repo(["apps/*", "packages/*", rel, rel + "/*", "apps/../" + rel, HOST, HOST + "/*"]))
T.check("'..' and absolute workspace patterns are ignored with a note naming each and why",
        r.returncode == 0 and f'workspace pattern "{rel}" ignored: it leaves the repository' in notes(p)
        and f'workspace pattern "{HOST}" ignored: an absolute path' in notes(p)
        and p.get("commands", {}).get("build", "").startswith("npm run build -w packages/lib"),
        r.stdout + r.stderr)
T.check("the outside packages are not among the plan's manifests",
        all(m.startswith(("apps/", "packages/")) or "/" not in m for m in p.get("manifests", [])),
        json.dumps(p.get("manifests")))
untouched("'..' / absolute patterns", r)

# 2. symlinked workspace directories pointing outside (absolute and relative) and a
# symlinked package.json: ignored with a note, never followed out of the repository
r, p = plan(repo(["apps/*", "packages/*", "evil", "evil2/pkg"],
                 links={"apps/evil": HOST, "apps/evil2": "../../../host", "evil": HOST,
                        "evil2": "../../host", "packages/ghost/package.json": HOST + "/package.json"}))
T.check("symlinked workspace directories are ignored with a note naming them",
        r.returncode == 0 and "apps/evil ignored, a symlink" in notes(p)
        and "apps/evil2 ignored, a symlink" in notes(p) and "evil ignored, a symlink" in notes(p)
        and not any("evil" in m or "ghost" in m for m in p.get("manifests", [])),
        r.stdout + r.stderr)
untouched("symlinked workspace dirs", r)

# 3. "**" over a wide tree: the walk is bounded and says so; nested "**" do not multiply
# it; a pattern of a dozen wildcards is not even tried
root = repo(["apps/*", "packages/*", "**/**/**/**", "*/*/*/*/*/*/*/*/*/*"])
for i in range(130):
    for j in range(130):
        os.makedirs(os.path.join(root, "junk", f"d{i}", f"e{j}"))
r, p = plan(root)
T.check("a '**' pattern over more than 16384 directories fails naming the pattern and the fix",
        r.returncode != 0 and 'workspace pattern "**/**/**/**": more than 16384 directories' in r.stderr
        and 'name the package directories' in r.stderr, r.stderr[-800:])
untouched("'**' explosion", r)
r, p = plan(repo(["apps/*", "packages/*", "*/*/*/*/*/*/*/*/*/*"]))
T.check("a pattern of too many wildcards is ignored with a note",
        r.returncode == 0 and 'workspace pattern "*/*/*/*/*/*/*/*/*/*" ignored: too long, too many wildcards'
        in notes(p), r.stdout + r.stderr)
r, p = plan(repo(["apps/**", "packages/**"], files={"apps/web/src/a/b/c.txt": "x"}))
T.check("a modest '**' pattern still finds the packages",
        r.returncode == 0 and "packages/lib/package.json" in p.get("manifests", []), r.stdout + r.stderr)

# 4. package names: "..", slashes beyond a scope. A package the app needs is refused by
# name; one it does not need loses its name with a note.
r, p = plan(repo(["apps/*", "packages/*"],
                 files={"packages/lib/package.json": {"name": "@m/../../lib", "scripts": {"build": "true"}},
                        "apps/web/package.json": {"name": "@m/web", "scripts": {"start": "node ."},
                                                  "dependencies": {"@m/../../lib": "*"}}}))
T.check("a needed package named with '..' is refused naming the package and the rule",
        r.returncode != 0 and 'workspace package packages/lib: package.json name "@m/../../lib" is not an '
        "npm package name" in r.stderr, r.stderr[-800:])
r, p = plan(repo(["apps/*", "packages/*"],
                 files={"apps/docs/package.json": {"name": "a/b/c", "scripts": {"build": "true"}}}))
T.check("an unneeded package named with slashes is only dropped, with a note",
        r.returncode == 0 and 'apps/docs: its name "a/b/c" is not an npm package name (ignored)' in notes(p)
        and "a/b/c" not in json.dumps(p.get("commands")), r.stdout + r.stderr)
r, p = plan(repo(["apps/*", "packages/*"], files={"apps/we b/package.json": {"name": "x"}}))
T.check("a package directory whose name cannot be a shell word is refused naming it",
        r.returncode != 0 and "workspace package at apps/we b: a path with characters" in r.stderr, r.stderr[-800:])

# 5. pnpm-workspace.yaml patterns get the same treatment
r, p = plan(repo([], files={"pnpm-workspace.yaml": f"packages:\n  - 'apps/*'\n  - packages/*\n  - '{rel}'\n",
                            "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"}))
T.check("pnpm-workspace.yaml: a pattern leaving the repository is ignored with its note",
        r.returncode == 0 and f'workspace pattern "{rel}" ignored' in notes(p)
        and p.get("packageManager") == "pnpm", r.stdout + r.stderr)
untouched("pnpm-workspace.yaml", r)
T.done()
