"""kiln upload against fauxqs (through a recording proxy), read back with awscli.

Covers: a 1,000-file site + a 50 MiB multipart file read back byte-identical
with the expected Content-Type; Cache-Control policy and override; checksums
and SigV4 headers as sent; incremental redeploy; 403 reporting without secrets;
retries; a multipart upload failing midway is aborted; hostile XML answers (an
XXE entity in the UploadId, a 200 completion carrying an <Error>); missing credentials;
credentials from shared files (AWS_PROFILE) and ECS container credentials."""
import base64
import hashlib
import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T, kiln  # noqa: E402
import awslib  # noqa: E402

MiB = 1024 * 1024


def aws_cli(endpoint, *args):
    env = dict(os.environ)
    env.update(awslib.kiln_env(endpoint))
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(["/usr/bin/aws", "--endpoint-url", endpoint, *args], capture_output=True,
                          text=True, env=env, timeout=600)


def expected_type(name):
    ext = name.rsplit(".", 1)[-1]
    return {"html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
            "js": "text/javascript; charset=utf-8", "json": "application/json",
            "png": "image/png", "svg": "image/svg+xml", "txt": "text/plain; charset=utf-8",
            "bin": "application/octet-stream", "woff2": "font/woff2"}[ext]


def expected_cache(name):
    base = name.rsplit("/", 1)[-1]
    if base.endswith(".html"):
        return "no-cache"
    parts = base.split(".")
    if len(parts) == 3 and len(parts[1]) == 8 and all(c in "0123456789abcdef" for c in parts[1]):
        return "public, max-age=31536000, immutable"  # name.3f9a1c2b.ext
    return "public, max-age=3600"


