"""ECR authentication: a GetAuthorizationToken endpoint in the suite (it checks
the JSON 1.1 protocol and the SigV4 scope) and the real docker-registry with
htpasswd auth matching the token. `kiln push` gets its Basic credentials from
kiln's built-in "ecr-login" helper selected by a config.json credHelpers entry;
tokens are cached within a run; CreateRepository (`kiln ecr create-repository`
and --ecr-create-repository on push, copy and build); errors name the ECR code
and never print the token."""
import base64
import http.server
import json
import os
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln, start_registry  # noqa: E402
from registry_fixtures import htpasswd, make_layout  # noqa: E402

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_RETRIES": "1",
                   "KILN_REGISTRY_BACKOFF_MS": "50"})
PASSWORD = "ecr-" + secrets.token_hex(24)
TARGET = "AmazonEC2ContainerRegistry_V20150921."


class Ecr:
    """GetAuthorizationToken / CreateRepository on 127.0.0.1."""

    def __init__(self):
        self.calls = []
        self.repos = set()
        self.deny = False
        self.deny_create = False
        ecr = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                req = json.loads(self.rfile.read(n) or b"{}")
                target = self.headers.get("X-Amz-Target", "")
                auth = self.headers.get("Authorization", "")
                ecr.calls.append((target, req, auth, self.headers.get("Content-Type")))
                if self.headers.get("Content-Type") != "application/x-amz-json-1.1" or \
                        "/ecr/aws4_request" not in auth or "Credential=AKIDECRTEST/" not in auth:
                    return self.reply(400, {"__type": "InvalidSignatureException",
                                            "message": "bad protocol or signature scope"})
                if ecr.deny:
                    return self.reply(400, {"__type": "AccessDeniedException",
                                            "message": "User is not authorized to perform "
                                                       "ecr:GetAuthorizationToken"})
                if target == TARGET + "GetAuthorizationToken":
                    tok = base64.b64encode(("AWS:" + PASSWORD).encode()).decode()
                    return self.reply(200, {"authorizationData": [{
                        "authorizationToken": tok, "expiresAt": time.time() + 43200,
                        "proxyEndpoint": "https://example.test"}]})
                if target == TARGET + "CreateRepository":
                    if ecr.deny_create:
                        return self.reply(400, {"__type": "AccessDeniedException",
                                                "message": "not authorized to perform "
                                                           "ecr:CreateRepository"})
                    name = req.get("repositoryName")
                    if name in ecr.repos:
                        return self.reply(400, {"__type": "RepositoryAlreadyExistsException",
                                                "message": "The repository already exists"})
                    ecr.repos.add(name)
                    return self.reply(200, {"repository": {"repositoryName": name}})
                return self.reply(400, {"__type": "UnknownOperationException"})

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def token_calls(self):
        return [c for c in self.calls if c[0] == TARGET + "GetAuthorizationToken"]

    def actions(self):
        return [c[0][len(TARGET):] for c in self.calls]

    def create_calls(self):
        return [c for c in self.calls if c[0] == TARGET + "CreateRepository"]


def signed_for_ecr(auth):
    """A SigV4 Authorization header with the test key, scoped to ecr in eu-west-1."""
    return (auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDECRTEST/") and
            "/eu-west-1/ecr/aws4_request" in auth and "SignedHeaders=" in auth and
            "x-amz-target" in auth and "Signature=" in auth)


