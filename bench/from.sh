#!/usr/bin/env bash
# FROM a registry base on a fresh root (an ephemeral worker's first step), against pulling the
# same image into a directory: kiln's node-build (444 MB of gzip layers, ~47,000 files) pushed
# once to docker-registry on loopback, then in each round, each on an empty root:
#   kiln-from    `kiln build --no-cache` of `FROM <base>` + `RUN true` (download, digest and
#                diff_id checks, unpack into the build's lower dirs, the RUN, the image
#                written, its size counted)
#   kiln-unpack  `kiln pull -o type=local` of the same image (streamed, layers in parallel)
#   old-from     KILN_BASELINE's kiln-from, in the same rounds (when set)
# Goal (issue #18): kiln-from within 1.3x of kiln-unpack. Each run's root is a new file system
# (bench_lib's bench_newfs, FRESH_FS=1), made outside the clock, as a new worker's storage is:
# on this VM's journal-less ext4 every create skips the inodes freed in the last minutes
# (`recently_deleted`), which the previous run's 950 MB tree would otherwise charge to the next.
# With FRESH_FS=0 the root is a plain directory, removed before a sleep of BENCH_SETTLE seconds
# (default 12 then, 0 with fresh file systems).
# Usage: bench/from.sh [KILN_BIN]  (env: RUNS=5; KILN_BASELINE=BIN; KILN_IMAGES_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh
bench_kiln "${1:-}"
IMAGES=${KILN_IMAGES_DIR:-/var/cache/kiln/images}
[ -f "$IMAGES/node-build/oci-layout" ] || { echo "bench/from.sh: $IMAGES/node-build is missing: run scripts/setup.sh" >&2; exit 2; }
SETTLE=${BENCH_SETTLE:-$([ "$FRESH_FS" = 1 ] && echo 0 || echo 12)}
bench_scratch from
bench_registry "$T/reg"
trap 'kill $REG_PID 2>/dev/null || true; bench_dropfs "$T/f"; bench_cleanup' EXIT
BASE=127.0.0.1:$REG_PORT/kiln/node-build:latest
REG="--insecure-registry 127.0.0.1:$REG_PORT"
"$KILN" push --progress=none $REG "oci:$IMAGES/node-build" "$BASE" >/dev/null
mkdir -p "$T/app"
printf 'FROM %s\nRUN true\n' "$BASE" >"$T/app/Dockerfile"
fresh="bench_newfs $T/f; sleep $SETTLE"
rounds \
  kiln-from "$fresh" "$KILN build --progress plain --no-cache $REG --root $T/f/r $T/app" \
  kiln-unpack "$fresh" "$KILN pull --progress=none $REG --root $T/f/r -o type=local,dest=$T/f/dest $BASE" \
  ${KILN_BASELINE:+old-from "$fresh" "$KILN_BASELINE build --progress plain --no-cache $REG --root $T/f/r $T/app"}
bench_dropfs "$T/f"

bench_header
echo "base: $IMAGES/node-build pushed to docker-registry on loopback; $T on $(df --output=fstype "$T" | tail -1)"
stats_table
echo
ratio_line from-vs-pull kiln-from kiln-unpack "(target <= 1.3: FROM + RUN true on a fresh root / pull -o type=local)"
printf '%-22s kiln-from %s s  kiln-unpack %s s  ratio %s  (CPU)\n' from-cpu "$(cpu_med kiln-from)" \
  "$(cpu_med kiln-unpack)" "$(ratio "$(cpu_med kiln-from)" "$(cpu_med kiln-unpack)")"
if [ -n "${KILN_BASELINE:-}" ]; then
  ratio_line from-vs-old kiln-from old-from "($KILN_BASELINE)"
  ratio_line old-vs-pull old-from kiln-unpack "(the baseline against the same pulls)"
fi
bench_footer
