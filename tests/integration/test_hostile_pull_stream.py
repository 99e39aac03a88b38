"""A hostile registry behind `kiln pull -o type=local` streaming (oci/pull_stream's memory mode),
through a fault-injecting proxy in front of a real docker-registry
(tests/integration/pull_stream_fixtures): a registry answering a Range with the whole blob (200)
has its repeated bytes skipped; a blob answered with other bytes or with more bytes than its
size, and a layer whose tar is not the config's diff_id, fail naming the blob / the diff_id and
leave nothing at the destination, beside it or in the store."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln  # noqa: E402
from pull_stream_fixtures import (big, big_digest, blobs, left_behind, pa, proxy, pull, rules,  # noqa: E402
                                  tree_ok)
from pull_stream_fixtures import bad_cfg, sha, top  # noqa: E402

# --- a Range answered with the whole blob: the bytes the stream has are skipped ---
rules({"method": "GET", "path": big_digest[7:], "action": "cut", "count": 1},
      {"method": "GET", "path": big_digest[7:], "action": ("body", "application/octet-stream", big[0]), "count": 1})
p, root, dest = pull()
T.check("a 200 answering a Range: the repeated bytes are skipped, the tree is whole",
        p.returncode == 0 and tree_ok(dest) and len(proxy.hits) == 2, (p.stderr, proxy.hits))

# --- other bytes for the big blob: refused once read to the end, nothing left ---
evil = bytearray(big[0])
evil[len(evil) // 2] ^= 0x01  # inside the random file's stored bytes: still a valid gzip tar
rules({"method": "GET", "path": big_digest[7:], "action": ("body", "application/octet-stream", bytes(evil)),
       "count": -1})
p, root, dest = pull()
T.check("a blob answered with other bytes fails the pull naming it", p.returncode != 0 and
        "does not match its digest" in p.stderr and big_digest[7:] in p.stderr, p.stderr)
T.check("other bytes: nothing at the destination, beside it or in the store",
        left_behind(root, dest, big_digest) == [], left_behind(root, dest, big_digest))

# --- more bytes than the blob's size: stopped at its size (the unpacker never sees more) ---
rules({"method": "GET", "path": big_digest[7:],
       "action": ("body", "application/octet-stream", big[0] + os.urandom(8 << 20)), "count": -1})
p, root, dest = pull()
T.check("a blob answered with more bytes than its size fails naming it", p.returncode != 0 and
        "more than the expected" in p.stderr and big_digest[7:] in p.stderr, p.stderr)
T.check("more bytes: nothing at the destination, beside it or in the store",
        left_behind(root, dest, big_digest) == [], left_behind(root, dest, big_digest))

# --- a layer that is not the config's diff_id ---
rules()
p, root, dest = pull("t/bad:v1")
T.check("a layer whose tar is not the config's diff_id fails naming the diff_id and the layer",
        p.returncode != 0 and "diff_id mismatch" in p.stderr and sha(b"not this tar") in p.stderr and
        sha(top[0]) in p.stderr, p.stderr)
T.check("diff_id mismatch: nothing at the destination, beside it, and no layer blob in the store",
        left_behind(root, dest, None) == [] and blobs(root) == [bad_cfg], (left_behind(root, dest, None), blobs(root)))
proxy.close()
T.done()
