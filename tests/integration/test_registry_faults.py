"""Registry faults and bad input, through a fault-injecting proxy in front of a
real docker-registry: connection resets, 500s, 429 with Retry-After, a blob cut
or stalled mid-transfer (resumed with Range), persistent failures (clear error,
nothing half-written or half-pushed), a manifest that does not match its
digest, a corrupted blob, a manifest over 4 MiB, an HTML page instead of JSON
and a malformed WWW-Authenticate header."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln, start_registry  # noqa: E402
from registry_fixtures import FaultProxy, make_layout, skopeo  # noqa: E402

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_RETRIES": "3",
                   "KILN_REGISTRY_BACKOFF_MS": "50", "KILN_REGISTRY_MAX_BACKOFF_MS": "2000",
                   "KILN_REGISTRY_STALL_TIMEOUT": "1",
                   "KILN_REGISTRY_MONOLITHIC_MAX": str(1 << 20), "KILN_REGISTRY_CHUNK_SIZE": str(5 << 20)})
A = start_registry()
a = "127.0.0.1:%d" % A
proxy = FaultProxy(A)
pa = "127.0.0.1:%d" % proxy.port
L = os.path.join(T.tmp, "L")
big = os.urandom(3 * 1024 * 1024)
desc = make_layout(L, "v1", [{"etc/hello": b"hello\n"}, {"data/big.bin": big}])
man = json.load(open(os.path.join(L, "blobs", "sha256", desc["digest"][7:])))
big_digest = max(man["layers"], key=lambda l: l["size"])["digest"]
cfg_digest = man["config"]["digest"]
p = kiln("push", "--root", os.path.join(T.tmp, "s0"), "--insecure-registry", a, "oci:%s:v1" % L,
         "%s/t/app:v1" % a)
T.check("setup: push directly", p.returncode == 0, p.stderr)
n = [0]


def pull(*extra, ref=None):
    """Pulls through the proxy into a fresh store; returns (process, store root)."""
    n[0] += 1
    root = os.path.join(T.tmp, "store%d" % n[0])
    p = kiln("pull", "--root", root, "--insecure-registry", pa, *extra, ref or "%s/t/app:v1" % pa)
    return p, root


def rules(*rs):
    proxy.rules = [dict(r) for r in rs]
    proxy.hits.clear()
    proxy.log.clear()


# --- recoverable faults ---
rules({"method": "GET", "path": "/blobs/", "action": "reset", "count": 2})
p, _ = pull()
T.check("pull recovers from connection resets", p.returncode == 0 and len(proxy.hits) == 2 and
        "retrying" in p.stderr, p.stderr)
rules({"method": "GET", "path": "/manifests/", "action": "status:500", "count": 2})
p, _ = pull()
T.check("pull recovers from 500s on the manifest", p.returncode == 0 and len(proxy.hits) == 2, p.stderr)
rules({"method": "GET", "path": "/blobs/", "action": "status:429", "count": 1})
p, _ = pull()
T.check("pull recovers from 429 (Retry-After honoured)", p.returncode == 0 and "429" in p.stderr,
        p.stderr)
rules({"method": "GET", "path": big_digest, "action": "cut", "count": 1})
p, _ = pull()
resumed = [l for l in proxy.log if big_digest in l[1] and l[2] and l[2].startswith("bytes=")]
T.check("a blob cut mid-transfer is resumed with Range", p.returncode == 0 and resumed,
        p.stderr + str(proxy.log))
rules({"method": "GET", "path": big_digest, "action": "stall", "count": 1, "stall": 4})
p, _ = pull()
T.check("a stalled blob is abandoned and resumed", p.returncode == 0 and
        any(l[2] for l in proxy.log if big_digest in l[1]), p.stderr)

# --- persistent failures: clear error, nothing half-written ---
rules({"method": "GET", "path": big_digest, "action": "status:500", "count": -1})
p, root = pull()
refs = os.listdir(os.path.join(root, "refs")) if os.path.isdir(os.path.join(root, "refs")) else []
tmps = os.listdir(os.path.join(root, "tmp")) if os.path.isdir(os.path.join(root, "tmp")) else []
T.check("a blob that keeps failing fails the pull clearly",
        p.returncode != 0 and "HTTP 500" in p.stderr and big_digest in p.stderr, p.stderr)
T.check("a failed pull pins nothing and leaves no temp file", not refs and not tmps,
        "refs=%s tmp=%s" % (refs, tmps))
rules({"path": "/blobs/uploads/", "action": "status:500", "count": -1})
p = kiln("push", "--root", os.path.join(T.tmp, "s1"), "--insecure-registry", pa, "oci:%s:v1" % L,
         "%s/t/half:v1" % pa)
s = skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/t/half:v1" % a)
T.check("a push whose uploads keep failing fails clearly", p.returncode != 0 and "500" in p.stderr,
        p.stderr)
T.check("... and no manifest was pushed", s.returncode != 0 and
        not any(h[0] == "PUT" and "/manifests/" in h[1] for h in proxy.log), s.stdout)
rules({"method": "POST", "path": "/blobs/uploads/", "action": "reset", "count": 1},
      {"method": "PATCH", "path": "/blobs/uploads/", "action": "status:503", "count": 1})
p = kiln("push", "--root", os.path.join(T.tmp, "s2"), "--insecure-registry", pa, "oci:%s:v1" % L,
         "%s/t/retried:v1" % pa)
T.check("a push recovers from a reset and a 503 mid-upload",
        p.returncode == 0 and p.stdout.strip() == desc["digest"] and len(proxy.hits) == 2, p.stderr)

# --- bad input ---
other = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": man["config"], "layers": man["layers"][:1]}).encode()
rules({"method": "GET", "path": "/manifests/", "action": ("body", man["mediaType"] if "mediaType" in man
                                                          else "application/vnd.oci.image.manifest.v1+json", other)})
p, root = pull(ref="%s/t/app@%s" % (pa, desc["digest"]))
T.check("a manifest that does not match the digest asked for is rejected",
        p.returncode != 0 and "hashes to" in p.stderr, p.stderr)
rules({"method": "GET", "path": cfg_digest, "action": "corrupt", "count": -1})
p, root = pull()
blobs = os.listdir(os.path.join(root, "blobs", "sha256")) if os.path.isdir(os.path.join(root, "blobs", "sha256")) else []
T.check("a blob with wrong content is rejected and not stored",
        p.returncode != 0 and "does not match its digest" in p.stderr and cfg_digest[7:] not in blobs,
        p.stderr)
rules({"method": "GET", "path": "/manifests/", "action": ("body", "application/vnd.oci.image.manifest.v1+json",
                                                          b"{" + b" " * (5 << 20) + b"}")})
p, _ = pull()
T.check("a manifest over 4 MiB is refused", p.returncode != 0 and "larger than" in p.stderr, p.stderr)
rules({"method": "GET", "path": "/manifests/", "action": ("body", "text/html",
                                                          b"<html><body>Welcome to nginx</body></html>")})
p, _ = pull()
T.check("an HTML page instead of a manifest is reported as such",
        p.returncode != 0 and "HTML" in p.stderr, p.stderr)
rules({"method": "GET", "path": "/manifests/", "action": ("body", "text/html",
                                                          b"<html>Bad gateway</html>", 502)})
p, _ = pull("--retries", "0")
T.check("an HTML error page is described, not dumped",
        p.returncode != 0 and "502" in p.stderr and "<html>" not in p.stderr, p.stderr)
rules({"method": "GET", "path": "/manifests/", "action": ("body", "application/json", b"{}", 401,
                                                          {"WWW-Authenticate": 'Bearer realm="http://x'})})
p, _ = pull()
T.check("a malformed WWW-Authenticate header is reported",
        p.returncode != 0 and "malformed WWW-Authenticate" in p.stderr, p.stderr)
proxy.close()
T.done()
