"""Lazy blobs of a base on a TLS registry (oci/store_lazy, engine/remote_lazy,
oci/registry_settings): a docker-registry on loopback serving TLS with a certificate of a CA
made here by openssl, which no system store trusts.

- a build FROM that registry's image with no RUN (the base's layers are never needed, so they
  stay lazy: no blob in the store, a record under <root>/lazy) given the CA by
  `--registry-config` {"ca": CA} (kiln build has no --registry-ca): each record names the CA by
  its absolute path (a relative "ca" made absolute against the working directory, where the
  build itself found it); a later `kiln push` of the image to a plain-HTTP registry, given no CA,
  fetches the layers through the recorded CA and pushes them; pulled back, every layer's bytes
  match its digest
- the same with the CA in a per-host certs dir ($KILN_CERTS_DIR/HOST:PORT/ca.crt) instead: the
  record keeps the dir (`certs`), and a later `kiln save` without $KILN_CERTS_DIR fetches the
  layers through it
- hostile: the CA file removed, or replaced by another CA, after recording; a record whose `ca`
  is edited to a relative path, to a non-PEM file (/etc/passwd, a file holding a marker,
  /dev/zero, a FIFO: not opened blocking, no hang), or to a CA that did not sign the server's
  certificate: `kiln save` fails naming the registry and the TLS problem (or the settings),
  writes no archive, keeps no blob of the layers and nothing
  in the store's tmp; the content of the file the record names never appears in kiln's output;
  the fetch never falls back to an unverified connection (which would succeed)"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import new_context  # noqa: E402
from kilntest import KILN, T, kiln, start_registry  # noqa: E402
from registry_fixtures import make_ca, make_layout  # noqa: E402

os.chmod(T.tmp, 0o711)
# no proxy, few retries; no CA, certs dir or registries config of the host's taken by accident
for v in ("KILN_CERTS_DIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"):
    os.environ.pop(v, None)
os.environ.update({"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "KILN_REGISTRY_RETRIES": "1",
                   "KILN_REGISTRY_BACKOFF_MS": "50",
                   "KILN_REGISTRIES_CONFIG": os.path.join(T.tmp, "no-registries.json"),
                   "DOCKER_CONFIG": os.path.join(T.tmp, "docker")})

with open(os.environ["KILN_REGISTRIES_CONFIG"], "w") as f:
    f.write("{}")
CAD = os.path.join(T.tmp, "ca")
os.makedirs(CAD)
CA, CRT, KEY = make_ca(CAD)
OTHER_D = os.path.join(T.tmp, "other-ca")
os.makedirs(OTHER_D)
OTHER_CA = make_ca(OTHER_D)[0]
TLS = "127.0.0.1:%d" % start_registry(tls=(CRT, KEY))
PLAIN = "127.0.0.1:%d" % start_registry()

L = os.path.join(T.tmp, "layout")
desc = make_layout(L, "1", [{"etc/one": os.urandom(150000)}, {"etc/two": os.urandom(90000)}])
with open(os.path.join(L, "blobs", "sha256", desc["digest"][7:])) as f:
    LAYERS = [ld["digest"][7:] for ld in json.load(f)["layers"]]
p = kiln("push", "--root", os.path.join(T.tmp, "root-push"), "--registry-ca", CA,
         "oci:%s:1" % L, TLS + "/t/base:1")
T.check("a base image pushed to the TLS registry with --registry-ca",
        p.returncode == 0 and p.stdout.strip() == desc["digest"], p.stderr[-1500:])
BASE = "%s/t/base@%s" % (TLS, desc["digest"])
DF = "FROM %s\nENV LAZY=1\nLABEL tls=lazy\n" % BASE


def ca_config(name, ca):
    """A --registry-config file naming ca (kiln build has no --registry-ca: the config's "ca"
    is how a build is given an extra CA)."""
    path = os.path.join(T.tmp, name + ".json")
    with open(path, "w") as f:
        json.dump({"ca": ca}, f)
    return path


def out(r):
    return r.stdout + r.stderr


def build(root, tag, *args, env=None, cwd=None):
    argv = [KILN, "build", "--root", os.path.join(T.tmp, root), "--progress", "plain", *args,
            "-t", tag, new_context(T.tmp, DF)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=cwd,
                          env=dict(os.environ, **(env or {})))


def records(root):
    """{layer hex: parsed lazy record} of the base's layers under root."""
    recs = {}
    for h in LAYERS:
        try:
            with open(os.path.join(T.tmp, root, "lazy", h)) as f:
                recs[h] = json.load(f)
        except (OSError, ValueError):
            pass
    return recs


