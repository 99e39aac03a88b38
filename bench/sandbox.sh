#!/usr/bin/env bash
# Benchmarks of kiln's step sandbox (run as root on an idle machine):
#
# 1. `kiln run --rootfs R --network none -- /bin/true` end to end against
#    bwrap --unshare-all (target ≤ 1.2×), and its sandbox cost alone
#    = t(kiln run) − t(kiln --help) (the process start-up: loading kiln and its
#    shared libraries; `kiln version` would load libcurl and libmicrohttpd, which
#    kiln otherwise loads only when used) against bwrap and runc run (target
#    ≤ 0.3×). Medians of N runs (default 30) with min/max, wall and CPU time
#    (timed here in ns: /usr/bin/time's wall clock has 10 ms steps), and the peak RSS
#    of each command over RUNS more runs under /usr/bin/time -v.
# 2. A step writing 50,000 files / 1 GiB over a 1 GiB lower: time to write the
#    layer (overlay path: the upper dir only) against `kiln import` packing the
#    same upper dir alone (target ≤ 1.1×: the lower tree is not walked); RUNS rounds of
#    both in turn, the step's layer time as kiln run reports it, medians, min/max, peak RSS.
# 3. Each RUN step of a build: a 50-RUN Dockerfile (FROM scratch, the busybox
#    rootfs, 50 × `RUN true N`) built with --no-cache against `buildah bud
#    --layers --no-cache` (overlay, each step committed as kiln caches each step)
#    and 50 bare `bwrap` runs (the floor of 50 sandboxes); RUNS rounds
#    (default 5), medians, min/max, CPU, peak RSS, per step. The same build
#    without its RUNs (kiln-0run: FROM, COPY of the rootfs, the image) is timed
#    in the same rounds, and the per-step figures are also given net of it.
#
#    With KILN_BEFORE=path/to/another/kiln, part 3 also times that binary's 50-RUN build in
#    the same rounds (before-50run), for a change's before/after side by side.
#
#   KILN_BIN=path/to/kiln bash bench/sandbox.sh [N] [PARTS]   (PARTS: any of 1, 2, 3; default 13)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
N=${1:-30}
PARTS=${2:-13}
W=$(mktemp -d /var/tmp/kiln-bench.XXXXXX)
trap 'umount -R "$W/broot/overlay" 2>/dev/null || true; rm -rf "$W"' EXIT

now_ns() { date +%s%N; }
# median_ms FILE: median of the ns values in FILE, in ms (3 decimals)
median_ms() {
  sort -n "$1" | awk '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m / 1e6}'
}
# range_ms NAME: "min A max B" of NAME's wall times (ns in $W/t-NAME) in ms, and its peak RSS
range_ms() {
  sort -n "$W/t-$1" | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "min %.1f max %.1f", lo / 1e6, hi / 1e6}'
  [ ! -s "$W/rss-$1" ] || printf ', peak RSS %s KiB' "$(sort -n "$W/rss-$1" | tail -n 1)"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

R=$W/rootfs
mkdir -p "$R"/{bin,etc,tmp,proc,sys,dev,root}
cp /bin/busybox "$R/bin/busybox"
for a in sh true cat; do ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"

# The commands compared, by name. They run interleaved (one of each per
# round), so that a change of load on a shared machine hits all alike: the
# sandbox cost is a difference of two medians, which sequential batches
# would skew whenever the load moved between them.
declare -A CMD
CMD[version]="$KILN --help"
CMD[kiln]="$KILN run --rootfs $R --network none -- /bin/true"
CMD[bwrap]="bwrap --unshare-all --ro-bind $R / --proc /proc --dev /dev /bin/true"
NAMES=(version kiln bwrap)
if command -v runc >/dev/null; then
  B=$W/bundle
  mkdir -p "$B"
  (cd "$B" && runc spec)
  python3 - "$B/config.json" "$R" <<'PY'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"] = {"path": root, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY
  runc_once() { runc run -b "$B" "kiln-bench-$$-$RANDOM$RANDOM" </dev/null; }
  CMD[runc]=runc_once
  NAMES+=(runc)
fi
for n in "${NAMES[@]}"; do
  ${CMD[$n]} >/dev/null 2>&1 </dev/null || { echo "command failed: ${CMD[$n]}" >&2; exit 1; }
  : >"$W/t-$n"
done
for ((i = 0; i < N; i++)); do
  [[ $PARTS == *1* ]] || break
  for n in "${NAMES[@]}"; do
    t0=$(now_ns); ${CMD[$n]} >/dev/null 2>&1 </dev/null; t1=$(now_ns)
    echo $((t1 - t0)) >>"$W/t-$n"
  done
