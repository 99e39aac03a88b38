"""EC2 instance metadata (IMDSv2) credentials, without ever leaving the host:
the test re-runs itself inside a fresh network namespace (`unshare -n`, only
loopback, brought up here), where a stdlib IMDSv2 server on 127.0.0.1 plays
169.254.169.254 (kiln is pointed at it with AWS_EC2_METADATA_SERVICE_ENDPOINT,
as the AWS SDKs allow) and a recording S3 stub takes `kiln upload`. Checks:
the session token is fetched with a TTL and sent on every metadata read (401
without it), the role's temporary credentials sign every S3 request (key id
and X-Amz-Security-Token), credentials close to their Expiration are fetched
again (and the new ones used), AWS_EC2_METADATA_DISABLED=true means no
metadata request and an error naming every source tried."""
import os
import subprocess
import sys

MARK = "KILN_IMDS_TEST_NETNS"

if os.environ.get(MARK) != "1":
    # Outside the namespace yet: re-run this file inside one (before kilntest
    # makes its temp dir). No namespace, no test: say so and stop.
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        print("ok 1 - IMDS tests # SKIP unshare -n unavailable: %s" % probe.stderr.strip())
        print("1..1")
        sys.exit(0)
    env = dict(os.environ, **{MARK: "1"})
    os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, os.path.abspath(__file__)], env)

import errno  # noqa: E402
import fcntl  # noqa: E402
import http.server  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln  # noqa: E402

ROLE = "kiln-build-role"
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up():
    """`ip link set lo up` without iproute2."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def unreachable(host, port):
    """True when connecting to host:port fails at once for want of a route."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        return False
    except OSError as e:
        return e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)
    finally:
        s.close()


class Imds:
    """IMDSv2 on 127.0.0.1: PUT /latest/api/token (TTL header required), then
    GETs with X-aws-ec2-metadata-token; 401 without a valid token. Each
    credentials answer has a new key id; `lifetime` sets their Expiration."""

    def __init__(self):
        self.tokens = {}  # token -> [expiry time, reads left]
        self.token_reads = None  # reads a token is good for (None: until its TTL)
        self.log = []  # (method, path, ttl header, token header, status)
        self.issued = []  # key ids handed out, in order
        self.lifetime = 6 * 3600
        self.lock = threading.Lock()
        imds = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body, ctype="text/plain"):
                data = body.encode()
                with imds.lock:
                    imds.log.append((self.command, self.path,
                                     self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"),
                                     self.headers.get("X-aws-ec2-metadata-token"), status))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                if self.path != "/latest/api/token":
                    return self.answer(404, "not found")
                try:
                    ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
                except ValueError:
                    ttl = 0
                if not 1 <= ttl <= 21600:
                    return self.answer(400, "missing or bad TTL")
                tok = "imds-" + secrets.token_hex(16)
                with imds.lock:
                    imds.tokens[tok] = [time.time() + ttl, imds.token_reads]
                return self.answer(200, tok)

            def do_GET(self):
                tok = self.headers.get("X-aws-ec2-metadata-token")
                with imds.lock:
                    t = imds.tokens.get(tok)
                    ok = t is not None and t[0] > time.time() and t[1] != 0
                    if ok and t[1] is not None:
                        t[1] -= 1
                if not ok:
                    return self.answer(401, "")
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    return self.answer(200, ROLE)
                if self.path == base + ROLE:
                    with imds.lock:
                        key = "ASIAIMDS%04d" % (len(imds.issued) + 1)
                        imds.issued.append(key)
                    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                        time.gmtime(time.time() + imds.lifetime))
                    return self.answer(200, json.dumps({
                        "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": key,
                        "SecretAccessKey": "imds-secret-" + key, "Token": "session-" + key,
                        "Expiration": exp}), "application/json")
                return self.answer(404, "not found")

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def reset(self, lifetime, token_reads=None):
        with self.lock:
            self.log = []
            self.issued = []
            self.lifetime = lifetime
            self.token_reads = token_reads


class S3Stub:
    """Records every request; PUT answers 200 with an ETag, anything else 404."""

    def __init__(self):
        self.log = []  # (method, path, authorization, security token)
        self.lock = threading.Lock()
        stub = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                with stub.lock:
                    stub.log.append((self.command, self.path, self.headers.get("Authorization", ""),
                                     self.headers.get("X-Amz-Security-Token")))
                if self.command == "PUT":
                    status, body = 200, b""
                else:
                    status = 404
                    body = (b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                            b"<Message>no such key</Message></Error>")
                self.send_response(status)
                self.send_header("ETag", "\"0123456789abcdef\"")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def take(self):
        with self.lock:
            out, self.log = self.log, []
        return out


def key_of(auth):
    """The access key id in a SigV4 Authorization header, or None."""
    tag = "Credential="
    i = auth.find(tag)
    return auth[i + len(tag):].split("/", 1)[0] if i >= 0 else None


