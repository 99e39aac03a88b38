#!/usr/bin/env bash
# COPY of a big build context: `FROM scratch / COPY . /src/` over a tree of N source-like files
# (the trees of bench/statcache.sh, cached under /var/cache/kiln/bench-statcache-<N>), built
# into an OCI layout, against
#   floor    tar -cf - -C CTX . | gzip -1 | sha256sum   (read every file once, compress, hash)
#   buildah  buildah 1.28, overlay storage driver, private TMPDIR, `build --layers` then `push`
#            to an oci: layout with gzip level 3 (kiln's default: ISA-L level 3, also passed
#            to kiln as --compression-level 3); the floor stays at gzip -1, the fastest level
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
. bench/bench_lib.sh
bench_kiln "${1:-}"
SIZES=${SIZES:-10000 100000}
CASES=${CASES:-cold nochange onefile}
BUILDAH=${BUILDAH:-1}
PEER_RUNS=${BUILDAH_RUNS:-$RUNS}
if [ "$BUILDAH" = 1 ] && ! command -v buildah >/dev/null; then
  echo "buildah not found (scripts/install-deps.sh installs it; BUILDAH=0 leaves it out)" >&2
  exit 1
fi
bench_scratch copy
CHANGED=/var/cache/kiln/bench-statcache-100000/ctx/m000/p00/f000000.c # onefile's file
[ ! -f "$CHANGED" ] || cp -p "$CHANGED" "$T/changed.orig"
cleanup() {
  [ ! -f "$T/changed.orig" ] || cp -p "$T/changed.orig" "$CHANGED" # the cached tree as it was
  bench_cleanup
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

kbuild() { echo "$KILN build --root $T/kroot --progress quiet --compression gzip --compression-level $KILN_GZIP_LEVEL -o type=oci,dest=$T/kout $1"; }
bbuild() { echo "$(BAH_CMD) build --layers -q -t bench -f $1/Dockerfile $1 >/dev/null && $(bah_push_cmd bench "$T/bout")"; }
kfresh="rm -rf $T/kroot $T/kout"
bfresh=$(bah_fresh_cmd)
# the floor: tar | gzip -1 (the fastest gzip: a lower bound for any gzip level) | sha256sum
floor() { echo "tar -cf - -C $1 . | gzip -1 | sha256sum >/dev/null"; }

bench_header
echo "BUILDAH=$BUILDAH BUILDAH_RUNS=$PEER_RUNS"
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
stats_table
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
bench_footer
