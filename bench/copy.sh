#!/usr/bin/env bash
# COPY of a big build context: `FROM scratch / COPY . /src/` over a tree of N source-like files
# (the trees of bench/statcache.sh, cached under /var/cache/kiln/bench-statcache-<N>), built
# into an OCI layout, against
#   floor    tar -cf - -C CTX . | gzip -1 | sha256sum   (read every file once, compress, hash)
#   buildah  buildah 1.28, overlay storage driver, `build --layers` then `push` to an oci: layout
#            with gzip level 1 (kiln's gzip level: ISA-L level 1)
# Cases (each kiln and buildah with their own root, kept across the rounds of a case):
#   cold     a fresh root (no cache, no stat cache)
#   nochange the same build again, nothing changed
#   onefile  one file of the context changed before each build
# and 10k vs 100k files (cold) for scaling. The compared commands of a case run in turn, round
# after round (RUNS rounds, default 5), so a busy shared machine weighs on all alike; each
# command under /usr/bin/time -v: the median, min and max wall seconds and the peak RSS (MiB,
# largest over the rounds and over the command's processes) are printed, then one ratio line per
# case: kiln/floor and kiln/buildah (medians). Targets: cold 100k kiln/floor <= 1.5; 100k/10k
# cold <= 13.
# Usage: KILN_BIN=build/src/kiln bench/copy.sh   (env: RUNS=5, SIZES="10000 100000",
#        CASES="cold nochange onefile", BUILDAH=0 to leave buildah out, BUILDAH_RUNS=RUNS: buildah in
#        only the first rounds, since one of its 100k-file builds takes minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=$(realpath "${1:-${KILN_BIN:-build/src/kiln}}")
RUNS=${RUNS:-5}
SIZES=${SIZES:-10000 100000}
CASES=${CASES:-cold nochange onefile}
BUILDAH=${BUILDAH:-1}
BUILDAH_RUNS=${BUILDAH_RUNS:-$RUNS}
[ -x "$KILN" ] || { echo "kiln binary not found at $KILN (set KILN_BIN)" >&2; exit 1; }
if [ "$BUILDAH" = 1 ] && ! command -v buildah >/dev/null; then
  echo "buildah not found (scripts/install-deps.sh installs it; BUILDAH=0 leaves it out)" >&2
  exit 1
fi
T=$(mktemp -d /var/tmp/kiln-bench-copy.XXXXXX)
bah() { buildah --root "$T/broot" --runroot "$T/brun" --storage-driver overlay "$@"; }
CHANGED=/var/cache/kiln/bench-statcache-100000/ctx/m000/p00/f000000.c # onefile's file
[ ! -f "$CHANGED" ] || cp -p "$CHANGED" "$T/changed.orig"
cleanup() {
  [ ! -f "$T/changed.orig" ] || cp -p "$T/changed.orig" "$CHANGED" # the cached tree as it was
  [ "$BUILDAH" = 1 ] && bah rm -a >/dev/null 2>&1 || true
  [ "$BUILDAH" = 1 ] && bah rmi -a -f >/dev/null 2>&1 || true
  umount -R "$T/broot/overlay" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

# The tree of bench/statcache.sh (same generator, same cache directory).
tree() { # n -> prints the context directory
  local dir=/var/cache/kiln/bench-statcache-$1
  if [ ! -f "$dir/.complete" ]; then
    PARTS=none bash bench/statcache.sh "$KILN" >/dev/null 2>&1 || true
  fi
  [ -f "$dir/.complete" ] || { echo "no tree $dir (bench/statcache.sh makes it)" >&2; exit 1; }
  echo "$dir/ctx"
}

# Runs `bash -c CMD` under /usr/bin/time -v; appends "name secs rss_kib" to $T/times.
timed() { # name cmd
  /usr/bin/time -v -o "$T/tv" bash -c "$2" >"$T/last.log" 2>&1 ||
    { echo "$1 failed:" >&2; tail -20 "$T/last.log" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0;
    for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.3f", s}' "$T/tv")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$T/tv")
  echo "$1 $wall $rss" >>"$T/times"
}
# Rounds of (name, prepare, command) triples run in turn.
rounds() {
  local -a names=() preps=() cmds=()
  while [ $# -gt 0 ]; do names+=("$1"); preps+=("$2"); cmds+=("$3"); shift 3; done
  for ((r = 0; r < RUNS; r++)); do
    for i in "${!names[@]}"; do
      # buildah takes minutes per 100k-file build: BUILDAH_RUNS bounds its rounds
      [[ ${names[$i]} != buildah-* ]] || [ "$r" -lt "$BUILDAH_RUNS" ] || continue
      [ -z "${preps[$i]}" ] || bash -c "${preps[$i]}" >/dev/null 2>&1
      timed "${names[$i]}" "${cmds[$i]}"
    done
  done
}
# median min max (seconds) and peak RSS (MiB) of a name
stats() {
  awk -v n="$1" '$1 == n {print $2, $3}' "$T/times" | sort -g |
    awk '{v[NR] = $1; if ($2 > m) m = $2} END {
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf "%.2f %.2f %.2f %.0f\n", med, v[1], v[NR], m / 1024}'
}
med() { stats "$1" | cut -d' ' -f1; }
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9)))" "$1" "$2"; }

