#!/usr/bin/env bash
# kiln's whole test suite: installs what the tests need, builds kiln (warnings as
# errors, plus an ASan+UBSan build for the unit tests), runs the unit tests, the
# source checks and every integration test, and ends with "N passed, N failed".
#
#   KILN_SKIP_DEPS=1   do not run scripts/install-deps.sh
#   KILN_TESTS=REGEX   only run integration tests whose file name matches
#   KILN_NO_ASAN=1     skip the sanitizer build
#   KILN_NO_FUZZ=1     skip the fuzz build (clang) and the run of each fuzz target over its corpus
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
LOGDIR=${KILN_TEST_LOGS:-$SRC/build/test-logs}
PASS=0
FAIL=0
SKIP=0
FAILED_NAMES=()

note() { printf '### %s\n' "$*"; }

if [ "${KILN_SKIP_DEPS:-0}" != 1 ]; then
  note "installing dependencies"
  if ! bash scripts/install-deps.sh; then
    echo "dependency install failed"
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

build() { # dir, extra meson args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dwerror=true "$@" >"$LOGDIR/setup-$(basename "$dir").log" 2>&1 || return 1
  fi
  ninja -C "$dir" >"$LOGDIR/build-$(basename "$dir").log" 2>&1
}

mkdir -p "$LOGDIR"
# Account one result: name, status (0 = pass, 77 = skip, else fail)
account() {
  if [ "$2" = 0 ]; then PASS=$((PASS + 1)); echo "ok - $1";
  elif [ "$2" = 77 ]; then SKIP=$((SKIP + 1)); echo "ok - $1 # SKIP";
  else FAIL=$((FAIL + 1)); FAILED_NAMES+=("$1"); echo "not ok - $1"; fi
}

# Runs a TAP-producing command and adds its ok / not ok lines to the totals.
run_tap() { # name, timeout, command...
  local name=$1 limit=$2; shift 2
  local log="$LOGDIR/$name.log" rc p f s
  timeout --kill-after=30 "$limit" "$@" >"$log" 2>&1 </dev/null
  rc=$?
  # cmocka reports a skipped test as "not ok N # SKIP": a skip, not a failure.
  p=$(grep -E '^ok [0-9]*' "$log" | grep -cviE '# *skip' | tr -d ' ')
  s=$(grep -E '^(not )?ok [0-9]*' "$log" | grep -ciE '# *skip' | tr -d ' ')
  f=$(grep -E '^not ok' "$log" | grep -cviE '# *skip' | tr -d ' ')
  grep -E '^(not )?ok' "$log" | sed "s/^/[$name] /"
  PASS=$((PASS + p)); FAIL=$((FAIL + f)); SKIP=$((SKIP + s))
  if [ "$f" -gt 0 ]; then
    FAILED_NAMES+=("$name")
    echo "---- $name: last lines of $log"; tail -n 40 "$log"
  fi
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
    FAIL=$((FAIL + 1)); FAILED_NAMES+=("$name (exit $rc)")
    echo "not ok - $name exited $rc"; tail -n 40 "$log"
  elif [ $rc -eq 0 ] && [ $((p + f + s)) -eq 0 ]; then
    FAIL=$((FAIL + 1)); FAILED_NAMES+=("$name (ran no test)")
    echo "not ok - $name reported no test"; tail -n 20 "$log"
  fi
}

note "building"
build build/ci -Dbuildtype=debugoptimized
account "build (warnings as errors)" $?
if [ ! -x build/ci/src/kiln ]; then
  tail -n 60 "$LOGDIR/build-ci.log"
  echo "$PASS passed, $((FAIL + 1)) failed"
  exit 1
fi
export KILN_BIN=$SRC/build/ci/src/kiln
export KILN_SRC=$SRC
export KILN_CORPORA=${KILN_CORPORA:-$(cd "$SRC/../shared/corpora" 2>/dev/null && pwd)}
export AWS_EC2_METADATA_DISABLED=true
export PATH=$SRC/tests/bin:$PATH

note "source checks"
bash tests/check_banned.sh >"$LOGDIR/banned.log" 2>&1; account "no banned functions" $?
if command -v clang-format >/dev/null; then
  bad=$(git ls-files '*.c' '*.h' 2>/dev/null | xargs -r clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
  [ "${bad:-0}" = 0 ]; account "clang-format clean" $?
fi

note "unit tests"
for t in build/ci/tests/unit/test_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  CMOCKA_MESSAGE_OUTPUT=TAP run_tap "unit-$(basename "$t")" 900 "$t"
done

if [ "${KILN_NO_ASAN:-0}" != 1 ]; then
  note "unit tests under ASan+UBSan"
  if build build/asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; then
    account "asan build" 0
    for t in build/asan/tests/unit/test_*; do
      [ -f "$t" ] && [ -x "$t" ] || continue
      KILN_UNDER_ASAN=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        CMOCKA_MESSAGE_OUTPUT=TAP run_tap "asan-$(basename "$t")" 1200 "$t"
    done
  else
    account "asan build" 1
    tail -n 40 "$LOGDIR/build-asan.log"
  fi
fi

if [ "${KILN_NO_FUZZ:-0}" != 1 ]; then
  note "fuzz targets over their corpora"
  KILN_FUZZ_OUT=$LOGDIR/fuzz run_tap "fuzz-replay" 1200 bash tests/fuzz/run.sh --replay
fi

note "integration tests"
# The examples' shared kiln root outlives runs (base images are slow to make);
# drop what no run used in the last hours so it cannot fill the disk. Never
# waits for, nor disturbs, a build holding the store.
EXROOT=${KILN_EXAMPLES_ROOT:-/var/cache/kiln/examples-root}
if [ -d "$EXROOT" ]; then
  "$KILN_BIN" prune --root "$EXROOT" --cache-max-age 2 --no-wait >"$LOGDIR/prune-examples.log" 2>&1 || true
fi
for t in tests/integration/test_*.sh tests/integration/test_*.py; do
  [ -f "$t" ] || continue
  name=$(basename "$t"); name=${name%.*}
  if [ -n "${KILN_TESTS:-}" ] && ! [[ $name =~ $KILN_TESTS ]]; then continue; fi
  case "$t" in
    *.sh) run_tap "$name" 1800 bash "$t" ;;
    *.py) run_tap "$name" 1800 python3 "$t" ;;
  esac
done

if [ ${#FAILED_NAMES[@]} -gt 0 ]; then
  echo "failed: ${FAILED_NAMES[*]}"
fi
echo "skipped: $SKIP"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
