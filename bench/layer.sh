#!/usr/bin/env bash
# Layer write speed: `kiln import` of a directory into a one-layer image in a fresh store (tar +
# compression + the SHA-256 of the tar and of the blob + the blob written, fsync'ed and renamed
# + config and manifest), side by side with the shell pipelines doing less of that work:
#   gzip   tar -c | gzip -6 | sha256sum                         (the #18 speed peer: goal >= 6x)
#   zstd   tar -c | tee >(sha256sum) | zstd -3 -T0 | sha256sum  (goal >= 0.9x its throughput)
# kiln at its default gzip (libdeflate level 3, one thread per CPU, one gzip member) and zstd
# level 3. The tree is read in place (never copied): default /usr/lib/x86_64-linux-gnu.
# RUNS rounds (default 5), the commands in turn each round on a warm page cache; medians with
# min/max, median CPU (user + system, children included) and peak RSS, then one ratio line per
# case for wall and CPU time, and the output sizes.
#
#   bash bench/layer.sh [SOURCE_DIR]        (KILN_BIN=... to measure another binary)
# KILN_BASE=BIN also times BIN's gzip layer (e.g. kiln built from an earlier commit) side by
# side: a "kiln-base-gzip" case and a base / kiln line.
# Bytes against buildah (goal <= 1.02x) are gzip_parity.sh's part.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
SRC=$(realpath "${1:-/usr/lib/x86_64-linux-gnu}")
bench_scratch layer
files=$(find "$SRC" | wc -l)
bytes=$(du -sb "$SRC" | cut -f1)
# warm the page cache (tar writing to /dev/null itself would skip reading the files)
tar -C "$SRC" -cf - . | cat >/dev/null

bench_header
echo "tree: $SRC, $files files, $bytes bytes"
# a fresh store each run (the blob is really written); its size from kiln's report
kiln_cmd() { # compression [binary] [case]
  echo "rm -rf $T/st; \"${2:-$KILN}\" import \"$SRC\" -t b/l:1 --root $T/st --compression $1 2>&1 >/dev/null |
    sed -n 's/.*layer sha256:[0-9a-f]*, \([0-9]*\) bytes.*/\1/p' >$T/s.${3:-kiln-$1}"
}
base=()
[ -z "${KILN_BASE:-}" ] || base=(kiln-base-gzip "" "$(kiln_cmd gzip "$(realpath "$KILN_BASE")" kiln-base-gzip)")
rounds "${base[@]}" \
  gzip6 "" "tar -C \"$SRC\" -cf - . | gzip -6 | tee >(wc -c >$T/s.gzip6) | sha256sum >/dev/null" \
  kiln-gzip "" "$(kiln_cmd gzip)" \
  zstd3 "" "tar -C \"$SRC\" -cf - . | tee >(sha256sum >/dev/null) | zstd -3 -T0 -q |
    tee >(wc -c >$T/s.zstd3) | sha256sum >/dev/null" \
  kiln-zstd "" "$(kiln_cmd zstd)"

stats_table
echo
printf '%-12s %12s\n' output bytes
for n in gzip6 kiln-gzip ${KILN_BASE:+kiln-base-gzip} zstd3 kiln-zstd; do printf '%-12s %12s\n' "$n" "$(cat "$T/s.$n")"; done
echo
speed() { # case peer kiln goal
  printf '%-6s wall %s/%s %5s  CPU %5s  size kiln/peer %s  (%s)\n' "$1" "$2" "$3" \
    "$(ratio "$(med "$2")" "$(med "$3")")" "$(ratio "$(cpu_med "$2")" "$(cpu_med "$3")")" \
    "$(ratio "$(cat "$T/s.$3")" "$(cat "$T/s.$2")")" "$4"
}
speed gzip gzip6 kiln-gzip "peer/kiln: goal >= 6x"
speed zstd zstd3 kiln-zstd "peer/kiln: goal >= 0.9x"
[ -z "${KILN_BASE:-}" ] ||
  printf 'kiln-base-gzip / kiln-gzip: wall %s, CPU %s (%s against %s)\n' \
    "$(ratio "$(med kiln-base-gzip)" "$(med kiln-gzip)")" \
    "$(ratio "$(cpu_med kiln-base-gzip)" "$(cpu_med kiln-gzip)")" "$KILN_BASE" "$KILN"
bench_footer
