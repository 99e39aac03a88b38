"""Registry auth and TLS against real docker-registry instances: htpasswd Basic
(kiln login, wrong password, credential helpers), TLS with a CA made by openssl
(--registry-ca, certs dir, --insecure-registry), and Bearer tokens from a token
issuer whose JWTs the registry verifies (caching, expired token). Secrets never
appear in kiln's output."""
import base64
import json
import os
import subprocess
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln, start_registry  # noqa: E402
from registry_fixtures import htpasswd, make_ca, make_client_cert, make_layout  # noqa: E402
from tokenissuer import TokenIssuer  # noqa: E402

os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_RETRIES": "1",
                   "KILN_REGISTRY_BACKOFF_MS": "50"})
root = os.path.join(T.tmp, "store")
L = os.path.join(T.tmp, "L")
desc = make_layout(L, "v1", [{"etc/hello": b"hello\n"}, {"etc/two": b"two\n"}])
SECRET = "s3cret-Pa55word-never-printed"
outputs = []


def k(*args, env=None, input=None):
    p = kiln(args[0], "--root", root, *args[1:], env=env, input=input)
    outputs.append(p.stdout + p.stderr)
    return p


def docker_env(name):
    d = os.path.join(T.tmp, name)
    os.makedirs(d, exist_ok=True)
    return {"DOCKER_CONFIG": d}


# --- Basic auth (htpasswd) ---
hp = htpasswd(T.tmp, "alice", SECRET)
A = start_registry("auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n" % hp)
a = "127.0.0.1:%d" % A
env = docker_env("basic")
p = k("push", "--insecure-registry", a, "oci:%s:v1" % L, "%s/t/app:v1" % a, env=env)
T.check("push without credentials fails and says to log in",
        p.returncode != 0 and "kiln login" in p.stderr, p.stderr)
p = k("login", "--insecure-registry", a, a, "-u", "alice", "--password-stdin",
      input="wrong-" + SECRET + "\n", env=env)
T.check("login with a wrong password fails with 401",
        p.returncode != 0 and "401" in p.stderr, p.stderr)
T.check("a failed login saves nothing", not os.path.exists(os.path.join(env["DOCKER_CONFIG"], "config.json")))
p = k("login", "--insecure-registry", a, a, "-u", "alice", "--password-stdin", input=SECRET + "\n",
      env=env)
cfgp = os.path.join(env["DOCKER_CONFIG"], "config.json")
ok = p.returncode == 0 and os.path.exists(cfgp)
if ok:
    auth = json.load(open(cfgp))["auths"][a]["auth"]
    ok = base64.b64decode(auth).decode() == "alice:" + SECRET and \
        stat.S_IMODE(os.stat(cfgp).st_mode) == 0o600
T.check("login writes config.json like docker login (mode 0600)", ok, p.stderr)
p = k("push", "--insecure-registry", a, "oci:%s:v1" % L, "%s/t/app:v1" % a, env=env)
T.check("push with saved Basic credentials", p.returncode == 0 and p.stdout.strip() == desc["digest"],
        p.stderr)
p = k("pull", "--insecure-registry", a, "%s/t/app:v1" % a, env=env)
T.check("pull with saved Basic credentials", p.returncode == 0, p.stderr)

p = kiln("logout", a, env=env)
T.check("logout removes the saved credentials", p.returncode == 0 and
        a not in json.load(open(cfgp)).get("auths", {}), p.stderr)
p = k("login", "--insecure-registry", a, a, "-u", "alice", "--password-stdin", input=SECRET, env=env)

# a credential helper (credHelpers → docker-credential-kilntest get)
bindir = os.path.join(T.tmp, "bin")
os.makedirs(bindir)
helper = os.path.join(bindir, "docker-credential-kilntest")
with open(helper, "w") as f:
    f.write("#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = \"%s\" ] && "
            "printf '{\"Username\":\"alice\",\"Secret\":\"%s\"}' && exit 0\n"
            "echo 'credentials not found' ; exit 1\n" % (a, SECRET))