def check_create_on_build(k, ecr, reg, root):
    """kiln build: --ecr-create-repository with --push, and the output key."""
    ctx = os.path.join(T.tmp, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY hello /hello\n")
    with open(os.path.join(ctx, "hello"), "w") as f:
        f.write("hello from a build\n")
    common = ("build", "--root", root, "--progress", "plain", "--insecure-registry", reg)
    ecr.calls.clear()
    p = k(*common, "--ecr-create-repository", "--push", "-t", "%s/acme/built:v1" % reg,
          "--cache-to", "type=registry,ref=%s/acme/cache:c1" % reg, ctx)
    cc = ecr.create_calls()
    T.check("build --ecr-create-repository --push: repository created before the push",
            p.returncode == 0 and [c[1] for c in cc] == [{"repositoryName": "acme/cache"},
                                                         {"repositoryName": "acme/built"}] and
            all(signed_for_ecr(c[2]) for c in cc) and ecr.actions()[0] == "CreateRepository",
            (ecr.actions(), p.stderr[-2000:]))
    T.check("... the --cache-to repository too, before the build exports its cache",
            "acme/cache" in ecr.repos and
            ecr.actions().index("CreateRepository") < ecr.actions().index("GetAuthorizationToken"),
            ecr.actions())
    p = k("pull", "--root", root, "--insecure-registry", reg, "%s/acme/built:v1" % reg)
    T.check("... and the built image pulls back", p.returncode == 0, p.stderr)

    ecr.calls.clear()
    p = k(*common, "-o", "type=registry,name=%s/acme/outkey:v1,ecr-create-repository=true" % reg,
          ctx)
    cc = ecr.create_calls()
    T.check("build -o type=registry,...,ecr-create-repository=true creates the repository",
            p.returncode == 0 and len(cc) == 1 and cc[0][1]["repositoryName"] == "acme/outkey",
            (ecr.actions(), p.stderr[-2000:]))
    ecr.calls.clear()
    p = k(*common, "-o", "type=registry,name=%s/acme/other:v1" % reg, ctx)
    T.check("without the flag or key, no CreateRepository", p.returncode == 0 and
            ecr.create_calls() == [], (ecr.actions(), p.stderr[-2000:]))
    p = k(*common, "-o", "type=registry,name=%s/acme/x:v1,ecr-create-repository=maybe" % reg, ctx)
    T.check("a bad ecr-create-repository value is an error naming the key",
            p.returncode != 0 and "ecr-create-repository" in p.stderr, p.stderr[-2000:])


def check_create_on_push(k, ecr, reg, root, layout, desc):
    """--ecr-create-repository: CreateRepository (signed) before the push, once
    per repository; an existing one is fine; a refusal stops the push."""
    src = "oci:%s:v1" % layout
    ecr.calls.clear()
    p = k("push", "--ecr-create-repository", "--root", root, "--insecure-registry", reg, src,
          "%s/acme/fresh:v1" % reg, "%s/acme/fresh:v2" % reg)
    cc = ecr.create_calls()
    T.check("push --ecr-create-repository: pushed both tags",
            p.returncode == 0 and p.stdout.strip() == desc["digest"], p.stderr)
    T.check("one CreateRepository for the repository, with its name, before the push",
            len(cc) == 1 and cc[0][1] == {"repositoryName": "acme/fresh"} and
            ecr.actions()[0] == "CreateRepository" and "acme/fresh" in ecr.repos and
            "created ECR repository acme/fresh" in p.stderr, (ecr.actions(), p.stderr))
    T.check("CreateRepository is JSON 1.1 signed with SigV4 for ecr",
            len(cc) == 1 and cc[0][3] == "application/x-amz-json-1.1" and signed_for_ecr(cc[0][2]),
            cc)
    p = k("pull", "--root", root, "--insecure-registry", reg, "%s/acme/fresh:v2" % reg)
    T.check("the pushed image pulls back", p.returncode == 0, p.stderr)

    ecr.calls.clear()
    p = k("push", "--ecr-create-repository", "--root", root, "--insecure-registry", reg, src,
          "%s/acme/fresh:v3" % reg)
    T.check("an existing repository (RepositoryAlreadyExistsException) is fine",
            p.returncode == 0 and len(ecr.create_calls()) == 1 and
            p.stdout.strip() == desc["digest"], (ecr.actions(), p.stderr))

    ecr.calls.clear()
    p = k("copy", "--ecr-create-repository", "--root", root, "--insecure-registry", reg, src,
          "docker://%s/acme/copied:v1" % reg)
    cc = ecr.create_calls()
    T.check("copy --ecr-create-repository creates the destination repository",
            p.returncode == 0 and len(cc) == 1 and cc[0][1]["repositoryName"] == "acme/copied" and
            signed_for_ecr(cc[0][2]), (ecr.actions(), p.stderr))
    p = k("copy", "--ecr-create-repository", src, "oci:%s/out" % T.tmp)
    T.check("copy --ecr-create-repository to a non-registry destination: usage error",
            p.returncode == 2 and "registry destination" in p.stderr, p.stderr)

    ecr.calls.clear()
    ecr.deny_create = True
    p = k("push", "--ecr-create-repository", "--root", root, "--insecure-registry", reg, src,
          "%s/acme/denied:v1" % reg)
    ecr.deny_create = False
    T.check("a refused CreateRepository fails the push, naming the code and the repository",
            p.returncode == 1 and "AccessDeniedException" in p.stderr and
            "acme/denied" in p.stderr and "GetAuthorizationToken" not in ecr.actions(),
            (ecr.actions(), p.stderr))
    p = k("pull", "--root", root, "--insecure-registry", reg, "%s/acme/denied:v1" % reg)
    T.check("... and nothing was pushed", p.returncode != 0, p.stdout)


def main():
    ecr = Ecr()
    hp = htpasswd(T.tmp, "AWS", PASSWORD)
    port = start_registry("auth:\n  htpasswd:\n    realm: ecr-realm\n    path: %s\n" % hp)
    reg = "127.0.0.1:%d" % port
    layout = os.path.join(T.tmp, "L")
    desc = make_layout(layout, "v1", [{"etc/hello": b"hello ecr\n"}])
    root = os.path.join(T.tmp, "store")
    cfgdir = os.path.join(T.tmp, "docker")
    os.makedirs(cfgdir)
    with open(os.path.join(cfgdir, "config.json"), "w") as f:
        json.dump({"credHelpers": {reg: "ecr-login"}}, f)
    env = {"AWS_ACCESS_KEY_ID": "AKIDECRTEST", "AWS_SECRET_ACCESS_KEY": "ecr-test-secret",
           "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_ECR": ecr.url,
           "AWS_EC2_METADATA_DISABLED": "true", "DOCKER_CONFIG": cfgdir, "HOME": T.tmp}
    outputs = []

    def k(*args, e=env):
        p = kiln(*args, env=e)
        outputs.append(p.stdout + p.stderr)
        return p

    p = k("ecr", "login", reg)
    T.check("kiln ecr login gets a token (user AWS, expiry)",
            p.returncode == 0 and "user AWS" in p.stdout and "valid until" in p.stdout, p.stderr)
    c = ecr.token_calls()
    T.check("GetAuthorizationToken over JSON 1.1, signed for ecr in the region",
            len(c) == 1 and c[0][3] == "application/x-amz-json-1.1" and
            "/eu-west-1/ecr/aws4_request" in c[0][2], c)

    before = len(ecr.token_calls())
    p = k("push", "--root", root, "--insecure-registry", reg, "oci:%s:v1" % layout,
          "%s/acme/app:v1" % reg)
    T.check("push through the ecr-login credential helper into htpasswd docker-registry",
            p.returncode == 0 and p.stdout.strip() == desc["digest"], p.stderr)
    T.check("one token request for the whole push (cached)",
            len(ecr.token_calls()) - before == 1, len(ecr.token_calls()) - before)
    p = k("pull", "--root", root, "--insecure-registry", reg, "%s/acme/app:v1" % reg)
    T.check("pull back with the same helper", p.returncode == 0, p.stderr)

    nocfg = dict(env, DOCKER_CONFIG=os.path.join(T.tmp, "empty"))
    os.makedirs(nocfg["DOCKER_CONFIG"])
    p = k("push", "--root", root, "--insecure-registry", reg, "oci:%s:v1" % layout,
          "%s/acme/app:v2" % reg, e=nocfg)
    T.check("without the credHelpers entry the registry refuses (401)", p.returncode != 0,
            p.stdout)

    ecr.deny = True
    p = k("ecr", "login", reg)
    T.check("an ECR error names the code and the host",
            p.returncode == 1 and "AccessDeniedException" in p.stderr and reg in p.stderr,
            p.stderr)
    ecr.deny = False

    p = k("ecr", "create-repository", "%s/acme/new" % reg)
    p2 = k("ecr", "create-repository", "%s/acme/new" % reg)
    T.check("create-repository creates, then reports it exists",
            p.returncode == 0 and "created" in p.stdout and p2.returncode == 0 and
            "already exists" in p2.stdout and ecr.repos == {"acme/new"}, (p.stderr, p2.stderr))

    check_create_on_push(k, ecr, reg, root, layout, desc)
    check_create_on_build(k, ecr, reg, root)

    ecr.calls.clear()
    p = k("push", "--ecr-create-repository", "--root", root, "--insecure-registry", reg,
          "oci:%s:v1" % layout, "%s/acme/app:v3" % reg, e=nocfg)
    T.check("a registry that is not ECR gets no CreateRepository (and a note)",
            ecr.create_calls() == [] and "not an ECR registry" in p.stderr, p.stderr)

    p = k("ecr", "login", reg, e=dict(env, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY=""))
    T.check("no AWS credentials: clear error", p.returncode == 1 and
            "no AWS credentials" in p.stderr, p.stderr)
    T.check("the token password never appears in kiln's output",
            not any(PASSWORD in o or "ecr-test-secret" in o for o in outputs))
    T.done()


main()
