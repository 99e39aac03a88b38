"""Remote cache mounts in S3 (fauxqs through a recording proxy): `--cache-to type=s3` saves
every RUN --mount=type=cache id a build used, `--cache-from type=s3` restores it on a fresh
kiln root before the first step that mounts it.

- worker A (root A) fills an npm cache with real packages and saves it; worker B (a fresh
  root) restores it and `npm install --offline` installs everything with no registry fetch
  in npm's own log
- an unchanged cache saved again uploads no blob and no manifest (one GET)
- a changed cache uploads only the new content
- two concurrent saves of one cache id leave a cache a third root restores whole (the
  SHA256SUMS written by either writer verifies)
- max-size: a cache larger than it is saved without its least recently used files
- a cache hit of the step that mounts a cache fetches nothing
- the layer cache: a fully cached fresh root reads layers.json and downloads no layer (lazy
  blobs, oci/store_lazy); an OCI export then fetches them from blobs/ under the prefix; a
  changed commit fetches the cached layers its changed step stands on"""
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilnbuild import make_base, new_context  # noqa: E402
from kilntest import KILN, T, kiln  # noqa: E402
import awslib  # noqa: E402
from examples_lib import IMAGES, need_node_images  # noqa: E402

BUCKET = "kcache"
direct, proxy, ENV = awslib.start_services(T)
awslib.s3_create_bucket(direct, BUCKET)
BASE = make_base(os.path.join(T.tmp, "root-base"))


def s3(prefix, **extra):
    spec = "type=s3,bucket=%s,prefix=%s" % (BUCKET, prefix)
    for k, v in extra.items():
        spec += ",%s=%s" % (k.replace("_", "-"), v)
    return spec


def ctx(df, files=None):
    return new_context(T.tmp, df, files)


def build(root, context, *args):
    return kiln("build", "--root", os.path.join(T.tmp, root), *args, context, env=ENV,
                timeout=900)