def main():
    loopback_up()
    T.check("inside a network namespace with only loopback (169.254.169.254 unroutable)",
            unreachable("169.254.169.254", 80) and unreachable("10.0.0.1", 80))
    for k in [k for k in os.environ if k.startswith("AWS_") or k.lower().endswith("_proxy")]:
        del os.environ[k]
    os.environ["no_proxy"] = "127.0.0.1,localhost"
    imds = Imds()
    s3 = S3Stub()
    site = os.path.join(T.tmp, "site")
    os.makedirs(site)
    for i in range(3):
        with open(os.path.join(site, "page%d.html" % i), "w") as f:
            f.write("<p>%d</p>\n" % i)
    nofile = os.path.join(T.tmp, "absent")
    env = {"HOME": T.tmp, "AWS_SHARED_CREDENTIALS_FILE": nofile, "AWS_CONFIG_FILE": nofile,
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3.url,
           "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_EC2_METADATA_DISABLED": "false",
           "AWS_MAX_ATTEMPTS": "1"}

    # the stub itself: no token, no metadata
    try:
        urllib.request.urlopen(imds.url + "/latest/meta-data/iam/security-credentials/",
                               timeout=5)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    T.check("the IMDSv2 stand-in answers 401 without a session token", code == 401, code)

    imds.reset(6 * 3600)
    s3.take()
    p = kiln("upload", site, "--output", "type=s3,dest=s3://bucket/one", "--concurrency", "1",
             env=env)
    reqs = s3.take()
    T.check("kiln upload with instance-role credentials succeeds",
            p.returncode == 0 and len(reqs) >= 4, (p.returncode, p.stderr, len(reqs)))
    log = list(imds.log)
    puts = [e for e in log if e[0] == "PUT"]
    gets = [e for e in log if e[0] == "GET"]
    T.check("one session token was requested, with a TTL (PUT /latest/api/token)",
            len(puts) == 1 and all(e[2] and int(e[2]) > 0 and e[4] == 200 for e in puts), log)
    T.check("every metadata read carried the session token (no 401)",
            len(gets) >= 2 and all(e[3] and e[3].startswith("imds-") and e[4] == 200
                                   for e in gets), log)
    T.check("the role was listed, then its credentials read",
            [e[1] for e in gets[:2]] == ["/latest/meta-data/iam/security-credentials/",
                                         "/latest/meta-data/iam/security-credentials/" + ROLE],
            gets)
    T.check("every S3 request is signed with the role's key and carries its session token",
            all(key_of(r[2]) == "ASIAIMDS0001" and "/us-east-1/s3/aws4_request" in r[2] and
                r[3] == "session-ASIAIMDS0001" for r in reqs), reqs)
    T.check("long-lived credentials are fetched once for the whole upload",
            imds.issued == ["ASIAIMDS0001"], (imds.issued, len(reqs)))
    T.check("no secret in kiln's output",
            "imds-secret" not in p.stdout + p.stderr and "session-ASIA" not in p.stdout + p.stderr)

    # Expiration inside the refresh margin (5 minutes): fetched again before use
    imds.reset(120)
    p = kiln("upload", site, "--output", "type=s3,dest=s3://bucket/two", "--concurrency", "1",
             env=env)
    reqs = s3.take()
    used = [key_of(r[2]) for r in reqs]
    T.check("credentials about to expire are fetched again (one fetch per request here)",
            p.returncode == 0 and len(imds.issued) >= len(reqs) >= 4, (imds.issued, used,
                                                                         p.stderr))
    T.check("... and the fresh ones sign the later requests",
            len(set(used)) >= 2 and used[-1] == imds.issued[-1] and
            all(r[3] == "session-" + key_of(r[2]) for r in reqs), (imds.issued, used))
    T.check("... while the session token is reused (one PUT for every refresh)",
            len([e for e in imds.log if e[0] == "PUT"]) == 1, imds.log)

    # tokens revoked after 3 reads: a 401 makes kiln fetch a new token and retry
    imds.reset(120, token_reads=3)
    p = kiln("upload", site, "--output", "type=s3,dest=s3://bucket/revoked", "--concurrency", "1",
             env=env)
    reqs = s3.take()
    log = list(imds.log)
    refused = [i for i, e in enumerate(log) if e[4] == 401]
    T.check("a refused session token (401) is replaced and the read retried",
            p.returncode == 0 and len(reqs) >= 4 and refused and
            all(i + 2 < len(log) and log[i + 1][0] == "PUT" and log[i + 2][1] == log[i][1] and
                log[i + 2][4] == 200 for i in refused), (p.stderr, log))

    imds.reset(6 * 3600)
    p = kiln("upload", site, "--output", "type=s3,dest=s3://bucket/three",
             env=dict(env, AWS_EC2_METADATA_DISABLED="true"))
    T.check("AWS_EC2_METADATA_DISABLED=true: the metadata service is not contacted",
            imds.log == [] and s3.take() == [], imds.log)
    T.check("... and the error names every source tried",
            p.returncode != 0 and "no AWS credentials found" in p.stderr and
            "environment" in p.stderr and "shared credentials file" in p.stderr and
            "ECS container credentials" in p.stderr and
            "EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)" in p.stderr, p.stderr)

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d" % closed.getsockname()[1]
    closed.close()
    p = kiln("upload", site, "--output", "type=s3,dest=s3://bucket/four",
             env=dict(env, AWS_EC2_METADATA_SERVICE_ENDPOINT=dead))
    T.check("an unreachable metadata endpoint: error names it among the sources",
            p.returncode != 0 and "EC2 instance metadata" in p.stderr and dead in p.stderr and
            s3.take() == [], p.stderr)
    T.done()


main()