done
# Peak RSS of every command (/usr/bin/time -v: the largest of its processes), RUNS rounds in
# turn, apart from the timed runs above: time's own fork and exec would add to each wall time.
for ((i = 0; i < RUNS; i++)); do
  [[ $PARTS == *1* ]] || break
  for n in "${NAMES[@]}"; do
    c=${CMD[$n]}
    [ "$n" != runc ] || c="runc run -b $B kiln-bench-$$-$RANDOM$RANDOM"
    /usr/bin/time -v -o "$W/tv" $c >/dev/null 2>&1 </dev/null
    awk -F': ' '/Maximum resident set size/ {print $2}' "$W/tv" >>"$W/rss-$n"
  done
done

if [[ $PARTS == *1* ]]; then
echo "== 1. sandbox cost of one step (median of $N, interleaved; load average: $(cut -d' ' -f1 /proc/loadavg))"
t_version=$(median_ms "$W/t-version")
t_kiln=$(median_ms "$W/t-kiln")
t_bwrap=$(median_ms "$W/t-bwrap")
cost=$(awk -v a="$t_kiln" -v b="$t_version" 'BEGIN {printf "%.3f", a - b}')
echo "kiln --help (start-up)                ${t_version} ms  ($(range_ms version))"
echo "kiln run --network none /bin/true    ${t_kiln} ms  (sandbox cost ${cost} ms; $(range_ms kiln))"
echo "bwrap --unshare-all /bin/true        ${t_bwrap} ms  ($(range_ms bwrap))"
echo "sandbox cost / bwrap                 $(ratio "$cost" "$t_bwrap")"
echo "end to end: kiln run / bwrap         $(ratio "$t_kiln" "$t_bwrap")  (target <= 1.2)"
if [ -n "${CMD[runc]:-}" ]; then
  t_runc=$(median_ms "$W/t-runc")
  echo "runc run /bin/true                   ${t_runc} ms  ($(range_ms runc))"
  echo "sandbox cost / runc                  $(ratio "$cost" "$t_runc")  (target <= 0.3)"
fi
# CPU time (user+sys of the whole process tree) is steadier than wall time on
# a loaded machine: shown alongside, measured interleaved the same way.
if command -v perf >/dev/null; then
  for n in version kiln bwrap; do : >"$W/c-$n"; done
  for ((i = 0; i < N; i++)); do
    for n in version kiln bwrap; do
      perf stat -x, -e task-clock ${CMD[$n]} 2>&1 >/dev/null </dev/null |
        awk -F, '/task-clock/ {printf "%d\n", $1 * 1e6}' >>"$W/c-$n"
    done
  done
  c_version=$(median_ms "$W/c-version")
  c_kiln=$(median_ms "$W/c-kiln")
  c_bwrap=$(median_ms "$W/c-bwrap")
  c_cost=$(awk -v a="$c_kiln" -v b="$c_version" 'BEGIN {printf "%.3f", a - b}')
  echo "CPU: kiln --help ${c_version} ms, kiln run ${c_kiln} ms (sandbox ${c_cost} ms), bwrap ${c_bwrap} ms"
  echo "CPU: sandbox cost / bwrap             $(ratio "$c_cost" "$c_bwrap")"
  echo "CPU: end to end kiln run / bwrap      $(ratio "$c_kiln" "$c_bwrap")  (target <= 1.2)"
fi
fi

