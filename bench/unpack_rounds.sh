#!/usr/bin/env bash
# Pull + unpack of a real base image (kiln's node-build by default) from a local
# docker-registry with `kiln pull -o type=local`, against `tar -xf` of its layers from plain
# tars on the same kind of disk: each round on a new file system (bench_newfs), after `sync`
# and 2 s idle, so that no round pays for the writeback of the one before (registry.sh's base
# case runs without that pause: there the case right after tar-xf-base pays for tar's
# writeback). Optionally a busy loop on one CPU beside every command (BUSY=1): a worker shared
# with another build.
#
#   KILN_BIN       the kiln binary (default build/src/kiln, the README's; built if absent)
#   KILN_BASELINE  another kiln binary, in the same rounds as "old-unpack"
#   BENCH_BASE     the OCI layout (default /var/cache/kiln/images/node-build)
#   BENCH_TREE=DIR instead: a one-layer image of DIR made by `kiln import` (kiln's own gzip, as
#                  kiln writes its layers), e.g. a directory of big binaries
#   SEQ=1          also the same kiln with KILN_INFLATE_THREADS=0 (no chunk decoded ahead by
#                  oci/pinflate's workers: one inflate thread per layer), as "seq-unpack"
#   BUSY=1         a busy loop beside each command
#   FLOOR=1        also "igzip-tar": every layer at once, `curl | igzip -dc | tar -x` from the
#                  same registry into a directory of its own (ISA-L's inflate, as kiln's; no
#                  digest checked, no layer merged): the least any pull + unpack that must
#                  inflate does, on the same CPUs
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh
bench_kiln
BASE=${BENCH_BASE:-/var/cache/kiln/images/node-build}
[ -n "${BENCH_TREE:-}" ] || [ -f "$BASE/index.json" ] ||
  { echo "no OCI layout at $BASE (set BENCH_BASE)" >&2; exit 1; }
W=$(mktemp -d /var/tmp/kiln-bench-unpack.XXXXXX)
T=$W
: >"$T/times"
cleanup() {
  [ -f "$W/reg.pid" ] && kill "$(cat "$W/reg.pid")" 2>/dev/null || true
  [ -f "$W/busy.pid" ] && kill "$(cat "$W/busy.pid")" 2>/dev/null || true
  for d in "$W"/fs-*; do [ -e "$d" ] && bench_dropfs "$d"; done
  rm -rf "$W"
}
trap cleanup EXIT
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
  "$W/reg" "$port" >"$W/reg.yml"
/usr/bin/docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
echo $! >"$W/reg.pid"
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
REG="--insecure-registry 127.0.0.1:$port"
IMG=127.0.0.1:$port/bench/base:1
if [ -n "${BENCH_TREE:-}" ]; then # kiln's own layer of the tree, and its layout for tar -xf
  "$KILN" import "$BENCH_TREE" -t "$IMG" --root "$W/istore" >/dev/null 2>&1
  "$KILN" push --progress=none --root "$W/istore" $REG "$IMG" >/dev/null
  rm -rf "$W/istore"
  BASE=$W/tree
  "$KILN" copy $REG "$IMG" "oci:$BASE" >/dev/null
else
  "$KILN" push --progress=none $REG "oci:$BASE" "$IMG" >/dev/null
fi
python3 - "$BASE" "$W/plain" <<'PY'
import gzip, json, os, shutil, sys
d, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
m = json.load(open(blob(json.load(open(os.path.join(d, "index.json")))["manifests"][0]["digest"])))
with open(os.path.join(out, "layers"), "w") as f:
    f.write(" ".join(l["digest"] for l in m["layers"]))
for i, l in enumerate(m["layers"]):
    with gzip.open(blob(l["digest"])) as src, open(os.path.join(out, "%d.tar" % i), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
if [ "${BUSY:-0}" = 1 ]; then
  bash -c 'while :; do :; done' &
  echo $! >"$W/busy.pid"
fi
pause="sync; sleep 2"
if [ -n "${FLOOR:-}" ]; then
  command -v igzip >/dev/null || { echo "FLOOR=1 needs igzip (Debian's isal)" >&2; exit 2; }
  { echo '#!/bin/bash'; echo 'set -eo pipefail; n=0'
    for d in $(cat "$W/plain/layers"); do
      echo "mkdir -p $W/fs-floor/\$n; { curl -sf http://127.0.0.1:$port/v2/bench/base/blobs/$d | igzip -dc | tar -x -C $W/fs-floor/\$n; } & n=\$((n + 1))"
    done
    echo 'for p in $(jobs -p); do wait $p; done'
  } >"$W/floor.sh"
  chmod +x "$W/floor.sh"
fi
rounds \
  tar-xf "bench_newfs $W/fs-tar; $pause" "for f in $W/plain/*.tar; do tar -xf \$f -C $W/fs-tar 2>/dev/null || exit 1; done" \
  kiln-unpack "bench_newfs $W/fs-kiln; $pause" "$KILN pull --progress=none --root $W/fs-kiln/store $REG -o type=local,dest=$W/fs-kiln/out $IMG" \
  ${KILN_BASELINE:+old-unpack "bench_newfs $W/fs-old; $pause" "$KILN_BASELINE pull --progress=none --root $W/fs-old/store $REG -o type=local,dest=$W/fs-old/out $IMG"} \
  ${FLOOR:+igzip-tar "bench_newfs $W/fs-floor; $pause" "$W/floor.sh"} \
  ${SEQ:+seq-unpack "bench_newfs $W/fs-seq; $pause" "KILN_INFLATE_THREADS=0 $KILN pull --progress=none --root $W/fs-seq/store $REG -o type=local,dest=$W/fs-seq/out $IMG"}
a=$(cd "$W/fs-tar" && find . ! -name '.wh.*' ! -name lost+found | wc -l)
b=$(cd "$W/fs-kiln/out" && find . | wc -l)
[ "$b" -le "$a" ] && [ $((b * 100)) -ge $((a * 95)) ] || { echo "kiln unpacked $b entries, tar $a"; exit 1; }

bench_header
echo "image: $BASE ($(du -sh "$BASE" | cut -f1), $b entries); docker-registry on loopback; busy loop beside: ${BUSY:-0}"
stats_table
echo
ratio_line unpack-floor kiln-unpack tar-xf "(target <= 1.1: plain tar -xf of its layers)"
[ -z "${KILN_BASELINE:-}" ] || ratio_line unpack-vs-old kiln-unpack old-unpack "($KILN_BASELINE)"
[ -z "${FLOOR:-}" ] || ratio_line unpack-vs-igzip kiln-unpack igzip-tar "(curl | igzip -dc | tar -x, every layer at once, nothing checked)"
[ -z "${SEQ:-}" ] || ratio_line unpack-vs-seq kiln-unpack seq-unpack "(KILN_INFLATE_THREADS=0: no chunk decoded ahead)"
bench_footer