def fetched(root):
    """The base's layers whose bytes are in root's store."""
    return [h for h in LAYERS if os.path.exists(os.path.join(T.tmp, root, "blobs", "sha256", h))]


def is_lazy(r, root, **registry):
    """The build succeeded, every base layer is a lazy record of the TLS registry's image
    whose settings are exactly registry, and none of their bytes is in the store."""
    recs = records(root)
    return (r.returncode == 0 and sorted(recs) == sorted(LAYERS) and not fetched(root)
            and all(j.get("source") == "registry " + BASE and j.get("registry") == registry
                    for j in recs.values()))


def stored_ok(root):
    """Every base layer is in root's store with bytes matching its digest."""
    for h in LAYERS:
        try:
            with open(os.path.join(T.tmp, root, "blobs", "sha256", h), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != h:
                    return False
        except OSError:
            return False
    return True


# 1. a CA by the registries config: the records name it, absolute
r = build("rootA", "tls:a", "--registry-config", ca_config("cfg-abs", CA))
T.check("FROM the TLS registry with --registry-config {\"ca\": CA}, no RUN: the base's layers "
        "stay lazy, each record naming the CA by its path", is_lazy(r, "rootA", ca=CA),
        out(r)[-1500:] + str(records("rootA")) + str(fetched("rootA")))
r = build("rootR", "tls:r", "--registry-config", ca_config("cfg-rel", "ca.pem"), cwd=CAD)
T.check("a relative \"ca\" (found from the working directory) is recorded as the absolute "
        "path it named",
        is_lazy(r, "rootR", ca=os.path.join(CAD, "ca.pem")), out(r)[-1500:] + str(records("rootR")))

# 2. a later command given no CA: the layers come through the recorded one
pu = kiln("push", "--root", os.path.join(T.tmp, "rootA"), "--insecure-registry", PLAIN, "tls:a",
          PLAIN + "/t/out:1", timeout=600)
lay = os.path.join(T.tmp, "pulled")
pl = kiln("pull", "--root", os.path.join(T.tmp, "root-pull"), "--insecure-registry", PLAIN,
          "-o", "type=oci,dest=" + lay, PLAIN + "/t/out:1", timeout=600)
ok = pu.returncode == 0 and pl.returncode == 0 and stored_ok("rootA")
if ok:
    with open(os.path.join(lay, "index.json")) as f:
        man_hex = json.load(f)["manifests"][0]["digest"][7:]
    with open(os.path.join(lay, "blobs", "sha256", man_hex)) as f:
        got = [ld["digest"][7:] for ld in json.load(f)["layers"]]
    blobs = {}
    for h in got:
        with open(os.path.join(lay, "blobs", "sha256", h), "rb") as f:
            blobs[h] = hashlib.sha256(f.read()).hexdigest()
    ok = got[:len(LAYERS)] == LAYERS and all(k == v for k, v in blobs.items())
T.check("kiln push of the lazy image to a plain-HTTP registry, given no CA: the layers fetched "
        "through the recorded CA, pushed; pulled back, each layer's bytes match its digest",
        ok, out(pu)[-1200:] + out(pl)[-600:])

# 3. a per-host certs dir ($KILN_CERTS_DIR: the one way kiln takes a non-default dir)
CERTS = os.path.join(T.tmp, "certs.d")
os.makedirs(os.path.join(CERTS, TLS))
shutil.copy(CA, os.path.join(CERTS, TLS, "ca.crt"))
r = build("rootC", "tls:c", env={"KILN_CERTS_DIR": CERTS})
T.check("FROM the TLS registry with the CA in $KILN_CERTS_DIR/HOST:PORT/ca.crt: the layers stay "
        "lazy, each record naming the certs dir", is_lazy(r, "rootC", certs=CERTS),
        out(r)[-1500:] + str(records("rootC")))
tar = os.path.join(T.tmp, "c.tar")
sv = kiln("save", "--root", os.path.join(T.tmp, "rootC"), "-o", tar, "tls:c", timeout=600)
T.check("kiln save without $KILN_CERTS_DIR fetches the layers through the recorded certs dir",
        sv.returncode == 0 and os.path.getsize(tar) > 240000 and stored_ok("rootC"),
        sv.stderr[-1500:])

# 4. hostile: the CA gone or changed after recording, records edited
r = build("rootH", "tls:h", "--registry-config", ca_config("cfg-abs", CA))
T.check("a third lazy image for the hostile cases", is_lazy(r, "rootH", ca=CA), out(r)[-1500:])
ORIG = {h: open(os.path.join(T.tmp, "rootH", "lazy", h)).read() for h in LAYERS}
MARK = "CA-FILE-CONTENT-" + os.urandom(6).hex()
NOT_PEM = os.path.join(T.tmp, "not-a-ca.pem")
with open(NOT_PEM, "w") as f:
    f.write("%s\n-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % (MARK, MARK))
with open("/etc/passwd") as f:
    PASSWD = [ln for ln in f.read().splitlines() if ln.strip()]
OTHER_AT = os.path.join(T.tmp, "other.pem")
shutil.copy(OTHER_CA, OTHER_AT)
TLS_WORDS = ("certificate", "SSL", "TLS")


def set_ca(ca):
    for h in LAYERS:
        j = json.loads(ORIG[h])
        j["registry"]["ca"] = ca
        with open(os.path.join(T.tmp, "rootH", "lazy", h), "w") as f:
            json.dump(j, f)


def save_fails(name, says, leaked=()):
    """kiln save of the hostile image fails naming the blob and says (any of), writes no
    archive, keeps no layer and nothing in the store's tmp, and prints none of leaked."""
    htar = os.path.join(T.tmp, "h.tar")
    try:
        sv = kiln("save", "--root", os.path.join(T.tmp, "rootH"), "-o", htar, "tls:h", timeout=120)
    except subprocess.TimeoutExpired:  # killed by subprocess.run
        sv = subprocess.CompletedProcess([], 0, "", "kiln save hung (killed after 120 s)")
    tmp = glob.glob(os.path.join(T.tmp, "rootH", "tmp", "*"))
    o = out(sv)
    T.diag(sv.stderr.strip().splitlines()[-1][:600] if sv.stderr.strip() else "(no stderr)")
    T.check(name, sv.returncode != 0 and "sha256:" in sv.stderr and any(w in o for w in says)
            and not os.path.exists(htar) and not fetched("rootH") and not tmp
            and not any(x in o for x in leaked),
            o[-1500:] + " fetched=%s tmp=%s" % (fetched("rootH"), tmp))
    return o


os.rename(CA, CA + ".away")
o = save_fails("the recorded CA file removed: kiln save fails naming the registry and the TLS "
               "verification, nothing written", TLS_WORDS)
T.check("... and names the registry", TLS in o, o[-800:])
T.check("... and names the missing CA file", CA in o and "No such file" in o, o[-800:])
shutil.copy(OTHER_CA, CA)
o = save_fails("the recorded CA file replaced by another CA: kiln save fails verifying the "
               "registry's certificate, nothing written", TLS_WORDS)
T.check("... and names the registry", TLS in o, o[-800:])
os.remove(CA)
os.rename(CA + ".away", CA)
set_ca("ca.pem")
save_fails("a record whose CA is a relative path: refused naming the settings, nothing written",
           ("absolute path",))
set_ca(NOT_PEM)
o = save_fails("a record whose CA is a non-PEM file holding a marker: fails, the file's "
               "content never in kiln's output", TLS_WORDS, leaked=(MARK,))
T.check("... and names the file, holding no PEM certificate",
        NOT_PEM in o and "no PEM certificate" in o, o[-800:])
set_ca("/etc/passwd")
save_fails("a record whose CA is /etc/passwd: fails, no line of the file in kiln's output",
           TLS_WORDS, leaked=[ln for ln in PASSWD if len(ln) > 12])
set_ca("/dev/zero")
o = save_fails("a record whose CA is /dev/zero: fails on TLS verification (not read: not a "
               "regular file)", TLS_WORDS)
T.check("... and says it is not a regular file", "/dev/zero" in o and "not a regular file" in o,
        o[-800:])
FIFO = os.path.join(T.tmp, "ca.fifo")
os.mkfifo(FIFO)
set_ca(FIFO)
# kiln opened it blocking before (no writer ever comes): the save hung in the handshake
save_fails("a record whose CA is a FIFO: fails on TLS verification, does not hang", TLS_WORDS)
set_ca(OTHER_AT)
save_fails("a record whose CA did not sign the server's certificate: the fetch fails verifying "
           "it, never falls back to an unverified connection", TLS_WORDS)
for h in LAYERS:
    with open(os.path.join(T.tmp, "rootH", "lazy", h), "w") as f:
        f.write(ORIG[h])
tar = os.path.join(T.tmp, "h.tar")
sv = kiln("save", "--root", os.path.join(T.tmp, "rootH"), "-o", tar, "tls:h", timeout=600)
T.check("the records and the CA as recorded: kiln save fetches the layers and writes the archive",
        sv.returncode == 0 and os.path.getsize(tar) > 240000 and stored_ok("rootH"),
        sv.stderr[-1500:])
T.done()
