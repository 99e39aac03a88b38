"""kiln pull -o type=local without store=true: each layer's bytes go from the download through
memory to the unpacker and never into kiln's store (oci/pull_stream's memory mode), through a
fault-injecting proxy in front of a real docker-registry (tests/integration/pull_stream_fixtures).
A layer larger than the memory the download may run ahead by (the download pauses and
resumes); a download cut halfway resumes with Range; a layer named twice in the manifest;
store=true keeps the blobs and names the image. The hostile registry's answers (other bytes,
too many bytes, a 200 ignoring Range, a wrong diff_id) are in test_hostile_pull_stream.py."""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln  # noqa: E402
from pull_stream_fixtures import (big_digest, blobs, pa, proxy, pull, rules, sha, small,  # noqa: E402
                                  top, tree_ok)

# --- streamed only: the tree, and no layer blob in the store ---
rules()
p, root, dest = pull()
T.check("pull -o type=local of a layer 6x the stream's memory succeeds", p.returncode == 0, p.stderr)
T.check("its tree: the big file whole, a later layer's whiteout applied, the twice-named layer's file",
        p.returncode == 0 and tree_ok(dest))
T.check("no blob of a layer named once is in the store (only the config and the layer named twice)",
        len(blobs(root)) == 2 and sha(small[0]) in blobs(root), blobs(root))
T.check("no temp file is left in the store", glob.glob(os.path.join(root, "tmp", "*")) == [])
q = kiln("images", "--root", root)
T.check("the image is not named in the store (its layers are not there)",
        q.returncode == 0 and "t/app" not in q.stdout, q.stdout + q.stderr)

# --- store=true: every blob kept, the image named ---
p, root, dest = pull("t/app:v1", out="type=local,dest=%s,store=true" % os.path.join(T.tmp, "out", "kept"))
T.check("store=true: the pull succeeds and the tree is the same",
        p.returncode == 0 and tree_ok(os.path.join(T.tmp, "out", "kept")), p.stderr)
T.check("store=true: every layer blob is in the store", big_digest in blobs(root) and
        sha(top[0]) in blobs(root), blobs(root))
q = kiln("images", "--root", root)
T.check("store=true: the image is named in the store", q.returncode == 0 and "t/app" in q.stdout,
        q.stdout + q.stderr)
p = kiln("pull", "--root", root, "-o", "type=oci,dest=%s,store=true" % os.path.join(T.tmp, "x"),
         "%s/t/app:v1" % pa)
T.check("store= is refused for type=oci (a usage error)", p.returncode == 2 and "store=" in p.stderr, p.stderr)

# --- a download cut halfway resumes where the stream is ---
rules({"method": "GET", "path": big_digest[7:], "action": "cut", "count": 1})
p, root, dest = pull()
ranges = [r for m, path, r in proxy.log if big_digest[7:] in path and m == "GET"]
T.check("a cut download resumes with Range and the pull succeeds", p.returncode == 0 and tree_ok(dest) and
        len(ranges) == 2 and ranges[0] is None and (ranges[1] or "").startswith("bytes="), (p.stderr, ranges))

proxy.close()
T.done()