if [[ $PARTS == *3* ]]; then
  echo "== 3. each RUN step of a build: 50 x RUN true, --no-cache (RUNS=$RUNS; load average: $(cut -d' ' -f1 /proc/loadavg))"
  T=$W # bench_lib's timing helpers (rounds, stats, bah) keep their files under $T
  : >"$T/times"
  mkdir -p "$W/ctx50"
  cp -a "$R" "$W/ctx50/rootfs"
  { echo 'FROM scratch'; echo 'COPY rootfs/ /'; for i in $(seq 50); do echo "RUN true $i"; done; } >"$W/ctx50/Dockerfile"
  mkdir -p "$W/ctx0"
  cp -a "$R" "$W/ctx0/rootfs"
  printf 'FROM scratch\nCOPY rootfs/ /\n' >"$W/ctx0/Dockerfile"
  b50='for i in $(seq 50); do bwrap --unshare-all --ro-bind '"$R"' / --proc /proc --dev /dev /bin/true; done'
  args=(kiln-50run "rm -rf $W/kroot" "$KILN build --root $W/kroot --no-cache --network none --progress quiet $W/ctx50"
    kiln-0run "rm -rf $W/kroot" "$KILN build --root $W/kroot --no-cache --network none --progress quiet $W/ctx0"
    bwrap-50 "" "$b50")
  if [ -n "${KILN_BEFORE:-}" ]; then
    args+=(before-50run "rm -rf $W/kroot" "$KILN_BEFORE build --root $W/kroot --no-cache --network none --progress quiet $W/ctx50")
  fi
  if command -v buildah >/dev/null; then
    args+=(buildah-50run "" "$(BAH_CMD) bud --layers --no-cache --network none -q -t b50 $W/ctx50")
  fi
  rounds "${args[@]}"
  stats_table
  for n in kiln-50run before-50run bwrap-50 buildah-50run; do
    [ "$(med $n)" != 0 ] || continue
    printf '%-14s per step: wall %6.1f ms  CPU %5.1f ms\n' "$n" \
      "$(awk -v s="$(med $n)" 'BEGIN {print s * 1000 / 50}')" \
      "$(awk -v s="$(cpu_med $n)" 'BEGIN {print s * 1000 / 50}')"
  done
  echo "kiln / bare bwrap (50 sandboxes): wall $(ratio "$(med kiln-50run)" "$(med bwrap-50)"), CPU $(ratio "$(cpu_med kiln-50run)" "$(cpu_med bwrap-50)")"
  # the 50 RUNs alone: the build less the same build without them (FROM, COPY, the image)
  net_w=$(awk -v a="$(med kiln-50run)" -v b="$(med kiln-0run)" 'BEGIN {print a - b}')
  net_c=$(awk -v a="$(cpu_med kiln-50run)" -v b="$(cpu_med kiln-0run)" 'BEGIN {print a - b}')
  printf '%-14s per step: wall %6.1f ms  CPU %5.1f ms  (kiln-50run less kiln-0run)\n' "kiln RUN" \
    "$(awk -v s="$net_w" 'BEGIN {print s * 1000 / 50}')" "$(awk -v s="$net_c" 'BEGIN {print s * 1000 / 50}')"
  echo "kiln RUN steps / bare bwrap: wall $(ratio "$net_w" "$(med bwrap-50)"), CPU $(ratio "$net_c" "$(cpu_med bwrap-50)")  (target <= 1.2)"
  [ "$(med before-50run)" = 0 ] ||
    echo "before ($KILN_BEFORE) / bare bwrap: wall $(ratio "$(med before-50run)" "$(med bwrap-50)"), CPU $(ratio "$(cpu_med before-50run)" "$(cpu_med bwrap-50)"); kiln / before: wall $(ratio "$(med kiln-50run)" "$(med before-50run)"), CPU $(ratio "$(cpu_med kiln-50run)" "$(cpu_med before-50run)")"
  [ "$(med buildah-50run)" = 0 ] ||
    echo "kiln / buildah --layers: wall $(ratio "$(med kiln-50run)" "$(med buildah-50run)"), CPU $(ratio "$(cpu_med kiln-50run)" "$(cpu_med buildah-50run)")"
  if [ -d "$W/broot" ]; then bah rmi -a -f >/dev/null 2>&1 || true; umount -R "$W/broot/overlay" 2>/dev/null || true; fi
fi

[[ $PARTS == *2* ]] || exit 0
echo "== 2. layer of a step writing 50,000 files / 1 GiB over a 1 GiB lower"
L=$W/lower
mkdir -p "$L/data"
cp -a "$R/." "$L/"
for i in $(seq 0 1023); do head -c 1048576 /dev/urandom >"$L/data/f$i"; done
cat >"$W/writer.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void)
{
    static char buf[21475];
    char p[64];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
        return 1;
    close(fd);
    for (int d = 0; d < 100; d++) {
        snprintf(p, sizeof(p), "/out/d%d", d);
        if (mkdir(p, 0755) < 0 && d == 0)
            mkdir("/out", 0755), mkdir(p, 0755);
        for (int f = 0; f < 500; f++) {
            snprintf(p, sizeof(p), "/out/d%d/f%d", d, f);
            fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            buf[0] = (char)f, buf[1] = (char)d;
            if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
                return 1;
            close(fd);
        }
    }
    return 0;
}
C
gcc -static -O2 -o "$L/bin/writer" "$W/writer.c"
sync
# RUNS rounds of both in turn (bench_lib's timed: wall, CPU, peak RSS); the step's own
# figure is the time kiln run reports for writing the layer, kept per round (METRIC)
T=$W
: >"$T/times"
: >"$T/metrics"
rounds step-layer "rm -rf $W/upper $W/layer.tar.gz" \
  "set -o pipefail; $KILN run -v --rootfs $L --network none --keep-upper $W/upper --diff-output $W/layer.tar.gz -- /bin/writer 2>&1 |
    sed -n 's/.*layer written in \\([0-9.]*\\) ms (\\([0-9]*\\) entries.*/METRIC layer_ms=\\1 entries=\\2/p'" \
  import "rm -rf $W/store" "$KILN import $W/upper -t bench/upper:1 --root $W/store --compression gzip"
stats_table
metric_table
t_layer=$(metric_med step-layer layer_ms)
t_pack=$(awk -v s="$(med import)" 'BEGIN {printf "%.1f", s * 1000}')
echo "layer from the step (overlay upper)   ${t_layer} ms (median; $(metric_med step-layer entries %.0f) entries)"
echo "kiln import of the upper dir alone    ${t_pack} ms (median wall)"
echo "layer / pack alone                    $(ratio "$t_layer" "$t_pack")  (target <= 1.1)"
