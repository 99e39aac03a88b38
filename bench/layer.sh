#!/usr/bin/env bash
# Layer packing benchmark: kiln import of a copy of /usr/lib/x86_64-linux-gnu
# (~1.1 GB, ~6,000 files) into a single-layer image, side by side with
#   gzip: tar -c | gzip -6 | sha256sum
#   zstd: tar -c | tee >(sha256sum) | zstd -3 -T0 | sha256sum
# Medians of RUNS runs (default 3) on a warm page cache; peak RSS of kiln via
# /usr/bin/time -v. kiln does more than the baselines: it also hashes the
# uncompressed stream (gzip), stores the blob (temp file, fsync, rename) and
# writes the image config and manifest.
#
#   KILN_BIN=build/src/kiln bash bench/layer.sh [SOURCE_DIR]
# Targets: gzip >= 8x faster with output <= 1.2x; zstd >= 0.9x; RSS <= 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN_BIN:-$PWD/build/src/kiln}
SRC=${1:-/usr/lib/x86_64-linux-gnu}
RUNS=${RUNS:-3}
[ -x "$KILN" ] || { echo "kiln binary not found at $KILN (set KILN_BIN)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-bench-layer.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "copying $SRC ..." >&2
cp -a "$SRC" "$W/tree"
files=$(find "$W/tree" | wc -l)
bytes=$(du -sb "$W/tree" | cut -f1)
tar -C "$W/tree" -cf - . >/dev/null # warm the page cache

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

# run_timed NAME COMMAND...: runs RUNS times, prints the median wall time.
run_timed() {
  local name=$1 i t0 t1; shift
  for ((i = 0; i < RUNS; i++)); do
    t0=$(now); "$@"; t1=$(now)
    echo "$t1 - $t0" | bc -l
  done | median
}

base_gzip() { tar -C "$W/tree" -cf - . | gzip -6 | tee >(wc -c >"$W/gzip.size") | sha256sum >/dev/null; }
base_zstd() {
  tar -C "$W/tree" -cf - . | tee >(sha256sum >/dev/null) | zstd -3 -T0 -q |
    tee >(wc -c >"$W/zstd.size") | sha256sum >/dev/null
}
# kiln_import COMPRESSION: a fresh store each run (the blob is really written).
kiln_import() {
  rm -rf "$W/store"
  /usr/bin/time -v -o "$W/time.$1" "$KILN" import "$W/tree" -t bench/layer:1 --root "$W/store" \
    --compression "$1" >/dev/null 2>"$W/kiln.$1.err"
  grep 'Maximum resident' "$W/time.$1" | awk '{print $NF}' >>"$W/rss.$1"
  sed -n 's/.*layer sha256:[0-9a-f]*, \([0-9]*\) bytes.*/\1/p' "$W/kiln.$1.err" >"$W/kiln.$1.size"
}

echo "tree: $files files, $bytes bytes; $RUNS runs each" >&2
t_kg=$(run_timed kiln-gzip kiln_import gzip)
t_kz=$(run_timed kiln-zstd kiln_import zstd)
t_bz=$(run_timed zstd base_zstd)
t_bg=$(run_timed gzip base_gzip)

s_bg=$(cat "$W/gzip.size"); s_bz=$(cat "$W/zstd.size")
s_kg=$(cat "$W/kiln.gzip.size"); s_kz=$(cat "$W/kiln.zstd.size")
rss_g=$(sort -n "$W/rss.gzip" | tail -1); rss_z=$(sort -n "$W/rss.zstd" | tail -1)

r_gspeed=$(echo "$t_bg / $t_kg" | bc -l)
r_gsize=$(echo "$s_kg / $s_bg" | bc -l)
r_zthru=$(echo "$t_bz / $t_kz" | bc -l)
mb() { echo "$bytes / $1 / 1000000" | bc -l; }

printf '%-34s %8s %10s %14s %10s\n' "" "median s" "MB/s" "output bytes" "peak RSS"
printf '%-34s %8.2f %10.0f %14d %10s\n' "tar | gzip -6 | sha256sum" "$t_bg" "$(mb "$t_bg")" "$s_bg" "-"
printf '%-34s %8.2f %10.0f %14d %7d KiB\n' "kiln import --compression gzip" "$t_kg" "$(mb "$t_kg")" "$s_kg" "$rss_g"
printf '%-34s %8.2f %10.0f %14d %10s\n' "tar | tee sha256 | zstd -3 -T0 | sha" "$t_bz" "$(mb "$t_bz")" "$s_bz" "-"
printf '%-34s %8.2f %10.0f %14d %7d KiB\n' "kiln import --compression zstd" "$t_kz" "$(mb "$t_kz")" "$s_kz" "$rss_z"
echo
verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo "ok"; else echo "MISSED"; fi; }
printf 'gzip speed:  kiln is %.1fx faster than gzip -6 (target >= 8x): %s\n' "$r_gspeed" \
  "$(verdict "$r_gspeed >= 8")"
printf 'gzip size:   kiln output is %.3fx gzip -6 (target <= 1.2x): %s\n' "$r_gsize" \
  "$(verdict "$r_gsize <= 1.2")"
printf 'zstd speed:  kiln throughput is %.2fx the zstd baseline (target >= 0.9x): %s\n' "$r_zthru" \
  "$(verdict "$r_zthru >= 0.9")"
max_rss=$((rss_g > rss_z ? rss_g : rss_z))
printf 'peak RSS:    %d KiB (target <= 65536 KiB): %s\n' "$max_rss" "$(verdict "$max_rss <= 65536")"
