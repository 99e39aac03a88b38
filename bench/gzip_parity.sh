#!/usr/bin/env bash
# gzip output-size parity: one mixed tree (node_modules-like JS/text plus ELF
# binaries and shared libraries) packed into a single gzip layer by
#   kiln import --compression gzip --compression-level L   (L = 1, 2, 3; ISA-L)
#   buildah commit (its default gzip, the size peer)
#   tar -c | gzip -6                                        (the speed peer)
# Prints medians of RUNS runs (default 5) with min/max, the kiln / buildah size
# ratio (goal <= 1.02x) and the `tar | gzip -6` / kiln time ratio (goal >= 6x).
# buildah runs on the overlay driver when it works here, vfs otherwise; the
# driver does not change the blob's bytes.
#
#   KILN_BIN=build/src/kiln bash bench/gzip_parity.sh [TREE_DIR]
# Without TREE_DIR the tree is assembled from /usr/lib/node_modules,
# /usr/share/perl, /usr/share/python3 and a few binaries/libraries (~60 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
RUNS=${RUNS:-5}
LEVELS=${LEVELS:-1 2 3}
[ -x "$KILN" ] || { echo "kiln binary not found at $KILN (set KILN_BIN)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "buildah not installed" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-bench-gzip.XXXXXX")
B="buildah --root $W/broot --runroot $W/brun"
cleanup() { $B rm -a >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
if [ $# -ge 1 ]; then
  TREE=$1
else
  TREE=$W/tree
  mkdir -p "$TREE/app" "$TREE/bin"
  cp -a /usr/lib/node_modules "$TREE/app/node_modules"
  cp -a /usr/share/perl /usr/share/python3 "$TREE/app/" 2>/dev/null || true
  for f in /usr/bin/buildah /usr/bin/gzip /usr/lib/x86_64-linux-gnu/libcrypto.so.3 \
    /usr/lib/x86_64-linux-gnu/libgit2.so*; do
    [ -e "$f" ] && cp -a "$f" "$TREE/bin/"
  done
fi
files=$(find "$TREE" | wc -l)
bytes=$(du -sb "$TREE" | cut -f1)
tar -C "$TREE" -cf - . >/dev/null # warm the page cache

# stats: "median min max" of the numbers on stdin.
stats() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1], a[NR]}'; }
# timed NAME CMD: runs CMD RUNS times; wall times to $W/t.NAME, peak RSS to $W/m.NAME.
timed() {
  local name=$1 i
  shift
  for ((i = 0; i < RUNS; i++)); do
    /usr/bin/time -f '%e %M' -o "$W/tm" bash -c "$*"
    read -r e m <"$W/tm"
    echo "$e" >>"$W/t.$name"
    echo "$m" >>"$W/m.$name"
  done
}

DRIVER=overlay
c=$($B --storage-driver overlay from scratch 2>/dev/null) || { DRIVER=vfs; c=$($B --storage-driver vfs from scratch); }
B="$B --storage-driver $DRIVER"
$B copy "$c" "$TREE" / >/dev/null
export W TREE KILN B c
timed gzip6 'tar -C "$TREE" -cf - . | gzip -6 | wc -c >"$W/s.gzip6"'
timed buildah 'rm -rf "$W/boci"; $B commit -q --disable-compression=false --format oci "$c" "oci:$W/boci:x" >/dev/null &&
  find "$W/boci/blobs" -type f -printf "%s\n" | sort -n | tail -1 >"$W/s.buildah"'
for l in $LEVELS; do
  timed "kiln$l" 'rm -rf "$W/st"; "$KILN" import "$TREE" -t b/l:1 --root "$W/st" --compression gzip \
    --compression-level '"$l"' 2>&1 >/dev/null | sed -n "s/.*layer sha256:[0-9a-f]*, \([0-9]*\) bytes.*/\1/p" >"$W/s.kiln'"$l"'"'
done
timed kilndef 'rm -rf "$W/st"; "$KILN" import "$TREE" -t b/l:1 --root "$W/st" \
  2>&1 >/dev/null | sed -n "s/.*layer sha256:[0-9a-f]*, \([0-9]*\) bytes.*/\1/p" >"$W/s.kilndef"'

echo "tree: $files files, $bytes bytes; $RUNS runs each; buildah on $DRIVER; $(nproc) cores"
printf '%-40s %8s %8s %8s %12s %10s\n' "" "median s" "min" "max" "bytes" "peak KiB"
row() {
  read -r med mn mx < <(stats <"$W/t.$2")
  printf '%-40s %8.2f %8.2f %8.2f %12d %10d\n' "$1" "$med" "$mn" "$mx" "$(cat "$W/s.$2")" \
    "$(sort -n "$W/m.$2" | tail -1)"
}
row "tar | gzip -6" gzip6
row "buildah commit (gzip default)" buildah
for l in $LEVELS; do row "kiln import --compression-level $l" "kiln$l"; done
row "kiln import (defaults)" kilndef
echo
t_g=$(stats <"$W/t.gzip6" | cut -d' ' -f1)
s_b=$(cat "$W/s.buildah")
for n in $LEVELS def; do
  read -r t _ < <(stats <"$W/t.kiln$n")
  printf 'kiln level %-4s size %.3fx buildah (goal <= 1.02x), speed %.1fx tar|gzip -6 (goal >= 6x)\n' \
    "$n" "$(echo "$(cat "$W/s.kiln$n") / $s_b" | bc -l)" "$(echo "$t_g / $t" | bc -l)"
done
