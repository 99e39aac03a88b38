"""Cache isolation between the tenants of one `kiln serve` (real builds): a marker a build
of tenant acme writes into `RUN --mount=type=cache,id=npm` is not visible to tenant globex's
build with the same cache id, while acme's next build sees it; neither tenant hits the other's
step cache (same Dockerfile and context); the caches live under the kiln root's ns/TENANT,
0700."""
import os
import re
import stat

from kilntest import T
from server_common import Server, busybox_layout, tar_gz

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}
kroot = os.path.join(T.tmp, "kiln-root")
config = {"tenants": [{"name": n, "tokens": [t]} for n, t in TOKENS.items()],
          "policy": {"allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout]}}
srv = Server(os.path.join(T.tmp, "root"), workers=1, config=config,
             extra=["--kiln-root=" + kroot]).start()


def build(tenant, dockerfile, args=None):
    """Runs one build as tenant; returns (final record, log text)."""
    st, body = srv.request("POST", "/v1/contexts", token=TOKENS[tenant],
                           body=tar_gz({"Dockerfile": dockerfile.encode()}))
    if st != 201:
        return {"status": "upload %d" % st, "body": body}, ""
    req = {"source": {"context": body["context"]}, "build_args": args or {}}
    return srv.build_to_end(req, token=TOKENS[tenant])


def seen(log):
    m = re.search(r"(?m)^#\d+ SEEN:\[([^\]]*)\]", log)
    return m.group(1).split() if m else None


CM = ("FROM oci:%s:1\nARG WHO\n"
      "RUN --mount=type=cache,id=npm,target=/c echo \"SEEN:[$(ls /c)]\" && touch /c/from-$WHO\n"
      % layout)
runs = {}
for who, tenant in (("acme1", "acme"), ("globex1", "globex"), ("acme2", "acme")):
    runs[who] = build(tenant, CM, {"WHO": who})
    T.check(f"{who}: the build of tenant {tenant} succeeds",
            runs[who][0].get("status") == "succeeded", (runs[who][0], runs[who][1][-2000:]))
T.check("tenant acme's first build starts with an empty cache mount",
        seen(runs["acme1"][1]) == [], runs["acme1"][1][-1000:])
T.check("tenant globex's same cache id does not see acme's marker",
        seen(runs["globex1"][1]) == [], runs["globex1"][1][-1000:])
T.check("tenant acme's next build reuses its cache mount (its marker, not globex's)",
        seen(runs["acme2"][1]) == ["from-acme1"], runs["acme2"][1][-1000:])

LC = "FROM oci:%s:1\nRUN echo layer-$(od -An -tx1 -N8 /dev/urandom | tr -d ' ')\n" % layout
a1, la1 = build("acme", LC)
a2, la2 = build("acme", LC)
g1, lg1 = build("globex", LC)
T.check("a tenant hits its own step cache (same Dockerfile, second build)",
        a2.get("status") == "succeeded" and "CACHED" in la2, la2[-1500:])
T.check("another tenant misses it (its step runs)",
        g1.get("status") == "succeeded" and re.search(r"layer-[0-9a-f]{16}", lg1) is not None and
        "#2 CACHED" not in lg1, lg1[-1500:])
for t in ("acme", "globex"):
    d = os.path.join(kroot, "ns", t)
    T.check(f"tenant {t}'s caches under ns/{t} (0700)",
            os.path.isdir(os.path.join(d, "cache-mounts")) and
            stat.S_IMODE(os.stat(d).st_mode) == 0o700)
T.check("no shared cache mount was used", not os.path.exists(os.path.join(kroot, "build",
                                                                          "cache-mounts")))
srv.term()
T.done()
