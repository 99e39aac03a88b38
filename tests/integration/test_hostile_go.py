#!/usr/bin/env python3
"""Hostile Go sources and Go module proxies: what a go.mod, a --plan file or a proxy can make
kiln fetch, write or unpack on the host when it fetches a Go toolchain.

- a go.mod toolchain line with path-traversal or URL-injection text is refused naming the
  line, before any request (the loopback proxy logs every request it gets);
- a --plan file naming a toolchain version that is a path is refused before any request;
- a proxy answering a tampered toolchain zip (right layout, wrong bytes) or a zip with an
  entry outside the module prefix: the checksum or the layout is refused, nothing is unpacked
  into the toolchain cache and the host marker is untouched;
- a server build's toolchain download to a loopback proxy is refused by the address policy,
  no request made;
- a go.mod over the manifest cap is refused naming it; a large one within the cap plans.
Nothing outside 127.0.0.0/8 is contacted."""
import http.server
import io
import json
import os
import threading
import time
import zipfile

from kilnbuild import HostMarker
from kilntest import T, kiln

M = HostMarker()
CACHE = os.path.join(T.tmp, "toolchains")
ROOT = os.path.join(T.tmp, "root")
PREFIX = "golang.org/toolchain@v0.0.1-go%s.linux-amd64/"


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


# 1.27.3: a well-formed toolchain zip whose go binary is not Go's (a script writing the marker
# dir); 1.27.4: a zip with an entry that climbs out of the module prefix
ZIPS = {
    "/golang.org/toolchain/@v/v0.0.1-go1.27.3.linux-amd64.zip": zip_of({
        PREFIX % "1.27.3" + "VERSION": "go1.27.3\n",
        PREFIX % "1.27.3" + "bin/go": "#!/bin/sh\ntouch %s/pwned\n" % M.w,
    }),
    "/golang.org/toolchain/@v/v0.0.1-go1.27.4.linux-amd64.zip": zip_of({
        PREFIX % "1.27.4" + "VERSION": "go1.27.4\n",
        PREFIX % "1.27.4" + "../../../../../../../.." + M.w + "/pwned": "x",
    }),
}
LOG = []
# Recorded answers of the Go checksum database (through the module proxy) for go1.26.8: the
# lookup (record + signed tree head) and the tiles of its inclusion proof.
SUMDB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "go", "sumdb")
TAMPER = {}


