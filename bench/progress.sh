#!/usr/bin/env bash
# What kiln build's live progress view costs: a 500-step build (250 RUN steps that each print
# 10 lines, 250 ENV steps; --no-cache, so every step runs) with --progress=tty on a
# pseudo-terminal (`script`) against --progress=quiet under the same terminal, RUNS rounds in
# turn (default 5), medians compared: wall time, and the CPU time (user + system of kiln and
# its steps), which a shared machine's load disturbs far less. Then the view's own CPU time for
# the same build (bench/progress_render.c: every event of 500 steps rendered and a frame ten
# times a second over the quiet build's median wall time) as a share of that wall time.
# Goal (issue #19): the view adds < 1 % (tty/quiet <= 1.01).
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

# the same pseudo-terminal for both: only the renderer differs; "wall cpu" appended to $T/cpu-MODE
on_tty() { # progress mode
  echo "/usr/bin/time -f '%e %U %S' -o $T/t-$1 script -qefc '$KILN build --root $T/root --no-cache --progress=$1 $T/ctx' /dev/null >/dev/null && awk '{print \$1, \$2 + \$3}' $T/t-$1 >>$T/cpu-$1"
}
median_col() { # file column
  awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR] = $1} END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
bench_header
echo "$STEPS steps ($((STEPS / 2)) RUN printing 10 lines each, $((STEPS / 2)) ENV), --no-cache"
rounds tty "" "$(on_tty tty)" quiet "" "$(on_tty quiet)"
stats_table
ratio_line "progress $STEPS steps" tty quiet "(wall; goal: tty/quiet <= 1.01)"
ct=$(median_col "$T/cpu-tty" 2) cq=$(median_col "$T/cpu-quiet" 2)
printf '%-22s tty %7ss  quiet %7ss  tty/quiet %5s  (CPU: kiln and its steps, medians)\n' \
  "progress $STEPS steps" "$ct" "$cq" "$(ratio "$ct" "$cq")"

# the view alone: its CPU time for the same events and frames
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. -o "$T/progress_render" bench/progress_render.c src/progress.c \
  src/progress_tty.c "$(dirname "$KILN")/../libkiln.a" $(pkg-config --libs libgit2 libarchive \
  libcurl openssl libseccomp sqlite3 libzstd zlib inih expat jansson libmicrohttpd) -lisal -lpthread -lm
wq=$(med quiet)
read -r _ rcpu _ frames _ bytes < <("$T/progress_render" "$STEPS" 10 "$wq")
printf '%-22s the view alone: %ss CPU for %s frames, %s bytes, over %ss: %s %% of the build\n' \
  "progress $STEPS steps" "$rcpu" "$frames" "$bytes" "$wq" \
  "$(python3 -c "import sys; print('%.3f' % (100 * float(sys.argv[1]) / float(sys.argv[2])))" "$rcpu" "$wq")"
bench_footer
