#!/usr/bin/env bash
# S3 upload benchmark against fauxqs on loopback, kiln vs awscli side by side:
#   1. a static site of 1,000 files, 10 MB in all: `kiln upload` vs `aws s3 sync`
#   2. one 1 GiB file in 8 MiB parts: `kiln upload` vs `aws s3 cp`
# Each run goes to a fresh prefix (nothing is skipped as unchanged). Prints the
# median wall times of BENCH_RUNS runs, the kiln/aws ratios, peak RSS, the
# client's CPU time and the CPU time fauxqs itself spent on each run.
# Targets: site time ratio <= 0.5; big-file throughput ratio >= 1.5.
#
# fauxqs (one Node thread) does the same work per byte whoever uploads: an MD5
# of every part as it arrives and, on completion, an MD5 of every part again
# plus one copy of the whole object. No client can finish before fauxqs has
# done that work, so "aws wall / fauxqs CPU" is the best ratio any client can
# reach against it; the big-file lines print that ceiling next to the ratio.
#
#   KILN_BIN           the kiln binary (default build/src/kiln, the README's; built if absent)
#   BENCH_RUNS         runs per tool and case (default 5)
#   BENCH_BIG_MIB      size of the big file (default 1024)
#   BENCH_FAUXQS_PROF  a directory: run fauxqs under `node --cpu-prof` there
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
RUNS=${BENCH_RUNS:-5}
BIG_MIB=${BENCH_BIG_MIB:-1024}
CACHE=/var/cache/kiln/bench-s3
W=$(mktemp -d /tmp/kiln-bench-s3.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

eval "$(bash tests/aws/setup.sh | sed 's/^/export /')"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
EP=http://127.0.0.1:$PORT
# awscli 2.9 ignores AWS_ENDPOINT_URL: every aws call below passes --endpoint-url
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL=$EP HOME=$W

start_fauxqs() {
  [ ${#PIDS[@]} -gt 0 ] && { kill "${PIDS[@]}" 2>/dev/null || true; wait "${PIDS[@]}" 2>/dev/null || true; PIDS=(); }
  "$NODE" --max-old-space-size=8192 ${BENCH_FAUXQS_PROF:+--cpu-prof --cpu-prof-dir=$BENCH_FAUXQS_PROF} \
    tests/aws/serve.mjs "$FAUXQS_DIR" "$PORT" >"$W/fauxqs.log" 2>&1 &
  PIDS=($!)
  for _ in $(seq 1 300); do curl -sf "$EP/health" >/dev/null && break; sleep 0.1; done
  curl -sf -X PUT "$EP/bench" >/dev/null
}

if [ ! -f "$CACHE/.done-$BIG_MIB" ]; then
  echo "# making the 1,000-file site and the ${BIG_MIB} MiB file in $CACHE (once)"
  rm -rf "$CACHE"; mkdir -p "$CACHE/site/assets" "$CACHE/big"
  python3 - "$CACHE" "$BIG_MIB" <<'PY'
import os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
r = random.Random(1)
exts = ["html", "css", "js", "json", "png", "svg", "txt", "woff2"]
for i in range(1000):
    d = os.path.join(root, "site", "assets", "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d.%s" % (i, exts[i % len(exts)])), "wb") as f:
        f.write(r.randbytes(10000))
with open(os.path.join(root, "big", "big.bin"), "wb") as f:
    for _ in range(mib):
        f.write(os.urandom(1 << 20))
PY
  touch "$CACHE/.done-$BIG_MIB"
fi

# CPU time (user+system, clock ticks) fauxqs has used so far.
fauxqs_ticks() { awk '{print $14 + $15}' "/proc/${PIDS[0]}/stat"; }

# Runs "$@" RUNS times; prints the medians "wall_s client_cpu_s fauxqs_cpu_s"
# and the highest peak RSS (KiB). A failing run stops the benchmark (a fast
# failure must not pass for a fast upload).
measure() {
  local i m=0 line f0 f1 hz
  hz=$(getconf CLK_TCK)
  : >"$W/runs"
  for i in $(seq 1 "$RUNS"); do
    f0=$(fauxqs_ticks)
    if ! /usr/bin/time -o "$W/time" -f '%e %U %S %M' "$@" >/dev/null 2>"$W/err"; then
      echo "benchmark command failed: $*" >&2; tail -n 5 "$W/err" >&2; exit 1
    fi
    f1=$(fauxqs_ticks)
    line=$(tail -n1 "$W/time")
    echo "$line" | awk -v f=$((f1 - f0)) -v hz="$hz" '{printf "%s %.2f %.2f\n", $1, $2 + $3, f / hz}' >>"$W/runs"
    m=$(echo "$line" | awk -v m="$m" '{print ($4 > m ? $4 : m)}')
  done
  med() { cut -d' ' -f"$1" "$W/runs" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  echo "$(med 1) $(med 2) $(med 3) $m"
}

echo "# fauxqs on $EP; $RUNS runs each, median wall time"
start_fauxqs
# each run: a fresh random prefix (\$RANDOM is expanded by the inner shell)
read -r ks kc kf kr < <(measure bash -c "$KILN upload $CACHE/site --output type=s3,dest=s3://bench/k-site-\$RANDOM\$RANDOM")
read -r as ac af ar < <(measure bash -c "/usr/bin/aws --endpoint-url $EP s3 sync --only-show-errors $CACHE/site s3://bench/a-site-\$RANDOM\$RANDOM")
[ -n "${ks:-}" ] && [ -n "${as:-}" ] || exit 1
echo "site 1,000 files / 10 MB: kiln ${ks}s (CPU ${kc}s, peak RSS ${kr} KiB; fauxqs CPU ${kf}s)," \
  "aws s3 sync ${as}s (CPU ${ac}s, peak RSS ${ar} KiB; fauxqs CPU ${af}s)"
awk -v k="$ks" -v a="$as" 'BEGIN {r=k/a; printf "site time ratio kiln/aws = %.2f (target <= 0.5): %s\n", r, (r <= 0.5 ? "PASS" : "FAIL")}'

# big file: a fresh fauxqs per tool so that memory from the first does not slow the second
start_fauxqs
read -r kb kbc kbf kbr < <(measure bash -c "$KILN upload $CACHE/big/big.bin --output type=s3,dest=s3://bench/k-big-\$RANDOM/ --part-size 8M")
start_fauxqs
read -r ab abc abf abr < <(measure bash -c "/usr/bin/aws --endpoint-url $EP s3 cp --only-show-errors $CACHE/big/big.bin s3://bench/a-big-\$RANDOM/big.bin")
[ -n "${kb:-}" ] && [ -n "${ab:-}" ] || exit 1
echo "${BIG_MIB} MiB file, 8 MiB parts: kiln ${kb}s (CPU ${kbc}s, peak RSS ${kbr} KiB; fauxqs CPU ${kbf}s)," \
  "aws s3 cp ${ab}s (CPU ${abc}s, peak RSS ${abr} KiB; fauxqs CPU ${abf}s)"
awk -v k="$kb" -v a="$ab" -v m="$BIG_MIB" 'BEGIN {r=a/k; printf "throughput kiln %.0f MiB/s, aws %.0f MiB/s, ratio %.2f (target >= 1.5): %s\n", m/k, m/a, r, (r >= 1.5 ? "PASS" : "FAIL")}'
awk -v k="$kb" -v a="$ab" -v f="$kbf" 'BEGIN {printf "fauxqs-bound ceiling aws wall / fauxqs CPU = %.2f; kiln wall / fauxqs CPU = %.2f (1.00 = fauxqs never waited for kiln)\n", a/f, k/f}'