os.chmod(helper, 0o755)
env2 = docker_env("helper")
json.dump({"credHelpers": {a: "kilntest"}}, open(os.path.join(env2["DOCKER_CONFIG"], "config.json"), "w"))
env2["PATH"] = bindir + ":" + os.environ["PATH"]
p = k("pull", "--insecure-registry", a, "%s/t/app:v1" % a, env=env2)
T.check("credentials from a credHelpers helper", p.returncode == 0, p.stderr)
env3 = docker_env("badauth")
json.dump({"auths": {a: {"auth": base64.b64encode(("alice:bad-" + SECRET).encode()).decode()}}},
          open(os.path.join(env3["DOCKER_CONFIG"], "config.json"), "w"))
p = k("pull", "--insecure-registry", a, "%s/t/app:v1" % a, env=env3)
T.check("a rejected password gives a clear 401 error", p.returncode != 0 and "401" in p.stderr,
        p.stderr)

# --- TLS with a CA made here ---
cad = os.path.join(T.tmp, "ca")
os.makedirs(cad)
ca, crt, key = make_ca(cad)
B = start_registry(tls=(crt, key))
b = "127.0.0.1:%d" % B
p = k("push", "oci:%s:v1" % L, "%s/t/app:v1" % b)
T.check("TLS without the CA fails verification",
        p.returncode != 0 and ("certificate" in p.stderr.lower() or "SSL" in p.stderr), p.stderr)
p = k("push", "--registry-ca", ca, "oci:%s:v1" % L, "%s/t/app:v1" % b)
T.check("TLS with --registry-ca", p.returncode == 0, p.stderr)
certs = os.path.join(T.tmp, "certs.d")
os.makedirs(os.path.join(certs, b))
with open(os.path.join(certs, b, "ca.crt"), "w") as f:
    f.write(open(ca).read())
p = k("pull", "%s/t/app:v1" % b, env={"KILN_CERTS_DIR": certs})
T.check("TLS with the CA from certs.d/HOST:PORT/ca.crt", p.returncode == 0, p.stderr)
p = k("pull", "--insecure-registry", b, "%s/t/app:v1" % b)
T.check("--insecure-registry accepts an unverified certificate", p.returncode == 0, p.stderr)
# a CA that cannot be used fails naming the file (it was skipped, and the handshake only
# said that the registry's certificate did not verify); the file's content is never shown
missing = os.path.join(T.tmp, "no-such-ca.pem")
p = k("push", "--registry-ca", missing, "oci:%s:v1" % L, "%s/t/app:v1" % b)
T.check("--registry-ca naming a missing file fails naming it",
        p.returncode != 0 and missing in p.stderr and "No such file" in p.stderr, p.stderr)
notpem = os.path.join(T.tmp, "notpem-ca.pem")
with open(notpem, "w") as f:
    f.write("SECRET-MARKER-in-a-ca-file\n")
p = k("push", "--registry-ca", notpem, "oci:%s:v1" % L, "%s/t/app:v1" % b)
T.check("--registry-ca naming a non-PEM file fails naming it, its content not shown",
        p.returncode != 0 and notpem in p.stderr and "no PEM certificate" in p.stderr
        and "SECRET-MARKER" not in p.stderr, p.stderr)
p = k("push", "--registry-ca", "/dev/null", "oci:%s:v1" % L, "%s/t/app:v1" % b)
T.check("--registry-ca naming a device fails: not a regular file",
        p.returncode != 0 and "/dev/null" in p.stderr and "not a regular file" in p.stderr,
        p.stderr)
good_ca = os.path.join(certs, b, "ca.crt")
os.rename(good_ca, good_ca + ".good")
with open(good_ca, "w") as f:
    f.write("not a certificate\n")
p = k("pull", "%s/t/app:v1" % b, env={"KILN_CERTS_DIR": certs})
T.check("a non-PEM certs.d/HOST/ca.crt fails naming it",
        p.returncode != 0 and good_ca in p.stderr and "no PEM certificate" in p.stderr, p.stderr)
os.replace(good_ca + ".good", good_ca)

