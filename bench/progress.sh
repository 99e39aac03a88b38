#!/usr/bin/env bash
# What kiln build's live progress view costs: a 500-step build (250 RUN steps that each print
# 10 lines, 250 ENV steps; --no-cache, so every step runs) with --progress=tty on a
# pseudo-terminal (`script`) against --progress=quiet under the same terminal, RUNS rounds in
# turn (default 5), medians compared. Goal (issue #19): tty within 1 % of quiet (ratio <= 1.01).
# Usage: bench/progress.sh   (KILN_BIN, RUNS as in bench_lib.sh; STEPS=500 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh
bench_kiln
bench_scratch progress
STEPS=${STEPS:-500}
command -v script >/dev/null || { echo "bench/progress.sh needs script (util-linux)" >&2; exit 1; }

# a busybox base image (no registry, no network)
mkdir -p "$T"/rootfs/{bin,etc,tmp,proc,sys,dev,root} "$T/ctx"
cp /bin/busybox "$T/rootfs/bin/"
for a in sh echo seq true; do ln -s busybox "$T/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$T/rootfs/etc/passwd"
"$KILN" import "$T/rootfs" -t busybox:1 --root "$T/root" -o "type=oci,dest=$T/base" \
  --env PATH=/bin --cmd '["sh"]' --source-date-epoch 0 >/dev/null
{
  echo "FROM oci:$T/base:1"
  for i in $(seq 1 $((STEPS / 2))); do
    echo "RUN seq 1 10 | while read n; do echo step $i line \$n; done"
    echo "ENV V$i=$i"
  done
} >"$T/ctx/Dockerfile"

# the same pseudo-terminal for both: only the renderer differs
on_tty() { # progress mode
  echo "COLUMNS=120 LINES=40 script -qefc '$KILN build --root $T/root --no-cache --progress=$1 $T/ctx' /dev/null >/dev/null"
}
bench_header
echo "$STEPS steps ($((STEPS / 2)) RUN printing 10 lines each, $((STEPS / 2)) ENV), --no-cache"
rounds tty "" "$(on_tty tty)" quiet "" "$(on_tty quiet)"
stats_table
ratio_line "progress $STEPS steps" tty quiet "(goal: tty/quiet <= 1.01)"
bench_footer
