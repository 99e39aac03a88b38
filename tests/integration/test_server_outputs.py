"""Output confinement on a real `kiln serve`: file outputs (local, oci, docker, tar, function)
are written only into the build's own artifacts directory: an absolute, escaping, encoded or
nested dest, an unknown type or option, a malformed pushed name or tag is 400 naming the output
before any build exists, and nothing is written on the host; a relative dest is built into the
artifacts directory and served by the artifacts route (never through the image's symlinks)."""
import json
import os

from kilntest import T
from server_common import real_build_server

layout, reg, srv = real_build_server()

# host paths a hostile request aims at: none may be created or written
marker_dir = os.path.join(T.tmp, "host-marker")
marker_file = os.path.join(T.tmp, "host-marker-file")


def n_builds():
    st, body = srv.request("GET", "/v1/builds?limit=500")
    return len(body["builds"]) if st == 200 else -1


def host_untouched():
    return not os.path.lexists(marker_dir) and not os.path.lexists(marker_file)


ctx = srv.upload_dockerfile(
    "FROM oci:%s:1\nRUN mkdir /www && echo built > /www/index.html && ln -s %s /evil\n"
    % (layout, marker_dir))

# --- refused before anything runs: 400 naming the output ---
REFUSED = [
    ("absolute local dest", [{"type": "local", "dest": marker_dir}],
     "field 'outputs[0].dest': '%s' is absolute" % marker_dir),
    ("absolute oci dest", [{"type": "oci", "dest": marker_file, "tar": True}],
     "outputs[0].dest"),
    ("escaping docker dest", [{"type": "docker", "dest": "../../../.." + marker_file}],
     "field 'outputs[0].dest': '../../../..%s' has a '..' segment" % marker_file),
    ("escaping dest inside the path", [{"type": "local", "dest": "site/../../.."}],
     "has a '..' segment"),
    ("encoded dest", [{"type": "tar", "dest": "%2e%2e/x.tar"}],
     "field 'outputs[0].dest': '%2e%2e/x.tar' has the character '%'"),
    ("dest with an empty segment", [{"type": "local", "dest": "a//b"}], "empty path segment"),
    ("a file output inside another's directory",
     [{"type": "local", "dest": "site"}, {"type": "local", "dest": "site/evil/x"}],
     "field 'outputs[1].dest': 'site/evil/x' and outputs[0].dest 'site'"),
    ("two file outputs on one path",
     [{"type": "oci", "dest": "img"}, {"type": "docker", "dest": "img"}], "outputs[1].dest"),
    ("an option another type would read", [{"type": "function", "dest": "f.zip",
                                            "x-dest": marker_file}],
     "field 'outputs[0].x-dest': not an option of type=function (dest)"),
    ("a dest on a registry output", [{"type": "registry", "name": reg + "/acme/app",
                                      "dest": marker_file}],
     "field 'outputs[0].dest': not an option of type=registry"),
    ("an unknown type", [{"type": "cacheonly"}], "unknown output type 'cacheonly'"),
    ("a file output without dest", [{"type": "local"}], "type=local needs a dest"),
    ("a pushed name with '..'", [{"type": "registry", "name": reg + "/acme/../other/app"}],
     "field 'outputs[0].name': invalid image reference"),
    ("a pushed name with %2e", [{"type": "image", "name": reg + "/acme/%2e%2e/app",
                                 "push": True}], "field 'outputs[0].name'"),
    ("an s3 dest with '..'", [{"type": "s3", "dest": "s3://sites/acme/../other"}],
     "field 'outputs[0].dest': 's3://sites/acme/../other' has a '..' key segment"),
    ("an s3 dest with %2e", [{"type": "s3", "dest": "s3://sites/acme/%2e%2e/x"}],
     "outputs[0].dest"),
]
before = n_builds()
for name, outputs, want in REFUSED:
    st, body = srv.submit({"source": {"context": ctx}, "outputs": outputs})
    err = body.get("error", "") if isinstance(body, dict) else str(body)
    T.check("%s => 400 naming it" % name, st == 400 and want in err, (st, body, want))
st, body = srv.submit({"source": {"context": ctx}, "tags": [reg + "/acme/app:1", "a/../b:1"]})
T.check("a tag with '..' => 400 naming tags[1]", st == 400 and
        "field 'tags[1]'" in body.get("error", ""), (st, body))
T.check("no build was created by a refused request", n_builds() == before, n_builds())
T.check("nothing written on the host", host_untouched(), os.listdir(T.tmp))

# --- a relative dest: built into the artifacts directory, served by the artifacts route ---
st, body = srv.submit({"source": {"context": ctx}, "outputs": [
    {"type": "local", "dest": "site"}, {"type": "oci", "dest": "image.tar", "tar": True}]})
T.check("file outputs with relative dests => 202", st == 202, body)
bid = body.get("id", "")
b = srv.wait_status(bid, ("succeeded", "failed", "canceled"), timeout=600)
T.check("the build succeeded", b and b["status"] == "succeeded",
        (b, srv.request("GET", "/v1/builds/%s/logs" % bid)[1]))
st, a = srv.request("GET", "/v1/builds/%s/artifacts" % bid)
paths = {f["path"] for f in a.get("files", [])} if st == 200 else set()
T.check("artifacts list the local output's files and the oci archive",
        "site/www/index.html" in paths and "image.tar" in paths, (st, sorted(paths)[:20]))
st, data, _ = srv.request("GET", "/v1/builds/%s/artifacts/files/site/www/index.html" % bid,
                          raw=True)
T.check("a file of the local output is served", st == 200 and data == b"built\n", (st, data))
art = os.path.join(srv.root, "artifacts", bid)
T.check("the image's symlink is kept as a link inside the artifacts directory",
        os.readlink(os.path.join(art, "site", "evil")) == marker_dir, os.listdir(art))
st, body = srv.request("GET", "/v1/builds/%s/artifacts/files/site/evil" % bid)
T.check("the artifacts route does not follow the image's symlink", st == 404, (st, body))
T.check("the stored outputs keep the request's dest",
        json.dumps(b.get("outputs")) == json.dumps([{"type": "local", "dest": "site"},
                                                    {"type": "oci", "dest": "image.tar",
                                                     "tar": True}]), b.get("outputs"))
T.check("still nothing written on the host", host_untouched(), os.listdir(T.tmp))

T.done()
