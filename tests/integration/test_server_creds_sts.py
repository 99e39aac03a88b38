"""A tenant's AWS role assumed through STS by a real `kiln serve`, against moto's server (STS,
IAM and S3, with request authentication on: it checks every SigV4 signature and the keys it
issued). The server signs AssumeRole with the tenant's credentials file, hands only the
temporary keys to the build, and the build's S3 upload is signed with them (session token
included), never with the file's keys or the server's own; so is the ECR token its push gets through
kiln's ecr-login helper (a docker-registry whose htpasswd login is moto's token). A wrong secret in the tenant's file
fails the build with reason `credentials` and STS's 403, naming the role and never a
secret; a tenant without AWS credentials uploads nothing."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
# moto authenticates every request after the first few (the test's own IAM set-up)
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "5"
from kilntest import T, free_port, start_registry  # noqa: E402
from registry_fixtures import htpasswd  # noqa: E402
from server_common import Server, tar_gz  # noqa: E402

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError as e:  # noqa: BLE001
    T.skip("STS against moto", "moto is not installed: %s" % e)
    T.done()
import awslib  # noqa: E402

port = free_port()
moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
moto.start()
ep = "http://127.0.0.1:%d" % port
boot = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="AKIDBOOTSTRAP000",
            aws_secret_access_key="x")
iam = boto3.client("iam", **boot)
iam.create_user(UserName="kiln-server")
key = iam.create_access_key(UserName="kiln-server")["AccessKey"]
ALLOW = json.dumps({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
iam.put_user_policy(UserName="kiln-server", PolicyName="all", PolicyDocument=ALLOW)
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
role = iam.create_role(RoleName="kiln-acme", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
iam.put_role_policy(RoleName="kiln-acme", PolicyName="all", PolicyDocument=ALLOW)
# from here on every request is authenticated
user = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"])
s3 = boto3.client("s3", **user)
s3.create_bucket(Bucket="tenants")

proxy = awslib.Proxy(port)  # records which key signed each request
# a registry whose login is the ECR token moto hands out (AWS:<account>-auth-token): reached
# with kiln's ecr-login helper, which signs GetAuthorizationToken with the tenant's keys
ECR_TOKEN = "123456789012-auth-token"
os.makedirs(os.path.join(T.tmp, "h"))
REG = "127.0.0.1:%d" % start_registry("auth:\n  htpasswd:\n    realm: ecr\n    path: %s\n"
                                      % htpasswd(os.path.join(T.tmp, "h"), "AWS", ECR_TOKEN))
SERVER_KEY, SERVER_SECRET = "AKIDSERVERNOTVALID", "serverSecretNotValid+0"
WRONG = "wrongSecretValue/123+abc"


def put(name, text):
    p = os.path.join(T.tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o600)
    return p


good = put("acme-aws", "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
           % (key["AccessKeyId"], key["SecretAccessKey"]))
bad = put("bad-aws", "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
          % (key["AccessKeyId"], WRONG))
TOKENS = {"acme": "acme-token-0123456789", "badsig": "badsig-token-0123456789",
          "noaws": "noaws-token-0123456789"}
role_cfg = {"role_arn": role, "external_id": "acme-ext-1", "session_name": "kiln-acme",
            "duration": 900, "sts_endpoint": proxy.url}
config = {
    "policy": {"allow_addresses": ["127.0.0.0/8"]},
    "tenants": [
        {"name": "acme", "tokens": [TOKENS["acme"]],
         "credentials": {"aws": dict(role_cfg, credentials_file=good),
                         "registry": {"hosts": {REG: {"helper": "ecr-login"}}}}},
        {"name": "badsig", "tokens": [TOKENS["badsig"]],
         "credentials": {"aws": dict(role_cfg, credentials_file=bad)}},
        {"name": "noaws", "tokens": [TOKENS["noaws"]],
         "credentials": {"registry": {"hosts": {REG: {"helper": "ecr-login"}}}}},
    ],
}
env = {"AWS_ACCESS_KEY_ID": SERVER_KEY, "AWS_SECRET_ACCESS_KEY": SERVER_SECRET,
       "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": proxy.url,
       "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1", "HOME": T.tmp}
root = os.path.join(T.tmp, "root")
srv = Server(root, workers=1, config=config, env=env,
             extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root"),
                    "--build-option=--insecure-registry=" + REG]).start()
CONTEXT = tar_gz({"Dockerfile": b"FROM scratch\nCOPY index.html /index.html\n",
                  "index.html": b"acme-site-via-role\n"})


def build(tenant, dest):
    st, r = srv.request("POST", "/v1/contexts", body=CONTEXT, token=TOKENS[tenant])
    if st != 201:
        return {"submit": (st, r)}, ""
    out = ({"type": "s3", "dest": dest} if dest.startswith("s3://") else
           {"type": "registry", "name": dest})
    st, r = srv.request("POST", "/v1/builds", {"source": {"context": r["context"]},
                                               "outputs": [out]}, token=TOKENS[tenant])
    if st != 202:
        return {"submit": (st, r)}, ""
    bid = r["id"]
    st, log, _ = srv.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True,
                             token=TOKENS[tenant], timeout=300)
    end = time.time() + 60
    b = {}
    while time.time() < end:
        st, b = srv.request("GET", "/v1/builds/" + bid, token=TOKENS[tenant])
        if b.get("status") in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    return b, log.decode(errors="replace")


def signed(r):
    a = r["headers"].get("authorization", "")
    return a.split("Credential=")[1].split("/")[0] if "Credential=" in a else None


# --- acme: the role, assumed with acme's file, signs the upload ---
b, log = build("acme", "s3://tenants/acme/www")
T.check("acme's build (S3 upload as the assumed role) succeeded", b.get("status") == "succeeded",
        (b, log[-2000:]))
reqs = proxy.requests()
sts = [r for r in reqs if "/sts/aws4_request" in r["headers"].get("authorization", "")]
T.check("the server called STS once, signed with the tenant file's key (moto checked it)",
        len(sts) == 1 and signed(sts[0]) == key["AccessKeyId"] and sts[0]["status"] == 200,
        [(r["path"], signed(r), r["status"]) for r in reqs])
puts = [r for r in reqs if r["method"] == "PUT"]
T.check("the upload is signed with the role's temporary key and session token",
        puts and all((signed(r) or "").startswith("ASIA") and r["headers"].get(
            "x-amz-security-token") for r in puts) and all(r["status"] == 200 for r in puts),
        [(r["path"], signed(r), r["status"]) for r in puts])
T.check("neither the tenant file's key nor the server's signed anything but the STS call",
        {signed(r) for r in reqs if r not in sts} & {key["AccessKeyId"], SERVER_KEY} == set(),
        {signed(r) for r in reqs})
try:
    body = s3.get_object(Bucket="tenants", Key="acme/www/index.html")["Body"].read()
except Exception as e:  # noqa: BLE001
    body = repr(e).encode()
T.check("the object is in the bucket", body == b"acme-site-via-role\n", body)

# --- a wrong secret: STS refuses the signature; the build fails, naming the role ---
proxy.clear()
b, log = build("badsig", "s3://tenants/acme/bad")
T.check("a wrong secret fails the build with reason credentials",
        b.get("status") == "failed" and b.get("reason") == "credentials", b)
# (moto wraps its error in <ErrorResponse><Errors>, which is not AWS STS's envelope: its code
# may not be read, the status is)
T.check("... with STS's answer (403), naming the tenant and role",
        "tenant 'badsig'.credentials.aws.role_arn: sts AssumeRole %s: HTTP 403" % role
        in str(b.get("error")), b)
T.check("... and no secret in the record, the log or the server's log",
        not any(s in json.dumps(b) + log + srv.server_log()
                for s in (WRONG, key["SecretAccessKey"], SERVER_SECRET)), "")
T.check("... and nothing was uploaded", not [r for r in proxy.requests() if r["method"] == "PUT"],
        proxy.requests())

# --- a tenant without AWS credentials: no upload, never the server's key ---
proxy.clear()
b, log = build("noaws", "s3://tenants/noaws/www")
T.check("a tenant without AWS credentials cannot upload",
        b.get("status") == "failed" and "no AWS credentials" in log, (b, log[-1500:]))
T.check("... and the server's key signed nothing", SERVER_KEY not in
        {signed(r) for r in proxy.requests()}, proxy.requests())
# --- ECR-style login through the ecr-login helper, with the tenant's role ---
proxy.clear()
b, log = build("acme", REG + "/acme/app:1")
ecr = [r for r in proxy.requests() if "GetAuthorizationToken" in r["headers"].get("x-amz-target", "")]
T.check("acme pushes to the ECR-login registry", b.get("status") == "succeeded", (b, log[-2000:]))
T.check("... the token asked for with acme's role (temporary key, moto checked the signature)",
        ecr and all((signed(r) or "").startswith("ASIA") and r["status"] == 200 for r in ecr),
        [(r["path"], signed(r), r["status"]) for r in proxy.requests()])
proxy.clear()
b, log = build("noaws", REG + "/noaws/app:1")
T.check("a tenant with ecr-login but no AWS credentials cannot push there",
        b.get("status") == "failed" and "no AWS credentials" in log, (b, log[-1500:]))
T.check("... and asked for no token with the server's key",
        SERVER_KEY not in {signed(r) for r in proxy.requests()}, proxy.requests())

leak = []
for d, _, files in os.walk(root):
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            data = fh.read()
        leak += [os.path.join(d, f) for s in (key["SecretAccessKey"], WRONG) if s.encode() in data]
T.check("no secret under the server's root (kiln.db, logs, secrets gone)", leak == [], leak)
srv.term()
moto.stop()
T.done()
