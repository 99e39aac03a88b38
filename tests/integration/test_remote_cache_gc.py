"""`kiln cache gc` on an S3 remote cache (fauxqs): blobs no manifest names are deleted, never a
blob a manifest names, never a young one, only after two sightings a grace period apart.

- a cache id saved twice with new content: the first save's pack is unnamed; a gc with a long
  grace keeps it (young), `--grace 0` notes it, the next deletes it; the manifest restores
- a blob written under the prefix without a manifest (a writer between its blobs and its
  manifest) is kept by gc runs with a grace period, however many
- two writers saving while gc runs in a loop, then gc --grace 0 twice: every manifest under
  the prefix restores its whole cache on a fresh root
- a nested prefix's objects and unknown keys are never touched; a manifest that is not a
  kiln manifest stops the collection before anything is deleted, naming it; the layer
  cache's layers (layers.json) are named too"""
import json
import os
import subprocess
import sys
import urllib.request
from xml.etree import ElementTree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilnbuild import make_base, new_context  # noqa: E402
from kilntest import KILN, T, kiln  # noqa: E402
import awslib  # noqa: E402

BUCKET = "kgc"
direct, proxy, ENV = awslib.start_services(T)
awslib.s3_create_bucket(direct, BUCKET)
BASE = make_base(os.path.join(T.tmp, "root-base"))


def s3(prefix):
    return "type=s3,bucket=%s,prefix=%s" % (BUCKET, prefix)


def ctx(df, files=None):
    return new_context(T.tmp, df, files)


def build(root, context, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), *args, context, env=ENV,
                timeout=900)


def gc(prefix, *args):
    return kiln("cache", "gc", "--cache-to", s3(prefix), *args, env=ENV, timeout=300)


def out(r):
    return r.stdout + r.stderr


def keys(prefix):
    """Every key under BUCKET/prefix/ (one page is enough here)."""
    url = "%s/%s?list-type=2&prefix=%s/" % (direct, BUCKET, prefix)
    with urllib.request.urlopen(url, timeout=30) as r:
        root = ElementTree.fromstring(r.read())
    return sorted(e.text for e in root.iter() if e.tag.endswith("}Key") or e.tag == "Key")


def put(key, data):
    awslib.s3_put(direct, BUCKET, key, data)


def blobs(prefix):
    return [k for k in keys(prefix) if k.startswith(prefix + "/blobs/sha256/")]


def named(prefix):
    """The blob keys the manifests under prefix name."""
    out_ = set()
    for k in keys(prefix):
        if k.startswith(prefix + "/mounts/") or k == prefix + "/layers.json":
            with urllib.request.urlopen("%s/%s/%s" % (direct, BUCKET, k), timeout=30) as r:
                doc = json.loads(r.read())
            for b in doc.get("blobs", []):
                out_.add(prefix + "/blobs/sha256/" + b[0].split(":")[1])
            for lay in doc.get("layers", []):
                out_.add(prefix + "/blobs/sha256/" + lay["digest"].split(":")[1])
    return out_


# ---- a save replaced by a new one leaves its pack unnamed
DF = """FROM %s
ARG V
RUN --mount=type=cache,id=c1,target=/c sh -c 'rm -f /c/*; head -c 200000 /dev/urandom > /c/f-$V; \
sha256sum /c/f-* > /c/SUMS'
""" % BASE
d1 = ctx(DF)
r1 = build("rootA", d1, "--build-arg", "V=1", "--cache-to", s3("p"))
first = set(blobs("p"))
r2 = build("rootA", d1, "--build-arg", "V=2", "--cache-to", s3("p"))
T.check("two saves of one cache id with new content", r1.returncode == 0 and r2.returncode == 0
        and "cache mount c1: saved" in out(r2), out(r1)[-1500:] + out(r2)[-1500:])
stale = first - named("p")
T.check("the first save's pack is no longer named by the manifest", len(stale) >= 1,
        "%s %s" % (first, named("p")))

r = gc("p")
T.check("gc with the default grace (a day): the unnamed young pack is kept, nothing deleted",
        r.returncode == 0 and stale <= set(blobs("p")) and "0 deleted" in r.stdout
        and "1 unnamed but younger" in r.stdout, out(r))
r = gc("p", "--grace", "0")
T.check("gc --grace 0, first sighting: the pack is noted (gc.json), not deleted",
        r.returncode == 0 and stale <= set(blobs("p")) and "p/gc.json" in keys("p")
        and "1 unnamed (noted" in r.stdout and "0 deleted" in r.stdout, out(r))
r = gc("p", "--grace", "0", "--dry-run")
T.check("--dry-run says what would go and deletes nothing",
        r.returncode == 0 and "1 would be deleted" in r.stdout and stale <= set(blobs("p")), out(r))
r = gc("p", "--grace", "0")
T.check("gc --grace 0, second sighting: the unnamed pack is deleted, the named ones stay",
        r.returncode == 0 and not (stale & set(blobs("p"))) and named("p") <= set(blobs("p"))
        and "1 deleted" in r.stdout, out(r) + str(blobs("p")))
