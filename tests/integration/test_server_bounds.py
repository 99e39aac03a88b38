"""kiln serve: request and connection bounds against a real server process — webhook bodies
capped before they are buffered (413 on Content-Length, chunked ones cut off at the cap,
server memory stays flat under a flood), while a normal client is still answered; idle
connections (total and per-address caps, closed after the silence timeout) never lock out a
normal client; uploaded context bombs (huge unpacked, many entries) are 413 naming the cap
with nothing left on disk."""
import hashlib
import hmac
import io
import json
import os
import socket
import tarfile
import threading
import time

from kilntest import T
from server_common import TOKEN, Server, tar_gz, write_fake_build

HOOK_CAP = 1 << 20
fake = write_fake_build(T.tmp)
config = {
    "tokens": [TOKEN],
    "projects": [{"name": "app", "github": "acme/app", "secret": "gh-secret-1",
                  "gitlab": "acme/app", "gitlab_token": "gl-token-1"}],
    "max_webhook_bytes": HOOK_CAP,
}
srv = Server(os.path.join(T.tmp, "root"), workers=1, config=config, build_command=fake).start()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def connect():
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 8)
    return s


def read_reply(s):
    """The status line's code, or None when the server closed without answering."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


HEAD = ("POST /v1/hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
        "X-Hub-Signature-256: sha256=" + "0" * 64 + "\r\n")


def oversize_sized(results):
    """A 25 MB Content-Length: answered 413 before the body is sent."""
    s = connect()
    try:
        s.sendall((HEAD + "Content-Length: 25000000\r\n\r\n").encode())
        results.append(read_reply(s))
    finally:
        s.close()


def oversize_chunked(results):
    """A chunked body of 8 MiB: the server stops reading past the cap and closes."""
    s = connect()
    sent = 0
    chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
    try:
        s.sendall((HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode())
        while sent < 8 * HOOK_CAP:
            s.sendall(chunk)
            sent += 65536
        s.sendall(b"0\r\n\r\n")
        results.append(("sent-all", read_reply(s)))
    except OSError:
        results.append(("cut", sent))
    finally:
        s.close()


def run_threads(target, n, results):
    ths = [threading.Thread(target=target, args=(results,)) for _ in range(n)]
    for t in ths:
        t.start()
    return ths


base_rss = rss_kb(srv.proc.pid)
peak = [base_rss]
stop = threading.Event()


def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kb(srv.proc.pid))
        stop.wait(0.05)


sampler = threading.Thread(target=sample)
sampler.start()
sized, chunked = [], []
threads = []
for _ in range(3):  # bounded: 3 rounds of 40 sized and 20 chunked posts at once
    threads = run_threads(oversize_sized, 40, sized) + run_threads(oversize_chunked, 20, chunked)
    st, body = srv.request("GET", "/healthz", token=None)
    T.check("webhook flood: /healthz still answered", st == 200 and body == {"status": "ok"},
            (st, body))
    for t in threads:
        t.join()
stop.set()
sampler.join()
T.check("120 webhooks with a 25 MB Content-Length => 413 each",
        len(sized) == 120 and all(c == 413 for c in sized), sized)
T.check("60 chunked webhooks of 8 MiB: cut off (never read whole, never accepted)",
        len(chunked) == 60 and all(r[0] == "cut" or r[1] in (None, 413) for r in chunked),
        chunked)
T.diag("server RSS: %d kB before, %d kB peak" % (base_rss, peak[0]))
T.check("webhook flood: server RSS stays under 100 MB", 0 < peak[0] < 100 * 1024, peak)

# Under the cap and signed: still accepted; a body nobody signed is 401 before parsing.
raw = json.dumps({"zen": "x", "repository": {"full_name": "acme/app"}}).encode()
sig = "sha256=" + hmac.new(b"gh-secret-1", raw, hashlib.sha256).hexdigest()
st, body = srv.request("POST", "/v1/hooks/github", body=raw, token=None,
                       headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": sig})
T.check("signed ping under the cap => 200", st == 200 and body.get("ok") is True, body)
bad = b"[" + b"0," * 300000 + b"0]"
st, body = srv.request("POST", "/v1/hooks/github", body=bad, token=None,
                       headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": sig})
T.check("unsigned body under the cap => 401 naming the signature",
        st == 401 and "X-Hub-Signature-256" in body.get("error", ""), body)
st, body = srv.request("POST", "/v1/hooks/gitlab", body=b"{}", token=None,
                       headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"})
T.check("gitlab unknown token => 401 from the headers",
        st == 401 and "X-Gitlab-Token" in body.get("error", ""), body)
# (headers only: the answer comes before the body is read, so a client still sending it could
# see the connection closed under it)
s = connect()
s.sendall((HEAD + "Content-Length: %d\r\n\r\n" % (HOOK_CAP + 1)).encode())
reply = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    reply += chunk
s.close()
T.check("body one byte over max_webhook_bytes => 413 naming the key",
        reply.startswith(b"HTTP/1.1 413") and b"max_webhook_bytes" in reply, reply)

# --- idle connections: per-address and total caps, closed after connection_timeout ---
srv.term()
IDLE_TIMEOUT = 20
srv2 = Server(os.path.join(T.tmp, "root2"), workers=1, build_command=fake,
              config=dict(config, connection_timeout=IDLE_TIMEOUT, max_connections=200,
                          max_connections_per_address=50)).start()


def idle_from(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", srv2.port))
    return s


def get_healthz(addr):
    """The status code of GET /healthz from addr, or None when closed unanswered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(60)
    try:
        s.bind((addr, 0))
        s.connect(("127.0.0.1", srv2.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_reply(s)
    except OSError:
        return None
    finally:
        s.close()


def trickle(out):
    """Headers one byte every half second, never complete: a slow client MHD's silence
    timeout alone would keep forever."""
    s = idle_from("127.0.0.7")
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        for i in range(IDLE_TIMEOUT * 2 * 4):
            s.sendall(b"a")
            try:
                if s.recv(1, socket.MSG_DONTWAIT) == b"":
                    out.append(("closed", i))
                    return
            except BlockingIOError:
                pass
            time.sleep(0.5)
        out.append(("still open", i))
    except OSError as e:
        out.append(("closed", str(e)))
    finally:
        s.close()


slow = []
slow_thread = threading.Thread(target=trickle, args=(slow,))
slow_thread.start()
idle = [idle_from("127.0.0.1") for _ in range(300)]
for last in range(2, 5):  # 3 more addresses, 40 each: 50 + 120 held, under the total 200
    idle += [idle_from("127.0.0.%d" % last) for _ in range(40)]
T.check("420 idle connections (300 from one address): GET /healthz from another answers",
        get_healthz("127.0.0.9") == 200)
T.check("per-address cap: a 51st connection from 127.0.0.1 is closed unanswered",
        get_healthz("127.0.0.1") is None)
closed = 0
for s in idle:  # the server closes each: past a cap at once, the others after the timeout
    s.settimeout(IDLE_TIMEOUT * 4)
    try:
        closed += s.recv(1) == b""
    except ConnectionResetError:
        closed += 1
    except OSError:
        pass
    s.close()
T.check("every idle connection is closed by the server", closed == len(idle), closed)
T.check("after the idle ones are gone, 127.0.0.1 is answered again",
        get_healthz("127.0.0.1") == 200)
slow_thread.join()
T.check("a client trickling headers a byte at a time is closed (no complete request within "
        "connection_timeout)", len(slow) == 1 and slow[0][0] == "closed", slow)

# --- uploaded context bombs: unpacked size and entry count caps ---
srv2.term()
ctx_cfg = dict(config, max_context_unpacked_bytes=1 << 20, max_context_entries=500)
srv3 = Server(os.path.join(T.tmp, "root3"), workers=1, build_command=fake, config=ctx_cfg).start()


class Zeros(io.RawIOBase):
    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def zeros_bomb(size):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tf:
        tf.addfile(tarfile.TarInfo("Dockerfile"), io.BytesIO(b""))
        ti = tarfile.TarInfo("zeros")
        ti.size = size
        tf.addfile(ti, io.BufferedReader(Zeros(size)))
    return buf.getvalue()


def ctx_leftovers():
    """What the refused uploads could have left: temp files, unpack dirs, contexts."""
    d = os.path.join(srv3.root, "contexts")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def no_leftovers(before):
    for _ in range(100):  # the upload's temp file goes once the request is finished
        if ctx_leftovers() == before:
            return True
        time.sleep(0.1)
    return False


st, body = srv3.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": b"FROM scratch\n"}))
T.check("a small context under the caps => 201", st == 201 and "context" in body, body)
# The accepted one only: its tree and the notes file of its files' content ids.
ctx = body.get("context")
before = sorted([ctx, ctx + ".notes"]) if ctx else []
T.check("the accepted upload left its context and its notes only", ctx_leftovers() == before,
        ctx_leftovers())
bomb = zeros_bomb(64 << 20)
T.diag("zeros bomb: %d bytes compressed, 64 MiB unpacked" % len(bomb))
st, body = srv3.request("POST", "/v1/contexts", body=bomb)
T.check("context unpacking past max_context_unpacked_bytes => 413 naming the cap and the member",
        st == 413 and "max_context_unpacked_bytes" in body.get("error", "") and
        "'zeros'" in body["error"] and str(1 << 20) in body["error"], body)
T.check("unpacked-size bomb: nothing left on disk", no_leftovers(before), ctx_leftovers())
many = tar_gz({"f%05d" % i: b"" for i in range(2000)})
st, body = srv3.request("POST", "/v1/contexts", body=many)
T.check("context with more than max_context_entries members => 413 naming the cap",
        st == 413 and "max_context_entries" in body.get("error", "") and
        "more than 500 entries" in body["error"], body)
T.check("entry-count bomb: nothing left on disk", no_leftovers(before), ctx_leftovers())
st, body = srv3.request("POST", "/v1/contexts",
                        body=tar_gz({"f%03d" % i: b"x" * 1000 for i in range(400)}))
T.check("400 files of 1000 bytes (under both caps) => 201", st == 201, body)

# --- the default connection caps: 1000 idle connections from 8 addresses lock nobody out ---
many_idle = []
for last in range(10, 18):
    for _ in range(125):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        c.bind(("127.0.0.%d" % last, 0))
        c.connect(("127.0.0.1", srv3.port))
        many_idle.append(c)
st, body = srv3.request("GET", "/healthz", token=None)
T.check("defaults: 1000 idle connections open, GET /healthz still answered",
        st == 200 and body == {"status": "ok"}, (st, body))
for c in many_idle:
    c.close()

T.done()
