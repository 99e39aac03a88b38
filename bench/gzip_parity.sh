#!/usr/bin/env bash
# gzip output-size parity: one mixed tree (node_modules JS, Perl and Python sources, Python
# extension modules, ELF binaries and shared libraries; ~216 MiB, ~17k files) packed into a
# single gzip layer by
#   kiln import --compression gzip --compression-level L   (L in LEVELS; libdeflate levels)
#   kiln import                                             (kiln's default)
#   buildah commit (overlay driver; its default gzip: pgzip at level 6) - the size peer
#   tar -c | gzip -6                                        - the speed peer
# RUNS rounds (default 5), the commands interleaved round by round; medians with min/max
# and peak RSS; then one line per kiln level: size / buildah's (goal <= 1.02x) and
# `tar | gzip -6` time / kiln's (goal >= 6x).
#   KILN_BASE=BIN  also times BIN (e.g. kiln built from an earlier commit) at its default,
#                  side by side: a "kiln-base" case and a base / kiln line
#   COLD=1         each command reads the tree from the disk: its files are dropped from the
#                  page cache (posix_fadvise DONTNEED, untimed) before every run; default: warm
#
#   bash bench/gzip_parity.sh [TREE_DIR]        (KILN_BIN=... to measure another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
LEVELS=${LEVELS:-1 2 4 6}
command -v buildah >/dev/null || { echo "buildah not installed" >&2; exit 1; }
bench_scratch gzip
if [ $# -ge 1 ]; then
  TREE=$1
else
  TREE=$T/tree
  mkdir -p "$TREE/app" "$TREE/bin" "$TREE/py"
  cp -a /usr/lib/node_modules "$TREE/app/node_modules"
  cp -a /usr/share/perl "$TREE/app/"
  cp -a /usr/lib/python3/dist-packages "$TREE/py/"
  for f in /usr/bin/buildah /usr/bin/gzip /usr/lib/x86_64-linux-gnu/libcrypto.so.3 \
    /usr/lib/x86_64-linux-gnu/libgit2.so*; do
    [ -e "$f" ] && cp -a "$f" "$TREE/bin/"
  done
fi
files=$(find "$TREE" | wc -l)
bytes=$(du -sb "$TREE" | cut -f1)
# warm the page cache (tar writing to /dev/null itself would skip reading the files)
tar -C "$TREE" -cf - . | cat >/dev/null

bench_header
echo "tree: $files files, $bytes bytes"
c=$(bah from scratch)
bah copy "$c" "$TREE" / >/dev/null
# the size of the one layer blob kiln's import reports on stderr
kiln_cmd() { # size-file [flags] [binary]
  echo "rm -rf $T/st; \"${3:-$KILN}\" import \"$TREE\" -t b/l:1 --root $T/st ${2:-} 2>&1 >/dev/null |
    sed -n 's/.*layer sha256:[0-9a-f]*, \([0-9]*\) bytes.*/\1/p' >$T/s.$1"
}
prep=""
[ "${COLD:-0}" != 1 ] || { prep=$(evict_cmd "$TREE"); echo "cold: the tree's pages dropped before each run"; }
args=(
  gzip6 "$prep" "tar -C \"$TREE\" -cf - . | gzip -6 | wc -c >$T/s.gzip6"
  buildah-commit "" "rm -rf $T/boci; $(BAH_CMD) commit -q --disable-compression=false --format oci $c \
    oci:$T/boci:x >/dev/null && find $T/boci/blobs -type f -printf '%s\n' | sort -n | tail -1 >$T/s.buildah-commit"
  kiln-default "$prep" "$(kiln_cmd kiln-default)"
)
[ -z "${KILN_BASE:-}" ] || args+=(kiln-base "$prep" "$(kiln_cmd kiln-base "" "$(realpath "$KILN_BASE")")")
for l in $LEVELS; do
  args+=("kiln-$l" "$prep" "$(kiln_cmd "kiln-$l" "--compression gzip --compression-level $l")")
done
rounds "${args[@]}"

stats_table
echo
printf '%-22s %12s\n' output bytes
bases=${KILN_BASE:+kiln-base}
for n in gzip6 buildah-commit kiln-default $bases $(for l in $LEVELS; do echo "kiln-$l"; done); do
  printf '%-22s %12s\n' "$n" "$(cat "$T/s.$n")"
done
echo
s_b=$(cat "$T/s.buildah-commit")
for n in kiln-default $bases $(for l in $LEVELS; do echo "kiln-$l"; done); do
  printf '%-14s size %s / buildah %.3fx (goal <= 1.02x)  speed tar|gzip -6 / kiln: wall %s (goal >= 6x), CPU %s\n' \
    "$n" "$(cat "$T/s.$n")" "$(echo "$(cat "$T/s.$n") / $s_b" | bc -l)" "$(ratio "$(med gzip6)" "$(med "$n")")" \
    "$(ratio "$(cpu_med gzip6)" "$(cpu_med "$n")")"
done
[ -z "${KILN_BASE:-}" ] ||
  printf 'kiln-base / kiln-default: wall %s, CPU %s (%s against %s)\n' \
    "$(ratio "$(med kiln-base)" "$(med kiln-default)")" \
    "$(ratio "$(cpu_med kiln-base)" "$(cpu_med kiln-default)")" "$KILN_BASE" "$KILN"
bench_footer