def spawn_build(root, context, *args):
    env = dict(os.environ, **ENV)
    return subprocess.Popen([KILN, "build", "--root", os.path.join(T.tmp, root), *args, context],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def puts(prefix, what):
    """PUTs of the proxy log under /BUCKET/prefix/what (blobs/ or mounts/)."""
    want = "/%s/%s/%s" % (BUCKET, prefix, what)
    return [r for r in proxy.requests() if r["method"] == "PUT" and r["path"].startswith(want)]


def out(r):
    return r.stdout + r.stderr


# ---- npm: worker A fills and saves, worker B restores and installs offline
need_node_images()
NPM_DF = """FROM oci:%s/node-build
WORKDIR /app
ARG NPM_FLAGS=
COPY package.json ./
RUN --mount=type=cache,id=npm,target=/root/.npm \\
    npm install --no-audit --no-fund --no-package-lock --loglevel=http $NPM_FLAGS > /tmp/npm.log 2>&1; \\
    rc=$?; cat /tmp/npm.log; \\
    echo "registry fetches: $(grep 'http fetch' /tmp/npm.log | grep -vc '(cache hit)\\|(cache stale)')"; \\
    ls node_modules; exit $rc
""" % IMAGES
PKG = '{"name": "app", "version": "1.0.0", "dependencies": {"ms": "2.1.3", "left-pad": "1.3.0", ' \
      '"is-number": "7.0.0", "picocolors": "1.1.1", "escape-html": "1.0.3"}}\n'
npm_a = ctx(NPM_DF, {"package.json": PKG})
r = build("rootA", npm_a, "--cache-to", s3("npm"))
T.check("worker A: the npm build succeeds and saves the cache mount",
        r.returncode == 0 and "cache mount npm: saved" in out(r), out(r)[-3000:])
fetch_a = [line for line in out(r).splitlines() if "registry fetches:" in line]
T.check("worker A: npm fetched its packages from the registry",
        fetch_a and not fetch_a[-1].rstrip().endswith(" 0"), "\n".join(fetch_a))
T.check("worker A: blobs then the manifest were PUT under the prefix",
        puts("npm", "blobs/sha256/") and puts("npm", "mounts/"), str(proxy.requests()[-5:]))

proxy.clear()
r = build("rootB", npm_a, "--build-arg", "NPM_FLAGS=--offline", "--cache-from", s3("npm"))
T.check("worker B (empty root): the cache mount is restored before the install step",
        r.returncode == 0 and "cache mount npm: restored" in out(r), out(r)[-3000:])
fetch_b = [line for line in out(r).splitlines() if "registry fetches:" in line]
T.check("worker B: npm install --offline made no registry fetch (npm's log)",
        fetch_b and fetch_b[-1].rstrip().endswith(" 0") and "escape-html" in out(r),
        "\n".join(fetch_b) + out(r)[-2000:])
T.check("worker B: nothing was written to S3 without --cache-to",
        not [q for q in proxy.requests() if q["method"] == "PUT"])

# the layer cache: a fresh root with the same build takes every step from S3, mounts nothing
proxy.clear()
r = build("rootB2", npm_a, "--cache-from", s3("npm"), "--cache-to", s3("npm"))
T.check("layer cache: a fresh root imports the step cache from S3 and the install step is cached",
        r.returncode == 0 and "imported" in out(r) and "#5 CACHED" in out(r)
        and "cache mount npm: restored" not in out(r), out(r)[-2500:])
T.check("the cache mount a cached step did not use is not saved (the saved one is not replaced)",
        not puts("npm", "mounts/") and "cache mount npm: saved" not in out(r), out(r)[-1500:])
T.check("layer cache: the index came from layers.json; a fully cached build downloads no layer "
        "(each named as a lazy blob of the prefix)",
        any(q["path"].startswith("/%s/npm/layers.json" % BUCKET) for q in proxy.requests())
        and not any(q["method"] == "GET" and "/npm/blobs/sha256/" in q["path"]
                    for q in proxy.requests())
        and len(os.listdir(os.path.join(T.tmp, "rootB2", "lazy"))) > 0,
        str([(q["method"], q["path"]) for q in proxy.requests()][:20]))
# an export needs the layers' bytes: they come from blobs/ under the prefix, checked
proxy.clear()
r = build("rootB2", npm_a, "-o", "type=oci,dest=" + os.path.join(T.tmp, "layB2"))
T.check("layer cache: an OCI export of that build fetches its layers from blobs/ under the prefix",
        r.returncode == 0 and any(q["method"] == "GET" and "/npm/blobs/sha256/" in q["path"]
                                  for q in proxy.requests()),
        out(r)[-1500:] + str([(q["method"], q["path"]) for q in proxy.requests()][:20]))

# ---- unchanged and changed saves (busybox)
DATA_DF = """FROM %s
ARG N
RUN --mount=type=cache,id=data,target=/data sh -c 'echo build $N; \
test -f /data/big || head -c 3000000 /dev/urandom > /data/big; \
test -z "$ADD" || echo "$ADD" > /data/added'
""" % BASE
data = ctx(DATA_DF.replace("ARG N\n", "ARG N\nARG ADD\n"))
r = build("rootC", data, "--build-arg", "N=1", "--cache-to", s3("data"))
T.check("first save of cache id data", r.returncode == 0 and "cache mount data: saved" in out(r),
        out(r)[-2000:])
proxy.clear()
r = build("rootC", data, "--build-arg", "N=2", "--cache-to", s3("data"))
T.check("unchanged cache: the step ran again and the save says unchanged",
        r.returncode == 0 and "cache mount data: unchanged" in out(r), out(r)[-2000:])
T.check("unchanged cache: no blob and no manifest uploaded (the manifest only read)",
        not puts("data", "blobs/") and not puts("data", "mounts/") and any(q["method"] == "GET" for q in proxy.requests()),
        str([(q["method"], q["path"]) for q in proxy.requests()]))
proxy.clear()
r = build("rootC", data, "--build-arg", "N=3", "--build-arg", "ADD=more", "--cache-to", s3("data"))
sizes = [q["size"] for q in puts("data", "blobs/")]
T.check("changed cache: one new small blob uploaded (not the 3 MB file again), then the manifest",
        r.returncode == 0 and len(sizes) == 1 and sizes[0] < 1000 and len(puts("data", "mounts/")) == 1,
        str(sizes) + out(r)[-1500:])

# a step that is a cache hit mounts nothing: a fresh root with --cache-from fetches no mount
proxy.clear()
r = build("rootC", data, "--build-arg", "N=3", "--build-arg", "ADD=more", "--cache-from", s3("data"))
T.check("a cached step restores nothing (no manifest GET)",
        r.returncode == 0 and not [q for q in proxy.requests() if "/mounts/" in q["path"]],
        str([(q["method"], q["path"]) for q in proxy.requests()]))

# ---- two concurrent saves of one cache id
RACE_DF = """FROM %s
ARG W
RUN --mount=type=cache,id=race,target=/c sh -c 'cd /c && rm -f * && for i in 1 2 3 4 5 6; do \
head -c 1500000 /dev/urandom > $W-$i; done && sha256sum $W-* > SHA256SUMS && echo $W > writer'
""" % BASE
race = ctx(RACE_DF)
procs = [spawn_build("root-w%d" % i, race, "--build-arg", "W=w%d" % i, "--cache-to", s3("race"))
         for i in (1, 2)]
res = [p.communicate(timeout=900) + (p.returncode,) for p in procs]
T.check("two concurrent builds saving cache id race both succeed",
        all(x[2] == 0 for x in res), "\n".join(x[1][-1500:] for x in res))
CHECK_DF = """FROM %s
RUN --mount=type=cache,id=race,target=/c sh -c 'cd /c && cat writer && sha256sum -c SHA256SUMS \
&& test $(ls | wc -l) = 8'
""" % BASE
r = build("root-reader", ctx(CHECK_DF), "--cache-from", s3("race"))
T.check("a third root restores one writer's complete cache (its SHA256SUMS verify, no mix)",
        r.returncode == 0 and "cache mount race: restored" in out(r), out(r)[-2500:])

# ---- max-size: the least recently used files are left out
EVICT_DF = """FROM %s
RUN --mount=type=cache,id=ev,target=/c sh -c 'cd /c && head -c 400000 /dev/urandom > old && \
touch -d "2001-01-01" old && head -c 400000 /dev/urandom > new'
""" % BASE
r = build("rootE", ctx(EVICT_DF), "--cache-to", s3("ev", max_size="500K"))
T.check("max-size=500K: the older of two 400 KB files is left out of the save",
        r.returncode == 0 and "1 least recently used files left out" in out(r), out(r)[-1500:])
r = build("rootE2", ctx("FROM %s\nRUN --mount=type=cache,id=ev,target=/c sh -c 'ls -l /c; "
                        "test ! -e /c/old && test -e /c/new'\n" % BASE), "--cache-from", s3("ev"))
T.check("the restored cache has the newer file only", r.returncode == 0, out(r)[-1500:])

# a changed commit on a fresh root: the cached steps' layers are lazy until the changed step
# needs them as lower dirs; they are fetched then (in parallel) and the step sees them
CHG_DF = """FROM %s
RUN echo layer-a > /a
RUN echo layer-b > /b
COPY f /f
RUN cat /a /b /f > /out
""" % BASE
r = build("rootC1", ctx(CHG_DF, {"f": "one\n"}), "--progress", "plain", "--cache-to", s3("chg"))
T.check("changed commit: the first build saves its layer cache", r.returncode == 0, out(r)[-1500:])
fsC = os.path.join(T.tmp, "fsC")
r = build("rootC2", ctx(CHG_DF, {"f": "two\n"}), "--progress", "plain", "--cache-from", s3("chg"),
          "-o", "type=local,dest=" + fsC)
T.check("changed commit on a fresh root: the two cached RUNs' layers named lazily, fetched for the "
        "COPY's lower dirs, the last RUN sees both and the new file",
        r.returncode == 0 and "named to fetch when needed" in out(r) and "#3 CACHED" in out(r)
        and open(os.path.join(fsC, "out")).read() == "layer-a\nlayer-b\ntwo\n", out(r)[-2000:])

r = kiln("build", "--cache-to", "type=s3,bucket=kcache,prefix=../x", T.tmp, env=ENV)
T.check("a prefix with .. is refused naming it",
        r.returncode != 0 and "prefix=../x" in r.stderr and '".."' in r.stderr, r.stderr)
T.done()
