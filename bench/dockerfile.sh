#!/usr/bin/env bash
# kiln build vs buildah bud (--isolation chroot, overlay storage, a private TMPDIR), to an OCI
# layout, both compressing at gzip level 3 (kiln's default, buildah push --compression-level 3):
#   tiny   busybox base, RUN + COPY                      target kiln <= 0.3x buildah
#   big    COPY of a ~1.1 GB tree + RUN, gzip            target kiln <= 0.25x buildah
#   again  the big build with nothing changed            target kiln <= 0.1x buildah --layers
#   peak RSS of kiln in each                             target <= 100 MiB
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
# Prints "seconds maxrss_kb" for a command.
measure() {
  /usr/bin/time -f "%e %M" -o "$T/time" "$@" >"$T/out.log" 2>&1 || { tail -20 "$T/out.log" >&2; return 1; }
  cat "$T/time"
}
kiln_build() { # ctx dest [extra…]
  local ctx=$1 dest=$2; shift 2
  measure "$KILN" build --root "$T/kiln-root" --progress quiet --compression-level "$KILN_GZIP_LEVEL" --build-arg "BASE=$BASE" \
    -o "type=oci,dest=$dest" "$@" "$ctx"
}
buildah_build() { # ctx dest [extra…]
  local ctx=$1 dest=$2; shift 2
  cat >"$T/bah.sh" <<EOF
set -e
export TMPDIR=$T/bah-tmp # private: buildah's cache mounts live under TMPDIR, not --root
mkdir -p "\$TMPDIR"
buildah --root "$T/bah-root" --runroot "$T/bah-run" --storage-driver overlay bud --isolation chroot \
  --format docker --identity-label=false --build-arg "BASE=$BASE" $* -t localhost/bench:1 "$ctx" >/dev/null
buildah --root "$T/bah-root" --runroot "$T/bah-run" --storage-driver overlay push --compression-format gzip --compression-level $KILN_GZIP_LEVEL localhost/bench:1 "oci:$dest:1" >/dev/null
EOF
  measure bash "$T/bah.sh"
}
ratio() { python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9)))" "$1" "$2"; }

report() { # name kiln_s kiln_rss buildah_s target
  printf '%-6s kiln %7.2fs (peak RSS %4d MiB)   buildah %7.2fs   ratio %s (target <= %s)\n' \
    "$1" "$2" $(($3 / 1024)) "$4" "$(ratio "$2" "$4")" "$5"
}

read -r kt kr < <(kiln_build "$T/tiny" "$T/out-kiln-tiny")
read -r bt _ < <(buildah_build "$T/tiny" "$T/out-bah-tiny")
report tiny "$kt" "$kr" "$bt" 0.3

read -r kt kr < <(kiln_build "$T/big" "$T/out-kiln-big")
read -r bt _ < <(buildah_build "$T/big" "$T/out-bah-big" --layers)
report big "$kt" "$kr" "$bt" 0.25

read -r kt kr < <(kiln_build "$T/big" "$T/out-kiln-big2")
read -r bt _ < <(buildah_build "$T/big" "$T/out-bah-big2" --layers)
report again "$kt" "$kr" "$bt" 0.1
