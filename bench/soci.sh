#!/usr/bin/env bash
# SOCI index cost: what --soci adds to a push. One image (FROM scratch, COPY of SOURCE_DIR,
# default /usr/lib/x86_64-linux-gnu: one large gzip layer; zTOCs from 1 MiB) is built and pushed once to a
# local docker-registry; then, RUNS rounds of
#   kiln-push        the cached build pushed again (blobs already there: the fixed cost)
#   kiln-push-soci   the same with soci=true (a zTOC built for the layer, the SOCI index,
#                    the annotated manifest and index pushed)
#   zcat             zcat of the layer blob to /dev/null: reading the layer once, the floor
#                    of anything that indexes it (soci's CLI inflates it twice)
#   kiln-soci-verify kiln soci verify of the pushed image (every span from its checkpoint)
# Ratio lines: the SOCI conversion (push-soci minus push) against one zcat of the layer.
#
#   KILN_BIN=build/src/kiln RUNS=5 bash bench/soci.sh [SOURCE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh
bench_kiln
SRC=${1:-/usr/lib/x86_64-linux-gnu}
bench_scratch soci
bench_header

bench_registry "$T/reg"
port=$REG_PORT
trap 'kill "$REG_PID" 2>/dev/null || true; bench_cleanup' EXIT
H=127.0.0.1:$port
printf 'FROM scratch\nCOPY . /x\n' >"$T/Dockerfile"
B="$KILN build --root $T/root --insecure-registry $H -f $T/Dockerfile -q"
echo "building and pushing $SRC once ..." >&2
$B -o "type=registry,name=$H/b:plain" "$SRC" >/dev/null
$B -o "type=registry,name=$H/b:soci,soci=true,soci-min-layer-size=1MiB" "$SRC" >/dev/null
layer=$(ls -S "$T/root/blobs/sha256" | head -1)
echo "layer: $(stat -c %s "$T/root/blobs/sha256/$layer") bytes gzip, $(zcat "$T/root/blobs/sha256/$layer" | wc -c) bytes of tar"

rounds \
  kiln-push "" "$B -o type=registry,name=$H/b:plain $SRC" \
  kiln-push-soci "" "$B -o type=registry,name=$H/b:soci,soci=true,soci-min-layer-size=1MiB $SRC" \
  zcat "" "zcat $T/root/blobs/sha256/$layer >/dev/null" \
  kiln-soci-verify "" "$KILN soci verify --root $T/root --insecure-registry $H $H/b:soci"

stats_table
soci=$(python3 -c "print('%.3f' % max(float('$(med kiln-push-soci)') - float('$(med kiln-push)'), 0))")
echo "$(printf '%-22s' 'soci conversion') ${soci}s (push-soci - push)  zcat $(med zcat)s  ratio $(ratio "$soci" "$(med zcat)")"
ratio_line "verify vs zcat" kiln-soci-verify zcat
bench_footer