kbuild() { echo "$KILN build --root $T/kroot --progress quiet --compression gzip -o type=oci,dest=$T/kout $1"; }
bbuild() {
  echo "buildah --root $T/broot --runroot $T/brun --storage-driver overlay build --layers -q -t bench -f $1/Dockerfile $1 >/dev/null && rm -rf $T/bout && buildah --root $T/broot --runroot $T/brun --storage-driver overlay push -q --compression-format gzip --compression-level 1 bench oci:$T/bout:latest"
}
kfresh="rm -rf $T/kroot $T/kout"
bfresh="buildah --root $T/broot --runroot $T/brun --storage-driver overlay rmi -a -f; buildah --root $T/broot --runroot $T/brun --storage-driver overlay rm -a; rm -rf $T/bout"
floor() { echo "tar -cf - -C $1 . | gzip -1 | sha256sum >/dev/null"; }

printf 'machine: %s, %s CPUs, %s GiB RAM; load average at start: %s\n' "$(uname -srm)" \
  "$(nproc)" "$(free -g | awk '/Mem:/ {print $2}')" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s; %s; RUNS=%s BUILDAH_RUNS=%s\n' "$("$KILN" version 2>/dev/null | head -1)" \
  "$([ "$BUILDAH" = 1 ] && buildah --version || echo 'buildah left out')" "$RUNS" "$BUILDAH_RUNS"
for n in $SIZES; do
  C=$(tree "$n")
  k=$((n / 1000))k
  for c in $CASES; do
    [ "$c" = cold ] || [ "$n" = 100000 ] || continue # 10k: cold only (scaling)
    args=()
    case $c in
      cold)
        args+=(floor$k "" "$(floor "$C")" kiln-$c$k "$kfresh" "$(kbuild "$C")")
        [ "$BUILDAH" = 1 ] && args+=(buildah-$c$k "$bfresh" "$(bbuild "$C")")
        ;;
      nochange)
        bash -c "$(kbuild "$C")" >/dev/null 2>&1 # warm (after cold: already warm)
        [ "$BUILDAH" = 1 ] && bash -c "$(bbuild "$C")" >/dev/null 2>&1
        args+=(kiln-$c$k "" "$(kbuild "$C")")
        [ "$BUILDAH" = 1 ] && args+=(buildah-$c$k "" "$(bbuild "$C")")
        ;;
      onefile)
        chg="echo \$RANDOM\$RANDOM >>$CHANGED"
        args+=(kiln-$c$k "$chg" "$(kbuild "$C")")
        [ "$BUILDAH" = 1 ] && args+=(buildah-$c$k "$chg" "$(bbuild "$C")")
        ;;
    esac
    rounds "${args[@]}"
  done
done

echo
printf '%-20s %9s %9s %9s %9s\n' run median min max "RSS MiB"
for name in $(awk '{print $1}' "$T/times" | awk '!seen[$0]++'); do
  printf '%-20s %9s %9s %9s %9s\n' "$name" $(stats "$name")
done
echo
f100=$(med floor100k)
for n in $SIZES; do
  k=$((n / 1000))k
  for c in $CASES; do
    grep -q "^kiln-$c$k " "$T/times" || continue
    line=$(printf '%-13s kiln %7ss  floor %7ss  kiln/floor %5s' "$c$k" "$(med kiln-$c$k)" \
      "$(med floor$k)" "$(ratio "$(med kiln-$c$k)" "$(med floor$k)")")
    if grep -q "^buildah-$c$k " "$T/times"; then
      line+=$(printf '  buildah %7ss  kiln/buildah %5s' "$(med buildah-$c$k)" \
        "$(ratio "$(med kiln-$c$k)" "$(med buildah-$c$k)")")
    fi
    echo "$line"
  done
done
if grep -q "^kiln-cold10k " "$T/times" && grep -q "^kiln-cold100k " "$T/times"; then
  printf 'scaling       kiln cold 100k / 10k %s (target <= 13)' \
    "$(ratio "$(med kiln-cold100k)" "$(med kiln-cold10k)")"
  grep -q "^buildah-cold10k " "$T/times" &&
    printf '  buildah %s' "$(ratio "$(med buildah-cold100k)" "$(med buildah-cold10k)")"
  printf '  floor %s\n' "$(ratio "$f100" "$(med floor10k)")"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
