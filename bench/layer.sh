#!/usr/bin/env bash
# Layer packing benchmark: kiln import of a copy of /usr/lib/x86_64-linux-gnu
# (~1.1 GB, ~6,000 files) into a single-layer image, side by side with
#   gzip: tar -c | gzip -6 | sha256sum
#   zstd: tar -c | tee >(sha256sum) | zstd -3 -T0 | sha256sum
# Medians of RUNS runs (default 5) on a warm page cache; peak RSS of kiln via
# /usr/bin/time -v. kiln does more than the baselines: it also hashes the
# uncompressed stream (gzip), stores the blob (temp file, fsync, rename) and
# writes the image config and manifest.
#
#   KILN_BIN=build/src/kiln bash bench/layer.sh [SOURCE_DIR]
# Targets: gzip >= 8x faster with output <= 1.2x; zstd >= 0.9x; RSS <= 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
SRC=${1:-/usr/lib/x86_64-linux-gnu}
RUNS=${RUNS:-5}
[ -x "$KILN" ] || { echo "kiln binary not found at $KILN (set KILN_BIN)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-bench-layer.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "copying $SRC ..." >&2
cp -a "$SRC" "$W/tree"
files=$(find "$W/tree" | wc -l)
bytes=$(du -sb "$W/tree" | cut -f1)
tar -C "$W/tree" -cf - . >/dev/null # warm the page cache

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# run_timed NAME FUNCTION: runs RUNS times under /usr/bin/time, prints the
# median wall time; the median CPU time (user+sys, all processes) goes to
# $W/cpu.NAME and the peak RSS of the largest process to $W/rss.NAME.
run_timed() {
  local name=$1 fn=$2 i
  for ((i = 0; i < RUNS; i++)); do
    /usr/bin/time -f '%e %U %S %M' -o "$W/t" bash -c "$fn"
    read -r e u s m <"$W/t"
    echo "$u + $s" | bc -l >>"$W/cpus.$name"
    echo "$m" >>"$W/rss.$name"
    echo "$e"
  done | median
  median <"$W/cpus.$name" >"$W/cpu.$name"
}

base_gzip() { tar -C "$W/tree" -cf - . | gzip -6 | tee >(wc -c >"$W/gzip.size") | sha256sum >/dev/null; }
base_zstd() {
  tar -C "$W/tree" -cf - . | tee >(sha256sum >/dev/null) | zstd -3 -T0 -q |
    tee >(wc -c >"$W/zstd.size") | sha256sum >/dev/null
}
# kiln_import COMPRESSION: a fresh store each run (the blob is really written).
kiln_import() {
  rm -rf "$W/store"
  "$KILN" import "$W/tree" -t bench/layer:1 --root "$W/store" --compression "$1" \
    >/dev/null 2>"$W/kiln.$1.err"
  sed -n 's/.*layer sha256:[0-9a-f]*, \([0-9]*\) bytes.*/\1/p' "$W/kiln.$1.err" >"$W/kiln.$1.size"
}
kiln_gzip() { kiln_import gzip; }
kiln_zstd() { kiln_import zstd; }
export W KILN
export -f base_gzip base_zstd kiln_import kiln_gzip kiln_zstd

echo "tree: $files files, $bytes bytes; $RUNS runs each" >&2
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
t_kg=$(run_timed kgzip kiln_gzip)
t_kz=$(run_timed kzstd kiln_zstd)
t_bz=$(run_timed bzstd base_zstd)
t_bg=$(run_timed bgzip base_gzip)

s_bg=$(cat "$W/gzip.size"); s_bz=$(cat "$W/zstd.size")
s_kg=$(cat "$W/kiln.gzip.size"); s_kz=$(cat "$W/kiln.zstd.size")
rss_g=$(sort -n "$W/rss.kgzip" | tail -1); rss_z=$(sort -n "$W/rss.kzstd" | tail -1)
c_bg=$(cat "$W/cpu.bgzip"); c_kg=$(cat "$W/cpu.kgzip"); c_bz=$(cat "$W/cpu.bzstd"); c_kz=$(cat "$W/cpu.kzstd")

r_gspeed=$(echo "$t_bg / $t_kg" | bc -l)
r_gsize=$(echo "$s_kg / $s_bg" | bc -l)
r_zthru=$(echo "$t_bz / $t_kz" | bc -l)
mb() { echo "$bytes / $1 / 1000000" | bc -l; }

echo "load average before/after: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg) (other work skews wall times)"
printf '%-36s %8s %8s %8s %14s %11s\n' "" "median s" "MB/s" "CPU s" "output bytes" "peak RSS"
row() { printf '%-36s %8.2f %8.0f %8.2f %14d %7s KiB\n' "$1" "$2" "$(mb "$2")" "$3" "$4" "$5"; }
rss_bg=$(sort -n "$W/rss.bgzip" | tail -1); rss_bz=$(sort -n "$W/rss.bzstd" | tail -1)
row "tar | gzip -6 | sha256sum" "$t_bg" "$c_bg" "$s_bg" "$rss_bg"
row "kiln import --compression gzip" "$t_kg" "$c_kg" "$s_kg" "$rss_g"
row "tar | tee sha256 | zstd -3 -T0 | sha" "$t_bz" "$c_bz" "$s_bz" "$rss_bz"
row "kiln import --compression zstd" "$t_kz" "$c_kz" "$s_kz" "$rss_z"
echo
verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo "ok"; else echo "MISSED"; fi; }
printf 'gzip speed:  kiln is %.1fx faster than gzip -6 (target >= 8x): %s\n' "$r_gspeed" \
  "$(verdict "$r_gspeed >= 8")"
printf 'gzip size:   kiln output is %.3fx gzip -6 (target <= 1.2x): %s\n' "$r_gsize" \
  "$(verdict "$r_gsize <= 1.2")"
printf 'zstd speed:  kiln throughput is %.2fx the zstd baseline (target >= 0.9x): %s\n' "$r_zthru" \
  "$(verdict "$r_zthru >= 0.9")"
printf 'CPU time:    gzip %.1fx less than the baseline, zstd %.2fx less\n' "$(echo "$c_bg / $c_kg" | bc -l)" \
  "$(echo "$c_bz / $c_kz" | bc -l)"
max_rss=$((rss_g > rss_z ? rss_g : rss_z))
printf 'peak RSS:    %d KiB (target <= 65536 KiB): %s\n' "$max_rss" "$(verdict "$max_rss <= 65536")"
