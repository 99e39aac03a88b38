"""Helpers for the registry integration tests (standard library only):
OCI layouts made from scratch, registries in each auth mode, a CA, a
token issuer, and a fault-injecting proxy."""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile

from kilntest import T, free_port, wait_port

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _put_blob(layout, data):
    d = sha(data)
    p = os.path.join(layout, "blobs", "sha256", d[7:])
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
    return d


def make_layer(files):
    """files: {path: bytes}. Returns (gzip blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = 1700000000
                    tf.addfile(ti)
            ti = tarfile.TarInfo(path)
            ti.size = len(files[path])
            ti.mode = 0o644
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(files[path]))
    tar = raw.getvalue()
    gz = gzip.compress(tar, compresslevel=1, mtime=0)
    return gz, sha(tar)


def add_image(layout, layers, arch="amd64", os_="linux", env=None):
    """Writes config + manifest blobs into layout; returns the manifest descriptor."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    ldescs, diff_ids = [], []
    for files in layers:
        gz, diff = make_layer(files)
        ldescs.append({"mediaType": MT_LAYER_GZ, "digest": _put_blob(layout, gz), "size": len(gz)})
        diff_ids.append(diff)
    cfg = {"architecture": arch, "os": os_, "created": "2024-01-01T00:00:00Z",
           "config": {"Env": env or ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []}
    cb = json.dumps(cfg, sort_keys=True).encode()
    man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
           "config": {"mediaType": MT_CONFIG, "digest": _put_blob(layout, cb), "size": len(cb)},
           "layers": ldescs}
    mb = json.dumps(man, sort_keys=True).encode()
    return {"mediaType": MT_MANIFEST, "digest": _put_blob(layout, mb), "size": len(mb),
            "platform": {"architecture": arch, "os": os_}}


def write_index(layout, entries):
    """entries: list of (descriptor, tag)."""
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    ms = []
    for d, tag in entries:
        d = dict(d)
        if tag:
            d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        ms.append(d)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": ms}, f)


def make_layout(layout, tag, layers, **kw):
    d = add_image(layout, layers, **kw)
    d.pop("platform")
    write_index(layout, [(d, tag)])
    return d


def make_multiarch_layout(layout, tag):
    """An index of linux/amd64 and linux/arm64 images; returns (index desc, {arch: manifest desc})."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    per = {}
    for arch in ("amd64", "arm64"):
        per[arch] = add_image(layout, [{"etc/arch": arch.encode() + b"\n"}], arch=arch)
    ix = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [per["amd64"], per["arm64"]]}
    ib = json.dumps(ix, sort_keys=True).encode()
    d = {"mediaType": MT_INDEX, "digest": _put_blob(layout, ib), "size": len(ib)}
    write_index(layout, [(d, tag)])
    return d, per


def tar_of(entries):
    """entries: list of (path, bytes | "dir" | ("dir", mode) | ("sym", target) | ("link", target));
    a stored (level 0) gzip blob and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in entries:
            ti = tarfile.TarInfo(path)
            ti.mtime = 1700000000
            if data == "dir" or isinstance(data, tuple) and data[0] == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, data[1] if isinstance(data, tuple) else 0o755
                tf.addfile(ti)
            elif isinstance(data, tuple):  # ("sym", target) or ("link", target)
                ti.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                ti.linkname, ti.mode = data[1], 0o777 if data[0] == "sym" else 0o644
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, compresslevel=0, mtime=0), sha(tar)


def layout(path, layers):
    """An OCI layout of the given (gzip, diff_id) layers, tagged v1."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": _put_blob(path, cfg), "size": len(cfg)},
                      "layers": [{"mediaType": MT_LAYER_GZ, "digest": _put_blob(path, gz), "size": len(gz)}
                                 for gz, _ in layers]}).encode()
    write_index(path, [({"mediaType": MT_MANIFEST, "digest": _put_blob(path, man), "size": len(man)}, "v1")])


def skopeo(*args, timeout=300):
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=timeout)


def make_ca(d, host="127.0.0.1"):
    """A CA and a server certificate for host (IP SAN). Returns (ca.pem, cert.pem, key.pem)."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = os.path.join(d, "srv.key"), os.path.join(d, "srv.csr"), os.path.join(d, "srv.pem")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\n" % host)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=kiln test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
        "/CN=%s" % host)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


