"""S3 SigV4 signing checked against botocore.

Debian's awscli package ships botocore inside its own folder; Debian's own
/usr/bin/python3 imports it from there and signs the same requests at the same
fixed time as `kiln aws-sign`: GET (path-style and virtual-hosted), PUT with a
signed payload and with UNSIGNED-PAYLOAD, the three multipart calls, session
tokens, and presigned URLs."""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln  # noqa: E402

KEY_ID = "AKIDSIGNTEST0001"
SECRET = "sIgNtEsT/secret+key0123456789abcdefABCDEF"
TOKEN = "FQoGZXIvYXdzEXAMPLE//session+token/with=chars"
WHEN = "20261125T080000Z"

BOTO = r"""
import datetime, json, sys
sys.path.insert(0, sys.argv[1])
import botocore.auth as A
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

class Fixed(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return datetime.datetime(2026, 11, 25, 8, 0, 0)

class Mod:
    datetime = Fixed

A.datetime = Mod
out = []
for c in json.load(sys.stdin):
    body = bytes.fromhex(c["body_hex"]) if c.get("body_hex") is not None else b""
    req = AWSRequest(method=c["method"], url=c["url"], headers=dict(c.get("headers", {})),
                     data=body)
    if c.get("unsigned"):
        req.context["has_streaming_input"] = True
    creds = Credentials(c["key"], c["secret"], c.get("token"))
    if c.get("presign"):
        A.S3SigV4QueryAuth(creds, "s3", c["region"], expires=c["presign"]).add_auth(req)
        out.append({"url": req.url})
    else:
        A.S3SigV4Auth(creds, "s3", c["region"]).add_auth(req)
        out.append({"authorization": req.headers["Authorization"],
                    "sha256": req.headers["X-Amz-Content-SHA256"]})
print(json.dumps(out))
"""

BODY = b"hello, kiln\n" * 100
XML = (b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
       b'<Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag></Part>'
       b'</CompleteMultipartUpload>')

CASES = [
    {"name": "GET path-style on a custom endpoint", "method": "GET",
     "url": "http://127.0.0.1:9000/site/www/index.html"},
    {"name": "GET virtual-hosted with Range, encoded key", "method": "GET",
     "url": "https://site.s3.us-west-2.amazonaws.com/dir/a%20b%2Bc%C3%A9.txt",
     "headers": {"Range": "bytes=0-9"}, "region": "us-west-2"},
    {"name": "PUT signed payload, no path normalisation", "method": "PUT",
     "url": "http://127.0.0.1:9000/site/a//b/../c.txt", "body": BODY,
     "headers": {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache",
                 "x-amz-checksum-sha256": "3q2+7w=="}},
    {"name": "PUT UNSIGNED-PAYLOAD (https, Content-MD5, streamed)", "method": "PUT",
     "url": "https://site.s3.amazonaws.com/big.bin", "body": BODY, "unsigned": True,
     "headers": {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}},
    {"name": "multipart: CreateMultipartUpload", "method": "POST",
     "url": "http://127.0.0.1:9000/site/big.bin?uploads",
     "headers": {"Content-Type": "application/octet-stream"}},
    {"name": "multipart: UploadPart", "method": "PUT",
     "url": "http://127.0.0.1:9000/site/big.bin?partNumber=2&uploadId=VXBsb2FkSWQ%2Fx.y-z",
     "body": BODY, "headers": {"Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww=="}},
    {"name": "multipart: CompleteMultipartUpload", "method": "POST",
     "url": "http://127.0.0.1:9000/site/big.bin?uploadId=VXBsb2FkSWQ%2Fx.y-z", "body": XML},
    {"name": "multipart: AbortMultipartUpload", "method": "DELETE",
     "url": "http://127.0.0.1:9000/site/big.bin?uploadId=VXBsb2FkSWQ%2Fx.y-z"},
    {"name": "PUT with a session token", "method": "PUT",
     "url": "https://site.s3.eu-central-1.amazonaws.com/k", "body": b"x", "token": TOKEN,
     "region": "eu-central-1"},
    {"name": "presigned GET, virtual-hosted, session token", "method": "GET",
     "url": "https://site.s3.amazonaws.com/dir/file%20name.txt", "presign": 3600, "token": TOKEN},
    {"name": "presigned PUT, path-style, with an operation parameter", "method": "PUT",
     "url": "http://127.0.0.1:9000/site/up.bin?x-id=PutObject", "presign": 900},
]


def botocore_dir():
    try:
        out = subprocess.run(["dpkg", "-L", "awscli"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if line.endswith("/botocore/auth.py"):
            return os.path.dirname(os.path.dirname(line))
    return None


def kiln_sign(c):
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_SESSION_TOKEN": c.get("token") or "", "AWS_EC2_METADATA_DISABLED": "true",
           "HOME": T.tmp}
    args = ["aws-sign", "--method", c["method"], "--url", c["url"], "--region",
            c.get("region", "us-east-1"), "--time", WHEN]
    for k, v in c.get("headers", {}).items():
        args += ["--header", "%s: %s" % (k, v)]
    if c.get("body"):
        p = os.path.join(T.tmp, "body")
        with open(p, "wb") as f:
            f.write(c["body"])
        args += ["--body", p]
    if c.get("unsigned"):
        args.append("--unsigned-payload")
    if c.get("presign"):
        args += ["--presign", str(c["presign"])]
    r = kiln(*args, env=env)
    if r.returncode != 0:
        return {"error": r.stderr}
    if c.get("presign"):
        return {"url": r.stdout.strip()}
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    return {"authorization": lines.get("Authorization"), "sha256": lines.get("X-Amz-Content-SHA256")}


def main():
    bdir = botocore_dir()
    if bdir is None or not os.path.exists("/usr/bin/python3"):
        T.check("Debian's awscli (with botocore) is installed", False, "dpkg -L awscli")
        T.done()
    req = []
    for c in CASES:
        d = {"method": c["method"], "url": c["url"], "headers": c.get("headers", {}),
             "region": c.get("region", "us-east-1"), "key": KEY_ID, "secret": SECRET,
             "token": c.get("token"), "unsigned": c.get("unsigned", False),
             "presign": c.get("presign"),
             "body_hex": c["body"].hex() if c.get("body") else None}
        req.append(d)
    # Debian's own python3, not another one earlier on PATH
    r = subprocess.run(["/usr/bin/python3", "-c", BOTO, bdir], input=json.dumps(req),
                       capture_output=True, text=True, timeout=120)
    if not T.check("botocore computes reference signatures", r.returncode == 0, r.stderr):
        T.done()
    ref = json.loads(r.stdout)
    for c, want in zip(CASES, ref):
        got = kiln_sign(c)
        T.check("%s: same as botocore" % c["name"], got == want,
                "kiln:     %s\nbotocore: %s" % (got, want))
    # the unsigned case really is unsigned, and the signed one hashes the body
    T.check("UNSIGNED-PAYLOAD used for the streamed PUT", ref[3]["sha256"] == "UNSIGNED-PAYLOAD")
    T.check("signed PUT carries the body's SHA-256", ref[2]["sha256"] ==
            hashlib.sha256(BODY).hexdigest())
    T.done()


main()