CHECK = """FROM %s
RUN --mount=type=cache,id=c1,target=/c sh -c 'cd /c && sha256sum -c SUMS && test -f f-2'
""" % BASE
r = build("rootA2", ctx(CHECK), "--cache-from", s3("p"))
T.check("the manifest still restores its whole cache on a fresh root",
        r.returncode == 0 and "cache mount c1: restored" in out(r), out(r)[-2000:])

# ---- a writer's blob not yet named by its manifest: never deleted within the grace period
orphan = "p/blobs/sha256/" + "ab" * 32
put(orphan, b"a pack whose manifest is not written yet")
for _ in range(2):
    r = gc("p", "--grace", "3600")
T.check("an unnamed blob younger than the grace period survives two gc runs",
        r.returncode == 0 and orphan in keys("p"), out(r))

# ---- nested prefixes and unknown keys are not the collection's
put("p/q/blobs/sha256/" + "cd" * 32, b"another cache's blob (prefix p/q)")
put("p/notes.txt", b"not kiln's")
for _ in range(2):
    r = gc("p", "--grace", "0")
T.check("a nested prefix's blob and an unknown key under the prefix are never deleted",
        r.returncode == 0 and "p/q/blobs/sha256/" + "cd" * 32 in keys("p")
        and "p/notes.txt" in keys("p"), out(r) + str(keys("p")))

# ---- two writers while gc runs, then gc --grace 0 twice: every manifest readable
W_DF = """FROM %s
ARG V
RUN --mount=type=cache,id=%s,target=/c sh -c 'rm -f /c/*; for i in 1 2 3; do \
head -c 300000 /dev/urandom > /c/%s-$V-$i; done; sha256sum /c/%s-* > /c/SUMS'
"""
wdirs = {w: ctx(W_DF % (BASE, w, w, w)) for w in ("wa", "wb")}
env = dict(os.environ, **ENV)
ok = True
for v in (1, 2, 3):
    procs = [subprocess.Popen([KILN, "build", "--root", os.path.join(T.tmp, "root-" + w),
                               "--build-arg", "V=%d" % v, "--cache-to", s3("w"), wdirs[w]],
                              env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for w in ("wa", "wb")]
    while any(p.poll() is None for p in procs):
        g = gc("w", "--grace", "3600")
        ok = ok and g.returncode == 0 and "0 deleted" in g.stdout
    logs = [p.communicate()[0] for p in procs]
    ok = ok and all(p.returncode == 0 for p in procs)
T.check("two writers save three times while gc runs in a loop: all succeed, gc deletes nothing "
        "young", ok, "\n".join(x[-1500:] for x in logs))
for _ in range(2):
    r = gc("w", "--grace", "0")
T.check("then gc --grace 0 twice deletes the replaced packs",
        r.returncode == 0 and set(blobs("w")) == named("w") and " 0 deleted" not in r.stdout,
        out(r) + str(sorted(set(blobs("w")) - named("w"))))
for w in ("wa", "wb"):
    r = build("root-read-" + w, ctx("FROM %s\nRUN --mount=type=cache,id=%s,target=/c sh -c "
                                    "'cd /c && sha256sum -c SUMS && ls | grep -c %s-3- | grep -qx 3'\n"
                                    % (BASE, w, w)), "--cache-from", s3("w"))
    T.check("cache %s restores whole on a fresh root after the collections" % w,
            r.returncode == 0 and "cache mount %s: restored" % w in out(r), out(r)[-2000:])

# ---- the layer cache's layers are named by layers.json
LDF = """FROM %s
RUN head -c 100000 /dev/urandom > /x
""" % BASE
r = build("rootL", ctx(LDF), "--cache-to", s3("l"))
lay = blobs("l")
for _ in range(2):
    g = gc("l", "--grace", "0")
T.check("layers named by layers.json are kept", r.returncode == 0 and lay and set(blobs("l")) == set(lay)
        and "0 deleted" in g.stdout, out(r)[-1000:] + out(g))

# ---- a manifest that is not kiln's stops the collection
put("p/mounts/" + "ee" * 32 + ".json", b'{"something": "else"}')
put("p/blobs/sha256/" + "ef" * 32, b"old")
before = keys("p")
for _ in range(2):
    r = gc("p", "--grace", "0")
T.check("a manifest that is not a kiln manifest: gc fails naming it, nothing deleted",
        r.returncode != 0 and "mounts/" + "ee" * 32 + ".json is not a kiln cache manifest" in r.stderr
        and keys("p") == before, out(r))
r = kiln("cache", "gc", "--retries", "0", "--cache-to", "type=registry,ref=127.0.0.1:1/x", env=ENV)
T.check("a registry cache (collected by test_remote_cache_registry_gc) that cannot be reached: "
        "gc fails naming it", r.returncode == 1 and "kiln cache gc 127.0.0.1:1/x" in r.stderr
        and "Couldn't connect" in r.stderr, out(r))
r = kiln("cache", "gc", "--cache-to", s3("p"), "--grace", "-1", env=ENV)
T.check("a negative grace is a usage error", r.returncode == 2 and "--grace" in r.stderr, out(r))
T.done()