def make_site(root):
    rnd = random.Random(7)
    files = {}
    exts = ["html", "css", "js", "json", "png", "svg", "txt", "woff2"]
    for i in range(999):
        d = "d%02d" % (i % 37)
        ext = exts[i % len(exts)]
        if ext in ("js", "css") and i % 3 == 0:
            name = "%s/asset%d.%07x%d.%s" % (d, i, rnd.getrandbits(28), i % 10, ext)
        else:
            name = "%s/file%d.%s" % (d, i, ext)
        files[name] = rnd.randbytes(rnd.randint(0, 4000))
    files["index.html"] = b"<!doctype html><h1>kiln</h1>\n"
    for name, data in files.items():
        p = os.path.join(root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    big = os.path.join(root, "media", "big.bin")
    os.makedirs(os.path.dirname(big), exist_ok=True)
    with open(big, "wb") as f:
        f.write(rnd.randbytes(50 * MiB))
    files["media/big.bin"] = None
    return files


def object_puts(reqs, prefix):
    """PUTs of whole objects under /bucket/prefix (no parts, no manifest)."""
    out = {}
    for r in reqs:
        if r["method"] == "PUT" and r["path"].startswith(prefix) and "?" not in r["path"] \
                and "/.kiln/" not in r["path"]:
            out[r["path"][len(prefix):]] = r
    return out


def main():
    direct, proxy, env = awslib.start_services(T)
    awslib.s3_create_bucket(direct, "site")

    site = os.path.join(T.tmp, "site")
    files = make_site(site)

    # ---- first deploy
    r = kiln("upload", site, "--output", "type=s3,dest=s3://site/www", env=env)
    T.check("upload of 1,000 files + 50 MiB succeeds", r.returncode == 0, r.stderr + r.stdout)
    T.check("summary counts 1001 files, 1 multipart",
            "files 1001, uploaded 1001 (multipart 1)" in r.stdout, r.stdout)
    reqs = proxy.requests()

    # read back with awscli
    back = os.path.join(T.tmp, "back")
    s = aws_cli(direct, "s3", "sync", "--only-show-errors", "s3://site/www", back)
    same = s.returncode == 0
    detail = s.stderr
    if same:
        for name in files:
            with open(os.path.join(site, name), "rb") as a, open(os.path.join(back, name),
                                                                   "rb") as b:
                if a.read() != b.read():
                    same, detail = False, "differs: " + name
                    break
    T.check("aws s3 sync reads every object back byte-identical", same, detail)
    T.check("deploy manifest object exists",
            os.path.exists(os.path.join(back, ".kiln", "deploy-manifest.json")))
    man = json.load(open(os.path.join(back, ".kiln", "deploy-manifest.json")))
    T.check("manifest lists every file with its sha256",
            len(man["files"]) == 1001 and man["files"]["index.html"]["sha256"] ==
            hashlib.sha256(files["index.html"]).hexdigest(), str(len(man["files"])))

    bad = []
    for key in ["index.html", "d00/file0.html", "d01/file1.css", "d02/file2.js", "d04/file4.png",
                "d05/file5.svg", "d07/file7.woff2", "media/big.bin", "d03/file3.json"]:
        h = aws_cli(direct, "s3api", "head-object", "--bucket", "site", "--key", "www/" + key)
        if h.returncode != 0 or json.loads(h.stdout).get("ContentType") != expected_type(key):
            bad.append((key, h.stdout + h.stderr))
    T.check("Content-Type by extension (aws s3api head-object)", not bad, bad)

    puts = object_puts(reqs, "/site/www/")
    T.check("the proxy saw one PUT per small file", len(puts) == 1000, len(puts))
    wrong_cc, wrong_ck, wrong_sig = [], [], []
    for name, data in files.items():
        if data is None:
            continue
        req = puts.get(name)
        if req is None:
            wrong_cc.append((name, "missing"))
            continue
        if req["headers"].get("cache-control") != expected_cache(name):
            wrong_cc.append((name, req["headers"].get("cache-control")))
        if req["headers"].get("x-amz-checksum-sha256") != \
                base64.b64encode(hashlib.sha256(data).digest()).decode():
            wrong_ck.append(name)
        a = req["headers"].get("authorization", "")
        if not a.startswith("AWS4-HMAC-SHA256 Credential=%s/" % awslib.TEST_KEY_ID) or \
                "/us-east-1/s3/aws4_request" not in a or \
                req["headers"].get("x-amz-content-sha256") != hashlib.sha256(data).hexdigest():
            wrong_sig.append((name, a))
    T.check("Cache-Control: no-cache for HTML, immutable for hashed names, short otherwise",
            not wrong_cc, wrong_cc[:5])
    T.check("x-amz-checksum-sha256 matches every file", not wrong_ck, wrong_ck[:5])
    T.check("SigV4 Authorization + signed payload hash on every PUT", not wrong_sig, wrong_sig[:3])
    parts = [x for x in reqs if x["method"] == "PUT" and "partNumber=" in x["path"]]
    T.check("50 MiB file went up in 7 parts of <= 8 MiB", len(parts) == 7 and
            max(x["size"] for x in parts) == 8 * MiB, [(x["path"], x["size"]) for x in parts])
    with open(os.path.join(site, "media", "big.bin"), "rb") as f:
        f.seek(8 * MiB)
        p2 = f.read(8 * MiB)
    p2req = [x for x in parts if "partNumber=2&" in x["path"]]
    T.check("part 2 is signed with the SHA-256 of bytes 8-16 MiB (checked by S3)", p2req and
            p2req[0]["headers"].get("x-amz-content-sha256") == hashlib.sha256(p2).hexdigest() and
            "/s3/aws4_request" in p2req[0]["headers"].get("authorization", ""))

    # ---- incremental redeploy: one file changed
    with open(os.path.join(site, "d01", "file1.css"), "ab") as f:
        f.write(b"/* changed */\n")
    proxy.clear()
    r = kiln("upload", site, "--output", "type=s3,dest=s3://site/www", env=env)
    puts = object_puts(proxy.requests(), "/site/www/")
    T.check("second deploy uploads only the changed file",
            r.returncode == 0 and list(puts) == ["d01/file1.css"] and
            "uploaded 1 (multipart 0), unchanged 1000" in r.stdout, (r.stdout, r.stderr, list(puts)[:5]))
    g = aws_cli(direct, "s3", "cp", "s3://site/www/d01/file1.css", os.path.join(T.tmp, "f1.css"))
    T.check("changed file reads back updated", g.returncode == 0 and
            open(os.path.join(T.tmp, "f1.css"), "rb").read().endswith(b"/* changed */\n"))

    # ---- Cache-Control override
    small = os.path.join(T.tmp, "small")
    os.makedirs(small)
    open(os.path.join(small, "index.html"), "w").write("hi\n")
    open(os.path.join(small, "app.3f9a1c2b.js"), "w").write("x\n")
    proxy.clear()
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/cc", "--cache-control",
             "max-age=60", env=env)
    puts = object_puts(proxy.requests(), "/site/cc/")
    T.check("--cache-control overrides the policy", r.returncode == 0 and len(puts) == 2 and
            all(p["headers"].get("cache-control") == "max-age=60" for p in puts.values()),
            r.stderr)
    proxy.clear()
    r = kiln("upload", small, "--output",
             "type=s3,dest=s3://site/cc2,cache-control=public, max-age=120", env=env)
    puts = object_puts(proxy.requests(), "/site/cc2/")
    T.check("cache-control inside the --output spec (with a comma)", r.returncode == 0 and
            len(puts) == 2 and all(p["headers"].get("cache-control") == "public, max-age=120"
                                   for p in puts.values()), r.stderr)

    # ---- virtual-hosted-style addressing (bucket in the Host header)
    proxy.clear()
    vh = dict(env, AWS_ENDPOINT_URL="http://localhost:%d" % proxy.port, KILN_S3_PATH_STYLE="0")
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/vhost", env=vh)
    hosts = {x["headers"].get("host") for x in proxy.requests()}
    g = aws_cli(direct, "s3", "cp", "s3://site/vhost/index.html", os.path.join(T.tmp, "vh.html"))
    T.check("virtual-hosted-style: Host is bucket.endpoint, paths have no bucket",
            r.returncode == 0 and hosts == {"site.localhost:%d" % proxy.port} and
            all(x["path"].startswith("/vhost/") for x in proxy.requests()) and g.returncode == 0 and
            open(os.path.join(T.tmp, "vh.html")).read() == "hi\n", (r.stderr, hosts))

    # ---- function zip (single file)
    z = os.path.join(T.tmp, "function.zip")
    with open(z, "wb") as f:
        f.write(b"PK\x05\x06" + b"\0" * 18)
    r = kiln("upload", z, "--output", "type=s3,dest=s3://site/functions/", env=env)
    h = aws_cli(direct, "s3api", "head-object", "--bucket", "site", "--key",
                "functions/function.zip")
    T.check("a single file (function zip) uploads with application/zip",
            r.returncode == 0 and h.returncode == 0 and
            json.loads(h.stdout).get("ContentType") == "application/zip", r.stderr + h.stderr)

    # ---- 403: S3 code and message, no secret
    proxy.clear()
    proxy.add_rule(lambda m, p, h: p.startswith("/site/denied/") and m == "PUT", 403,
                   awslib.s3_error("AccessDenied", "Access Denied by bucket policy"))
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/denied", env=env)
    T.check("403 fails with the S3 error code and message",
            r.returncode == 1 and "AccessDenied" in r.stderr and
            "Access Denied by bucket policy" in r.stderr, r.stderr)
    T.check("no secret in the error output", awslib.TEST_SECRET not in r.stderr + r.stdout and
            "kilnTestSecret" not in r.stderr)

    # ---- transient 500s are retried
    proxy.clear()
    proxy.add_rule(lambda m, p, h: p == "/site/retry/index.html" and m == "PUT", 500,
                   awslib.s3_error("InternalError", "try again"), times=2)
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/retry", env=env)
    tries = [x for x in proxy.requests() if x["path"] == "/site/retry/index.html"]
    T.check("two 500 answers are retried and the upload succeeds",
            r.returncode == 0 and len(tries) == 3 and tries[-1]["status"] == 200,
            (r.stderr, [t["status"] for t in tries]))

    # ---- multipart failing midway is aborted
    mp = os.path.join(T.tmp, "mp")
    os.makedirs(mp)
    with open(os.path.join(mp, "large.bin"), "wb") as f:
        f.write(random.Random(3).randbytes(30 * MiB))
    proxy.clear()
    proxy.add_rule(lambda m, p, h: m == "PUT" and "partNumber=3&" in p, 500,
                   awslib.s3_error("InternalError", "part store failed"))
    r = kiln("upload", mp, "--output", "type=s3,dest=s3://site/mp", env=env)
    reqs = proxy.requests()
    aborts = [x for x in reqs if x["method"] == "DELETE" and "uploadId=" in x["path"]]
    p3 = [x for x in reqs if "partNumber=3&" in x["path"]]
    T.check("multipart failing midway exits 1 naming the part", r.returncode == 1 and
            "part 3" in r.stderr and "InternalError" in r.stderr, r.stderr)
    T.check("failed part is retried before giving up", len(p3) >= 3, len(p3))
    T.check("the multipart upload is aborted (DELETE ?uploadId answered 2xx)",
            len(aborts) == 1 and 200 <= aborts[0]["status"] < 300, aborts)
    h = aws_cli(direct, "s3api", "head-object", "--bucket", "site", "--key", "mp/large.bin")
    T.check("no object left behind by the failed upload", h.returncode != 0)
    T.check("no manifest written by the failed deploy",
            aws_cli(direct, "s3api", "head-object", "--bucket", "site", "--key",
                    "mp/.kiln/deploy-manifest.json").returncode != 0)

    # ---- hostile XML answers. An entity naming a host file in the UploadId (XXE): were it
    # expanded, the file would travel back in every part's ?uploadId=.
    marker = os.path.join(T.tmp, "xxe-marker")
    secret_line = "HOST-MARKER-%d-%d" % (os.getpid(), random.randrange(1 << 30))
    with open(marker, "w") as f:
        f.write(secret_line)
    xxe = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY m SYSTEM "file://%s">]>'
           '<InitiateMultipartUploadResult><UploadId>&m;</UploadId>'
           '</InitiateMultipartUploadResult>' % marker)
    proxy.clear()
    proxy.add_rule(lambda m, p, h: m == "POST" and p.endswith("?uploads="), 200, xxe)
    r = kiln("upload", mp, "--output", "type=s3,dest=s3://site/xxe", env=env)
    sent = json.dumps(proxy.requests())
    T.check("an UploadId answer with a DOCTYPE is refused, naming it",
            r.returncode == 1 and "multipart upload of s3://site/xxe/large.bin: answer has a "
            "DOCTYPE (refused)" in r.stderr, r.stderr)
    T.check("the host file named by the entity is not sent anywhere nor written",
            secret_line not in sent and secret_line not in r.stderr + r.stdout and
            open(marker).read() == secret_line and
            not any("partNumber=" in x["path"] for x in proxy.requests()), sent[:2000])
    # a completion answered 200 with an <Error> document fails, and the upload is aborted
    proxy.clear()
    proxy.add_rule(lambda m, p, h: m == "POST" and "?uploadId=" in p, 200,
                   awslib.s3_error("InternalError", "completion failed after the 200"))
    r = kiln("upload", mp, "--output", "type=s3,dest=s3://site/mp200", env=env)
    aborts = [x for x in proxy.requests() if x["method"] == "DELETE" and "uploadId=" in x["path"]]
    T.check("a 200 completion with an <Error> body fails with its code and message",
            r.returncode == 1 and "HTTP 200 InternalError: completion failed after the 200" in
            r.stderr, r.stderr)
    T.check("... and the multipart upload is aborted", len(aborts) == 1, aborts)

    # ---- missing credentials
    bare = {k: v for k, v in env.items()}
    bare.update({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": T.tmp})
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/nocreds", env=bare)
    T.check("missing credentials: error names every source tried",
            r.returncode == 1 and all(s in r.stderr for s in (
                "no AWS credentials", "environment", "shared credentials file",
                "shared config file", "ECS container credentials",
                "EC2 instance metadata (disabled")), r.stderr)

    # ---- shared credentials file + AWS_PROFILE
    awsdir = os.path.join(T.tmp, ".aws")
    os.makedirs(awsdir, exist_ok=True)
    with open(os.path.join(awsdir, "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = x\n\n"
                "[deploy]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s3cr3t\n")
    proxy.clear()
    e2 = dict(bare)
    e2["AWS_PROFILE"] = "deploy"
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/prof", env=e2)
    auths = {x["headers"].get("authorization", "")[:60] for x in proxy.requests()}
    T.check("credentials from ~/.aws/credentials [AWS_PROFILE]", r.returncode == 0 and
            all("Credential=AKIDPROFILE/" in a for a in auths), (r.stderr, auths))

    # ---- ECS container credentials (full URI + authorization token)
    seen = []
    expiry = ["2099-01-01T00:00:00Z"]

    class Ecs(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != "ecs-token-123":
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"AccessKeyId": "ASIAECS", "SecretAccessKey": "ecssecret",
                               "Token": "ecs-session-token", "Expiration": expiry[0]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

    shutil.rmtree(awsdir)  # shared files come before ECS in the chain
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ecs)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    e3 = dict(bare)
    e3["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.0.0.1:%d/creds" % srv.server_address[1]
    e3["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "ecs-token-123"
    proxy.clear()
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/ecs", env=e3)
    reqs = proxy.requests()
    T.check("ECS container credentials with authorization token", r.returncode == 0 and
            seen and seen[0] == "ecs-token-123" and reqs and
            all("Credential=ASIAECS/" in x["headers"].get("authorization", "") and
                x["headers"].get("x-amz-security-token") == "ecs-session-token" for x in reqs),
            (r.stderr, seen))
    # temporary credentials about to expire are fetched again before use
    import datetime
    expiry[0] = (datetime.datetime.now(datetime.timezone.utc) +
                 datetime.timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    del seen[:]
    proxy.clear()
    r = kiln("upload", small, "--output", "type=s3,dest=s3://site/ecs2", env=e3)
    n = len(proxy.requests())
    T.check("credentials expiring within 5 minutes are refreshed before each request",
            r.returncode == 0 and n >= 3 and len(seen) >= n, (r.stderr, len(seen), n))
    srv.shutdown()
    shutil.rmtree(site, ignore_errors=True)
    T.done()


main()
