#!/usr/bin/env bash
# Builds the libFuzzer targets (clang; libkiln and the harnesses instrumented with
# -fsanitize=fuzzer-no-link,address,undefined) and runs them. Prints TAP, one line per target.
#
#   tests/fuzz/run.sh [-t SECONDS] [TARGET...]   fuzz each target SECONDS (default 600), one
#       after the other, from tests/fuzz/corpus/TARGET into a scratch directory, then merge
#       (-set_cover_merge=1) the fewest inputs that add edges into tests/fuzz/corpus/TARGET.
#   tests/fuzz/run.sh --replay [TARGET...]       run each target once over its corpus (CI).
#
#   KILN_FUZZ_BUILD=DIR   build directory (default build/fuzz)
#   KILN_FUZZ_OUT=DIR     where scratch corpora, logs and crash inputs go (default a mktemp dir)
#   KILN_FUZZ_NICE=N      nice level of the fuzzers (default 19: the machine stays usable)
# A target that crashes, leaks, hits UB or times out is "not ok"; its input is kept in
# $KILN_FUZZ_OUT/TARGET/ (crash-*, leak-*, timeout-*) and its log in $KILN_FUZZ_OUT/TARGET.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET=600
REPLAY=0
while [ $# -gt 0 ]; do
  case "$1" in
    -t) SECONDS_PER_TARGET=$2; shift 2 ;;
    --replay) REPLAY=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
BUILD=${KILN_FUZZ_BUILD:-build/fuzz}
OUT=${KILN_FUZZ_OUT:-$(mktemp -d /tmp/kiln-fuzz.XXXXXX)}
NICE=${KILN_FUZZ_NICE:-19}
mkdir -p "$OUT"

if ! command -v clang >/dev/null; then
  echo "ok 1 # SKIP clang is not installed (scripts/install-deps.sh)"
  exit 0
fi
if [ ! -f "$BUILD/build.ninja" ]; then
  if ! CC=clang meson setup "$BUILD" -Dfuzz=true -Dtests=false -Dwerror=true \
      -Dbuildtype=debugoptimized >"$OUT/setup.log" 2>&1; then
    echo "not ok 1 - fuzz build setup"; tail -n 30 "$OUT/setup.log"; exit 1
  fi
fi
if ! nice -n "$NICE" ninja -C "$BUILD" >"$OUT/build.log" 2>&1; then
  echo "not ok 1 - fuzz build"; tail -n 30 "$OUT/build.log"; exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$BUILD"/tests/fuzz/fuzz_*; do
    [ -f "$f" ] && [ -x "$f" ] && targets+=("${f##*/fuzz_}")
  done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
echo "1..${#targets[@]}"
n=0
failed=0
for t in "${targets[@]}"; do
  n=$((n + 1))
  bin=$BUILD/tests/fuzz/fuzz_$t
  corpus=tests/fuzz/corpus/$t
  log=$OUT/$t.log
  if [ ! -x "$bin" ]; then
    echo "not ok $n - $t: no $bin"; failed=1; continue
  fi
  mkdir -p "$corpus" "$OUT/$t/new"
  # -timeout: an input that runs for 30 s is a hang, reported like a crash.
  common=(-timeout=30 -rss_limit_mb=2048 -artifact_prefix="$OUT/$t/")
  if [ "$REPLAY" = 1 ]; then
    nice -n "$NICE" "$bin" "${common[@]}" -runs=0 "$corpus" >"$log" 2>&1
    rc=$?
  else
    nice -n "$NICE" "$bin" "${common[@]}" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
      "$OUT/$t/new" "$corpus" >"$log" 2>&1
    rc=$?
    before=$(find "$corpus" -type f | wc -l)
    # Keep the seeds as they are; add a smallest set of new inputs that reaches every new
    # edge (set cover on edges, not on hit counts: a corpus of tens of files, not thousands).
    nice -n "$NICE" "$bin" "${common[@]}" -set_cover_merge=1 -use_counters=0 "$corpus" "$OUT/$t/new" \
      >"$OUT/$t.merge.log" 2>&1 || rc=1
    after=$(find "$corpus" -type f | wc -l)
  fi
  cov=$(grep -E '(INITED|DONE|#[0-9]+).*cov:' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
  if [ $rc -eq 0 ]; then
    if [ "$REPLAY" = 1 ]; then echo "ok $n - $t ($cov)"
    else echo "ok $n - $t ($cov, corpus $before -> $after files)"; fi
  else
    failed=1
    echo "not ok $n - $t (exit $rc; log $log)"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -n 5 | sed 's/^/# /'
    ls "$OUT/$t"/crash-* "$OUT/$t"/leak-* "$OUT/$t"/timeout-* "$OUT/$t"/oom-* 2>/dev/null | sed 's/^/# input: /'
  fi
done
exit $failed