def make_client_cert(d, ca):
    """A client certificate signed by make_ca's CA in d. Returns (cert.pem, key.pem)."""
    key, csr, crt = os.path.join(d, "client.key"), os.path.join(d, "client.csr"), os.path.join(d, "client.cert")
    ext = os.path.join(d, "client-ext.cnf")
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=kiln client")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


def htpasswd(d, user, password):
    p = os.path.join(d, "htpasswd")
    subprocess.run(["htpasswd", "-Bbc", p, user, password], check=True, capture_output=True)
    return p


def start_registry_dir(extra_config="", tls=None):
    """Like kilntest.start_registry, but also returns the registry's data dir."""
    import kilntest
    port = kilntest.start_registry(extra_config, tls)
    return port


# --- a fault-injecting HTTP proxy ---------------------------------------------------------

import re
import socket
import threading
import time
import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    """An HTTP proxy in front of a registry on 127.0.0.1:upstream.

    rules: list of dicts {"method": "GET", "path": regex, "action": ..., "count": N}
    actions: "reset" (close without answering), "status:CODE" (answer CODE, with
    Retry-After: 1 for 429/503), "cut" (forward, send half the body, close),
    "stall" (forward, send half the body, sleep `stall` seconds), "hold" (forward half the
    body, the rest once the rule's "until" callable is true: "held" says whether it was, or
    after `hold` seconds), "corrupt" (flip a
    body byte), ("body", content_type, bytes) (answer 200 with that body),
    ("header", name, value) (forward, replacing a response header).
    count is how many matching requests the rule hits (-1: all). Matches are
    logged in .hits."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.rules = []
        self.hits = []
        self.log = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _rule(self):
                for r in proxy.rules:
                    if r.get("method", self.command) == self.command and \
                            re.search(r["path"], self.path) and r.get("count", -1) != 0:
                        if r.get("count", -1) > 0:
                            r["count"] -= 1
                        proxy.hits.append((self.command, self.path, r["action"]))
                        return r
                return None

            def _handle(self):
                proxy.log.append((self.command, self.path, self.headers.get("Range")))
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                r = self._rule()
                act = r["action"] if r else None
                if act == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(act, str) and act.startswith("status:"):
                    code = int(act[7:])
                    msg = b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}'
                    self.send_response(code)
                    if code in (429, 503):
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                if isinstance(act, tuple) and act[0] == "body":
                    self.send_response(act[3] if len(act) > 3 else 200)
                    for hk, hv in (act[4] if len(act) > 4 else {}).items():
                        self.send_header(hk, hv)
                    self.send_header("Content-Type", act[1])
                    self.send_header("Content-Length", str(len(act[2])))
                    self.end_headers()
                    self.wfile.write(act[2])
                    return
                c = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=60)
                hdrs = {k: v for k, v in self.headers.items()}
                c.request(self.command, self.path, body=body if body or n else None, headers=hdrs)
                resp = c.getresponse()
                data = resp.read() if self.command != "HEAD" else b""
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() in ("content-length", "transfer-encoding", "connection"):
                        continue
                    if isinstance(act, tuple) and act[0] == "header" and k.lower() == act[1].lower():
                        v = act[2]
                    self.send_header(k, v)
                length = int(resp.getheader("Content-Length") or len(data))
                self.send_header("Content-Length", str(length if self.command == "HEAD" else len(data)))
                self.end_headers()
                c.close()
                if self.command == "HEAD":
                    return
                if act == "corrupt" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                if act == "hold" and len(data) > 1:
                    # half the body, then the rest once r["until"]() is true (r["held"]: it
                    # was) or after r["hold"] seconds
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    end = time.time() + r.get("hold", 120)
                    while not r["until"]() and time.time() < end:
                        time.sleep(0.05)
                    r["held"] = r["until"]()
                    self.wfile.write(data[len(data) // 2:])
                    return
                if act in ("cut", "stall") and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    if act == "stall":
                        time.sleep(r.get("stall", 5))
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # clients hanging up on purpose are expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
