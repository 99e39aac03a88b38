#!/usr/bin/env bash
# kiln build vs buildah bud (--isolation chroot, overlay storage, a private TMPDIR), to an OCI
# layout, both compressing at gzip level 3 (kiln's default, buildah push --compression-level 3):
#   tiny   busybox base, RUN + COPY                      target kiln <= 0.3x buildah
#   big    COPY of a ~1.1 GB tree + RUN, gzip            target kiln <= 0.25x buildah
#   again  the big build with nothing changed            target kiln <= 0.1x buildah --layers
#   peak RSS of kiln in each                             target <= 100 MiB
# RUNS rounds (default 5) of the six commands in turn: median/min/max, CPU and peak RSS, one
# ratio line per case (bench_lib.sh).
# Usage: bench/dockerfile.sh [KILN_BIN]   (env: BIG_MB=1100; the tree is cached
# under /var/cache/kiln/bench-tree-<MB>)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln "${1:-}"
BIG_MB=${BIG_MB:-1100}
command -v buildah >/dev/null || { echo "buildah is not installed"; exit 1; }
# buildah wants a lower-case path in oci: references
T=/tmp/kiln-bench-$$
mkdir -p "$T"
chmod 711 "$T"
cleanup() {
  buildah --root "$T/bah-root" --runroot "$T/bah-run" --storage-driver overlay rm -a >/dev/null 2>&1 || true
  umount -R "$T/bah-root/overlay" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

# --- inputs ------------------------------------------------------------------
mkdir -p "$T/bb"/{bin,etc,tmp,root}
cp /bin/busybox "$T/bb/bin/busybox"
for a in sh echo cat ls mkdir rm wc du find true; do ln -sf busybox "$T/bb/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$T/bb/etc/passwd"
"$KILN" import "$T/bb" -t busybox:1 --root "$T/kiln-root" -o "type=oci,dest=$T/base" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null 2>&1
BASE="oci:$T/base:1"

TREE=/var/cache/kiln/bench-tree-$BIG_MB
if [ ! -f "$TREE/.complete" ]; then
  echo "making a ${BIG_MB} MB tree in $TREE (once)"
  rm -rf "$TREE"; mkdir -p "$TREE"
  python3 - "$TREE" "$BIG_MB" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = [("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))).encode()
         for _ in range(5000)]
size, n = 0, 0
while size < mb * 1024 * 1024:
    d = os.path.join(root, "d%03d" % (n // 200), "s%02d" % ((n // 20) % 10))
    os.makedirs(d, exist_ok=True)
    want = rnd.choice((4096, 32768, 131072, 262144, 1048576))
    if n % 3 == 0:   # incompressible
        data = rnd.randbytes(want)
    else:            # text-like
        out = bytearray()
        while len(out) < want:
            out += rnd.choice(words) + b" "
        data = bytes(out[:want])
    with open(os.path.join(d, "f%06d.bin" % n), "wb") as f:
        f.write(data)
    size += len(data); n += 1
open(os.path.join(root, ".complete"), "w").write("%d files\n" % n)
PY
fi

mkdir -p "$T/tiny" "$T/big"
echo "hello" >"$T/tiny/hello.txt"
cat >"$T/tiny/Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
RUN echo built > /built.txt
COPY hello.txt /hello.txt
EOF
cat >"$T/big/Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
COPY tree /data/
RUN du -s /data > /data-size
EOF
cp -al "$TREE" "$T/big/tree" 2>/dev/null || cp -a "$TREE" "$T/big/tree"
rm -f "$T/big/tree/.complete"

# --- runners -----------------------------------------------------------------
# bench_lib's rounds: the six commands in turn, RUNS rounds; cold builds start from an empty
# kiln root / empty buildah storage (prepared outside the clock), "again" reuses the root the
# big build just filled.
: >"$T/times"
kiln_cmd() { # root ctx dest
  echo "rm -rf $3 && \"$KILN\" build --root $1 --progress quiet --compression-level $KILN_GZIP_LEVEL \
    --build-arg BASE=$BASE -o type=oci,dest=$3 $2"
}
B="env TMPDIR=$T/bah-tmp buildah --root $T/bah-root --runroot $T/bah-run --storage-driver overlay"
bah_cmd() { # ctx dest [extra]: private TMPDIR (buildah keeps cache mounts under TMPDIR)
  echo "rm -rf $2 && mkdir -p $T/bah-tmp && $B bud --isolation chroot --format docker \
    --identity-label=false --build-arg BASE=$BASE ${3:-} -t localhost/bench:1 $1 >/dev/null &&
    $B push -q --compression-format gzip --compression-level $KILN_GZIP_LEVEL localhost/bench:1 oci:$2:1 >/dev/null"
}
BAH_FRESH="$B rmi -a -f; $B rm -a; umount -R $T/bah-root/overlay; rm -rf $T/bah-root $T/bah-run $T/bah-tmp"
mkdir -p "$T/o"
bench_header
echo "big tree: $TREE ($(du -sb "$TREE" | cut -f1) bytes)"
rounds \
  kiln-tiny "rm -rf $T/kr" "$(kiln_cmd "$T/kr" "$T/tiny" "$T/o/kt")" \
  buildah-tiny "$BAH_FRESH" "$(bah_cmd "$T/tiny" "$T/o/bt")" \
  kiln-big "rm -rf $T/kr" "$(kiln_cmd "$T/kr" "$T/big" "$T/o/kb")" \
  buildah-big "$BAH_FRESH" "$(bah_cmd "$T/big" "$T/o/bb" --layers)" \
  kiln-again "" "$(kiln_cmd "$T/kr" "$T/big" "$T/o/kb2")" \
  buildah-again "" "$(bah_cmd "$T/big" "$T/o/bb2" --layers)"
stats_table
echo
ratio_line tiny kiln-tiny buildah-tiny "(target <= 0.3)"
ratio_line big kiln-big buildah-big "(target <= 0.25)"
ratio_line again kiln-again buildah-again "(target <= 0.1)"
echo "peak RSS of kiln (target <= 100 MiB): tiny $(stats kiln-tiny | cut -d' ' -f4), big $(stats kiln-big | cut -d' ' -f4), again $(stats kiln-again | cut -d' ' -f4) MiB"
read -r kc ku < <(layers_size "$T/o/kb")
read -r bc bu < <(layers_size "$T/o/bb")
echo "big image layers: kiln $kc bytes gzip ($ku tar), buildah $bc ($bu): kiln/buildah $(ratio "$kc" "$bc") compressed"
bench_footer