# mutual TLS: the registry asks for a client certificate signed by the CA
import shutil  # noqa: E402
ccrt, ckey = make_client_cert(cad, ca)
M = start_registry("    clientcas:\n      - %s\n" % ca, tls=(crt, key))
mh = "127.0.0.1:%d" % M
p = k("push", "--registry-ca", ca, "oci:%s:v1" % L, "%s/t/app:v1" % mh)
T.check("mutual TLS without a client certificate is refused", p.returncode != 0, p.stderr)
os.makedirs(os.path.join(certs, mh))
shutil.copy(ca, os.path.join(certs, mh, "ca.crt"))
shutil.copy(ccrt, os.path.join(certs, mh, "client.cert"))
shutil.copy(ckey, os.path.join(certs, mh, "client.key"))
p = k("push", "oci:%s:v1" % L, "%s/t/app:v1" % mh, env={"KILN_CERTS_DIR": certs})
T.check("mutual TLS with client.cert/client.key from certs.d", p.returncode == 0, p.stderr)
# hostile certs.d entries: a FIFO is never opened blocking (it hung the handshake), a bad
# pair fails naming the certificate problem; neither falls back to another identity
cpath = os.path.join(certs, mh, "client.cert")
os.rename(cpath, cpath + ".good")
os.mkfifo(cpath)
try:
    p = kiln("push", "--root", root, "oci:%s:v1" % L, "%s/t/app:v1" % mh,
             env={"KILN_CERTS_DIR": certs}, timeout=120)
    T.check("mutual TLS: a FIFO as client.cert is not read (no hang), no certificate is sent",
            p.returncode != 0, p.stderr)
except subprocess.TimeoutExpired:
    T.check("mutual TLS: a FIFO as client.cert is not read (no hang), no certificate is sent",
            False, "kiln hung on the FIFO")
os.unlink(cpath)
with open(cpath, "w") as f:
    f.write("not a certificate\n")
p = k("push", "oci:%s:v1" % L, "%s/t/app:v1" % mh, env={"KILN_CERTS_DIR": certs})
T.check("mutual TLS: a client.cert that is not PEM fails naming the certificate problem",
        p.returncode != 0 and "certificate" in p.stderr.lower(), p.stderr)
os.replace(cpath + ".good", cpath)
p = k("push", "oci:%s:v1" % L, "%s/t/app:v1" % mh, env={"KILN_CERTS_DIR": certs})
T.check("mutual TLS works again with the pair restored", p.returncode == 0, p.stderr)

# --- Bearer tokens ---
iss = TokenIssuer(T.tmp, users={"bob": SECRET})
C = start_registry(iss.registry_config())
c = "127.0.0.1:%d" % C
env4 = docker_env("token")
p = k("pull", "--insecure-registry", c, "%s/t/app:v1" % c, env=env4)
T.check("anonymous token request refused: clear error",
        p.returncode != 0 and "token server answered 401" in p.stderr, p.stderr)
p = k("login", "--insecure-registry", c, c, "-u", "bob", "--password-stdin", input=SECRET, env=env4)
T.check("login through the token server", p.returncode == 0, p.stderr)
before = iss.requests
p = k("push", "--insecure-registry", c, "oci:%s:v1" % L, "%s/t/app:v1" % c, "%s/t/app:v2" % c,
      env=env4)
T.check("push with Bearer tokens", p.returncode == 0 and p.stdout.strip() == desc["digest"], p.stderr)
T.check("tokens are cached (not one per request)", 0 < iss.requests - before <= 4,
        "token requests: %d" % (iss.requests - before))
p = k("pull", "--insecure-registry", c, "-o", "type=local,dest=%s" % os.path.join(T.tmp, "r"),
      "%s/t/app:v2" % c, env=env4)
T.check("pull with Bearer tokens", p.returncode == 0 and
        os.path.exists(os.path.join(T.tmp, "r", "etc", "two")), p.stderr)
iss.refresh_tokens["refresh-" + SECRET] = "bob"
env5 = docker_env("identitytoken")
json.dump({"auths": {c: {"identitytoken": "refresh-" + SECRET}}},
          open(os.path.join(env5["DOCKER_CONFIG"], "config.json"), "w"))
p = k("pull", "--insecure-registry", c, "%s/t/app:v1" % c, env=env5)
T.check("an identity token is exchanged with the refresh-token grant",
        p.returncode == 0 and iss.posts == 1, p.stderr)
iss.expired = True
p = k("pull", "--insecure-registry", c, "%s/t/app:v1" % c, env=env4)
T.check("an expired token fails with a clear 401 after one refresh",
        p.returncode != 0 and "401" in p.stderr, p.stderr)
iss.expired = False

T.check("no secret in any output", all(SECRET not in o for o in outputs),
        [o for o in outputs if SECRET in o][:1])
iss.close()
T.done()