class Proxy(http.server.BaseHTTPRequestHandler):
    """The Go module proxy: ZIPS, a fake zip of any other release, the recorded checksum
    database (changed by TAMPER), the marker at /secret; every request logged."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        LOG.append(self.path)
        f = os.path.join(SUMDB, self.path[len("/sumdb/"):]) if self.path.startswith("/sumdb/") else None
        body, code = b"not found", 404
        if self.path in ZIPS:
            body, code = ZIPS[self.path], 200
        elif self.path.endswith(".zip"):
            v = self.path.split("-go")[1].split(".linux")[0]
            body, code = zip_of({PREFIX % v + "bin/go": "not go\n"}), 200
        elif f and os.path.isfile(f) and not TAMPER.get("no-sumdb"):
            body, code = open(f, "rb").read(), 200
            for what, fn in TAMPER.items():
                if what in self.path:
                    body = fn(body)
        elif self.path == "/secret":
            body, code = M.mark.encode(), 200
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
threading.Thread(target=srv.serve_forever, daemon=True).start()
PORT = srv.server_address[1]
ENV = {"KILN_GOPROXY": "http://127.0.0.1:%d" % PORT, "KILN_TOOLCHAIN_CACHE": CACHE, "KILN_ROOT": ROOT}


def app(name, gomod, extra=None):
    d = os.path.join(T.tmp, name)
    os.makedirs(d)
    with open(os.path.join(d, "go.mod"), "w") as f:
        f.write(gomod)
    with open(os.path.join(d, "main.go"), "w") as f:
        f.write("package main\n\nfunc main() {}\n")
    for k, v in (extra or {}).items():
        with open(os.path.join(d, k), "w") as f:
            f.write(v)
    return d


def fetch(src, env=None):
    e = dict(ENV)
    e.update(env or {})
    return kiln("plan", "--fetch-toolchain", src, env=e)


def cache_empty():
    return not os.path.isdir(CACHE) or os.listdir(CACHE) == []


# --- go.mod toolchain lines that try to be a path or a URL -----------------------------------
cases = [
    ("traversal", "go1.27.3/../../../../" + M.w.lstrip("/")),
    ("url-injection", "go1.27.3.linux-amd64.zip?x=@127.0.0.1:%d/secret#" % PORT),
    ("absolute-url", "http://127.0.0.1:%d/secret" % PORT),
    ("suffix", "go1.27.3-evil"),
]
for name, tc in cases:
    src = app("tc-" + name, "module example.com/x\n\ngo 1.23\n\ntoolchain %s\n" % tc)
    r = fetch(src)
    T.check("go.mod toolchain %s: refused naming line 5 and the text, before any request" % name,
            r.returncode == 1 and ('kiln: go.mod line 5: toolchain "%s' % tc[:48]) in r.stderr
            and "is not a Go release name (go1.N.P, go1.NrcK or default)" in r.stderr, r.stderr)
T.check("go.mod toolchain lines: the proxy got no request, the cache is empty", LOG == [] and cache_empty(),
        (LOG, os.listdir(CACHE) if os.path.isdir(CACHE) else None))

# a go line that is not a version
src = app("go-line", "module example.com/x\ngo 1.23/../../x\n")
r = fetch(src)
T.check("go.mod go line with a path: refused naming line 2",
        r.returncode == 1 and 'go.mod line 2: go "1.23/../../x" is not a Go version (1.N or 1.N.P)' in r.stderr,
        r.stderr)

# --- a --plan file naming a path as the toolchain version ------------------------------------
src = app("plan-file", "module example.com/x\n\ngo 1.23\n")
r = kiln("plan", src, env=ENV)
plan = json.loads(r.stdout)
for bad in ("../../" + M.w.lstrip("/"), "1.27.3/../../x", "1.27.3.linux-amd64.zip?", "1.26"):
    plan["toolchain"]["version"] = bad
    pf = os.path.join(T.tmp, "plan.json")
    with open(pf, "w") as f:
        json.dump(plan, f)
    r = kiln("build", "--root", ROOT, "--plan", pf, "--output", "type=oci,dest=" + os.path.join(T.tmp, "o"),
             src, env=ENV)
    T.check("--plan toolchain version %r: refused naming it and what is available, no request" % bad,
            r.returncode != 0 and ('toolchain go "%s" (golang.org/toolchain): not a Go release kiln can fetch '
                                   "and verify; available: go1.27.4, go1.27.3," % bad[:40]) in r.stderr
            and LOG == [] and cache_empty(), (r.stderr[-1500:], LOG))

# --- a proxy answering bytes that are not the release ------------------------------------------
src = app("tampered", "module example.com/x\n\ngo 1.23\n")
r = fetch(src)
T.check("tampered toolchain zip: the checksum mismatch is named, nothing is unpacked",
        r.returncode == 1 and "golang.org/toolchain@v0.0.1-go1.27.3.linux-amd64: checksum mismatch: the download "
        "hashes to h1:" in r.stderr and "the Go checksum database records "
        "h1:r0ub+FnqzZxoWm/dSUOI9DcIqYWn/mNYGFJcv7PyBzs= (corrupt or tampered download)" in r.stderr
        and LOG == ["/golang.org/toolchain/@v/v0.0.1-go1.27.3.linux-amd64.zip"] and cache_empty(),
        (r.stderr, LOG, os.listdir(CACHE) if os.path.isdir(CACHE) else None))
LOG.clear()
r = fetch(src, {"KILN_GO_VERSION": "1.27.4"})
T.check("toolchain zip with an entry outside the module: refused before any write",
        r.returncode == 1 and "golang.org/toolchain@v0.0.1-go1.27.4.linux-amd64: the zip holds "
        '"golang.org/toolchain@v0.0.1-go1.27.4.linux-amd64/../' in r.stderr and cache_empty()
        and LOG == ["/golang.org/toolchain/@v/v0.0.1-go1.27.4.linux-amd64.zip"], (r.stderr, LOG))
T.check("the host marker is untouched (nothing written under it, nothing read)", M.untouched())

# --- a server build's toolchain download to loopback ---------------------------------------------
LOG.clear()
r = kiln("build", "--server-mode", "--root", ROOT, src, env=ENV)
T.check("server mode: a Go toolchain download from a loopback proxy is refused, no request made",
        r.returncode == 1 and "toolchain go 1.27.3: GET http://127.0.0.1:%d/golang.org/toolchain/@v/"
        "v0.0.1-go1.27.3.linux-amd64.zip: " % PORT in r.stderr
        and "127.0.0.1 port %d: loopback address, refused by the address policy" % PORT in r.stderr
        and LOG == [] and cache_empty(), (r.stderr, LOG))

# --- go.mod size -------------------------------------------------------------------------------
big = app("huge", "module example.com/x\n" + "// " + "a" * (4 * 1024 * 1024) + "\n")
r = kiln("plan", big, env=ENV)
T.check("a go.mod over 4 MiB is refused naming it",
        r.returncode == 1 and "go.mod in %s: file larger than 4194304 bytes" % big in r.stderr, r.stderr)
lines = "".join("\tgithub.com/m%d/x v1.0.%d\n" % (i, i) for i in range(120000))
large = app("large", "module example.com/x\n\ngo 1.23\n\nrequire (\n" + lines + ")\n")
t0 = time.monotonic()
r = kiln("plan", large, env=ENV)
T.diag("a %d-byte go.mod planned in %.2f s" % (os.path.getsize(os.path.join(large, "go.mod")),
                                               time.monotonic() - t0))
T.check("a large go.mod within the cap plans (one pass, no request)",
        r.returncode == 0 and json.loads(r.stdout)["commands"]["install"] == "go mod download" and LOG == [],
        r.stderr)
# --- a release outside the table: the checksum database's record, proven ------------------------
H1_1268 = "h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM="
SENV = {"KILN_GO_VERSION": "1.26.8"}
LOG.clear()
ZIP = "/golang.org/toolchain/@v/v0.0.1-go1.26.8.linux-amd64.zip"
src = app("sumdb", "module example.com/x\n\ngo 1.23\n")
r = fetch(src, SENV)
T.check("go1.26.8 (not in the table): the database's record is proven (signed head, inclusion from the "
        "tiles) and the zip checked against it",
        r.returncode == 1 and "golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64: checksum mismatch: the download "
        "hashes to h1:" in r.stderr and "the Go checksum database records %s" % H1_1268 in r.stderr
        and LOG[-1] == ZIP and sum(p.startswith("/sumdb/sum.golang.org/tile/8/") for p in LOG) == 6
        and cache_empty(), (r.stderr, LOG))


def flip(i):
    return lambda b: b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]


for name, tamper, msg in (
    ("a tile hash changed", {"tile/8/0/x241/187": flip(100)},
     "the record is not in the signed tree (inclusion proof failed)"),
    ("the record's h1 changed", {"lookup/": lambda b: b.replace(b"h1:ZOmG", b"h1:ZOmH")},
     "the record is not in the signed tree (inclusion proof failed)"),
    ("the tree size changed", {"lookup/": lambda b: b.replace(b"\n66332798\n", b"\n66332799\n")},
     "the tree head is not signed by sum.golang.org"),
    ("the signature changed", {"lookup/": lambda b: b.replace(b"Az3grh19", b"Az3grh18")},
     "the tree head is not signed by sum.golang.org"),
    ("no checksum database behind the proxy", {"no-sumdb": True},
     "the proxy http://127.0.0.1:%d does not serve the Go checksum database" % PORT),
):
    TAMPER.clear()
    TAMPER.update(tamper)
    LOG.clear()
    r = fetch(src, SENV)
    T.check("checksum database, %s: refused naming why, the zip never fetched" % name,
            r.returncode == 1 and "toolchain go 1.26.8: not in kiln's release table" in r.stderr
            and msg in r.stderr and ZIP not in LOG and cache_empty(), (r.stderr, LOG))
srv.shutdown()
T.check("the host marker is still untouched", M.untouched())
T.done()
