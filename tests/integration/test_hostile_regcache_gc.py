"""Hostile registry cache images given to `kiln cache gc --cache-to type=registry,ref=R`
(docker-registry on loopback; each image pushed by hand): a pack declaring a negative or a
huge size, a layer naming `urls`, a config whose cache mount names a pack that is not one of
the image's own layers (a blob of another repository), a cache entry naming another
repository's layer, a saved time that is not one, an image index at the tag, an image that is
not a kiln cache. Each: gc fails with a message naming the cache image and what is wrong,
nothing is written (the tag's manifest unchanged, nothing deleted), and the host marker is
neither read nor written."""
import hashlib
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import HostMarker  # noqa: E402
from kilntest import T, kiln, start_registry  # noqa: E402

RPORT = start_registry()
REG = "127.0.0.1:%d" % RPORT
PACK_MT = "application/vnd.kiln.cachemount.pack.v1"
OCI_MAN = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
marker = HostMarker()


def req(method, path, data=None, ctype=None):
    r = urllib.request.Request("http://%s%s" % (REG, path), data=data, method=method)
    if ctype:
        r.add_header("Content-Type", ctype)
    r.add_header("Accept", OCI_MAN + "," + OCI_INDEX)
    return urllib.request.urlopen(r)


def blob(repo, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = req("POST", "/v2/%s/blobs/uploads/" % repo).headers["Location"]
    loc = loc.split(REG, 1)[-1]
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, data,
        "application/octet-stream")
    return {"digest": d, "size": len(data)}


def push(repo, tag, man, mt=OCI_MAN):
    body = json.dumps(man).encode()
    req("PUT", "/v2/%s/manifests/%s" % (repo, tag), body, mt)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def tag_digest(repo, tag):
    return req("GET", "/v2/%s/manifests/%s" % (repo, tag)).headers["Docker-Content-Digest"]


PACK = blob("app/cache", b"p" * 1000 + marker.mark.encode())
OTHER = blob("other/repo", b"another repository's pack")
LAYER = blob("app/cache", b"layer bytes")


def cache_image(repo, tag, layers, mounts=None, entries=None, saved=None, extra_cfg=None):
    cfg = {"architecture": "amd64", "os": "linux", "config": {},
           "rootfs": {"type": "layers", "diff_ids": []},
           "kiln.cache.v1": entries or {}}
    if mounts is not None:
        cfg["kiln.mounts.v1"] = mounts
    if saved is not None:
        cfg["kiln.mounts.saved.v1"] = saved
    cfg.update(extra_cfg or {})
    if entries is False:
        del cfg["kiln.cache.v1"]
    c = blob(repo, json.dumps(cfg).encode())
    man = {"schemaVersion": 2, "mediaType": OCI_MAN,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **c},
           "layers": layers}
    return push(repo, tag, man)


def pack_layer(p=PACK, **kw):
    d = {"mediaType": PACK_MT, "digest": p["digest"], "size": p["size"]}
    d.update(kw)
    return d


def mount(p=PACK, size=None):
    return {"mounts/" + "ab" * 32 + ".json": {"v": 1, "blobs": [[p["digest"],
                                                                  p["size"] if size is None
                                                                  else size]], "e": []}}


CASES = [
    ("a pack declaring a negative size", "neg",
     dict(layers=[pack_layer(size=-5)], mounts=mount(size=-5)), "declares size out of range"),
    ("a pack declaring a huge size", "huge",
     dict(layers=[pack_layer(size=1 << 50)], mounts=mount(size=1 << 50)),
     "declares size out of range"),
    ("a layer declaring a huge size", "hugelayer",
     dict(layers=[{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": LAYER["digest"], "size": 1 << 62}]),
     "declares size out of range"),
    ("a layer naming urls", "urls",
     dict(layers=[pack_layer(urls=["http://169.254.169.254/x"])], mounts=mount()),
     "names urls"),
    ("a cache mount naming another repository's pack", "otherpack",
     dict(layers=[pack_layer()], mounts=mount(OTHER)),
     "which is not one of the image's own layers (another repository's blob?)"),
    ("a cache mount naming a pack with another size than the image's", "othersize",
     dict(layers=[pack_layer()], mounts=mount(size=PACK["size"] + 1)),
     "which is not one of the image's own layers"),
    ("a cache entry naming another repository's layer", "otherlayer",
     dict(layers=[pack_layer()], mounts=mount(),
          entries={"cd" * 32: {"layer": {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                         "digest": OTHER["digest"], "size": OTHER["size"]}}}),
     "cache entry " + "cd" * 32),
    ("a saved time that is not a time", "badtime",
     dict(layers=[pack_layer()], mounts=mount(), saved={"mounts/" + "ab" * 32 + ".json": -1}),
     "kiln.mounts.saved.v1 of mounts/"),
]

for what, tag, kw, msg in CASES:
    before = cache_image("app/cache", tag, **kw)
    r = kiln("cache", "gc", "--insecure-registry", REG, "--cache-to",
             "type=registry,ref=%s/app/cache:%s,max-size=1" % (REG, tag))
    T.check("%s: gc fails naming the cache image and what is wrong, nothing written" % what,
            r.returncode == 1 and msg in r.stderr and "%s/app/cache:%s" % (REG, tag) in r.stderr
            and tag_digest("app/cache", tag) == before and marker.mark not in r.stderr
            and marker.untouched(), r.stderr[-1200:])

# an image index at the tag (naming a manifest of another repository's digest)
inner = cache_image("app/cache", "inner", layers=[pack_layer()], mounts=mount())
idx = {"schemaVersion": 2, "mediaType": OCI_INDEX,
       "manifests": [{"mediaType": OCI_MAN, "digest": inner, "size": 10,
                      "platform": {"architecture": "amd64", "os": "linux"}}]}
before = push("app/cache", "index", idx, OCI_INDEX)
r = kiln("cache", "gc", "--insecure-registry", REG, "--cache-to",
         "type=registry,ref=%s/app/cache:index" % REG)
T.check("an image index at the tag: refused as not a kiln cache image, nothing written",
        r.returncode == 1 and "an image index, not a kiln cache image" in r.stderr
        and tag_digest("app/cache", "index") == before and marker.untouched(), r.stderr[-800:])

# an ordinary image (no kiln.cache.v1): not collected
before = cache_image("app/cache", "plain", layers=[pack_layer()], entries=False)
r = kiln("cache", "gc", "--insecure-registry", REG, "--cache-to",
         "type=registry,ref=%s/app/cache:plain,max-size=1" % REG)
T.check("an image that is not a kiln cache: refused naming it, nothing written",
        r.returncode == 1 and "not a kiln cache image" in r.stderr
        and tag_digest("app/cache", "plain") == before and marker.untouched(), r.stderr[-800:])
T.check("the host marker was neither read nor written", marker.untouched())
T.done()
