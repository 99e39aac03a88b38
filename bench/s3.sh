#!/usr/bin/env bash
# S3 upload benchmark against fauxqs on loopback, kiln vs awscli side by side:
#   1. a static site of 1,000 files, 10 MB in all: `kiln upload` vs `aws s3 sync`
#   2. one big file (BENCH_BIG_MIB, default 1 GiB) in 8 MiB parts: `kiln upload` vs `aws s3 cp`
# Each run goes to a fresh prefix (nothing is skipped as unchanged). RUNS rounds (default 5)
# of the cases in turn, each command under /usr/bin/time -v (bench_lib's timed): median, min
# and max wall time, the client's CPU and peak RSS, and the CPU and peak RSS fauxqs itself
# spent on each run; then one ratio line per case.
# Targets: site time ratio <= 0.5; big-file throughput ratio >= 1.5.
#
# fauxqs (one Node thread) does the same work per byte whoever uploads: an MD5
# of every part as it arrives and, on completion, an MD5 of every part again
# plus one copy of the whole object. No client can finish before fauxqs has
# done that work, so "aws wall / fauxqs CPU" is the best ratio any client can
# reach against it; the big-file lines print that ceiling next to the ratio.
#
#   KILN_BIN           the kiln binary (default build/src/kiln, the README's; built if absent)
#   RUNS               rounds (default 5; BENCH_RUNS is read too)
#   BENCH_BIG_MIB      size of the big file (default 1024)
#   BENCH_FAUXQS_PROF  a directory: run fauxqs under `node --cpu-prof` there
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
RUNS=${BENCH_RUNS:-$RUNS}
BIG_MIB=${BENCH_BIG_MIB:-1024}
CACHE=/var/cache/kiln/bench-s3
bench_scratch s3
W=$T
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; bench_cleanup; }
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

bench_header
echo "fauxqs on $EP (a fresh one for each round's site uploads and for each big upload)"
for ((r = 0; r < RUNS; r++)); do
  start_fauxqs
  # each run: a fresh random prefix (\$RANDOM is expanded by the inner shell)
  timed kiln-site "bench_serving ${PIDS[0]} $KILN upload $CACHE/site --output type=s3,dest=s3://bench/k-site-\$RANDOM\$RANDOM"
  timed aws-site "bench_serving ${PIDS[0]} /usr/bin/aws --endpoint-url $EP s3 sync --only-show-errors $CACHE/site s3://bench/a-site-\$RANDOM\$RANDOM"
  # big file: a fresh fauxqs per upload so that memory from the one before does not slow it
  start_fauxqs
  timed kiln-big "bench_serving ${PIDS[0]} $KILN upload $CACHE/big/big.bin --output type=s3,dest=s3://bench/k-big-\$RANDOM/ --part-size 8M"
  start_fauxqs
  timed aws-big "bench_serving ${PIDS[0]} /usr/bin/aws --endpoint-url $EP s3 cp --only-show-errors $CACHE/big/big.bin s3://bench/a-big-\$RANDOM/big.bin"
done

bench_tables
ratio_line "site 1,000 files" kiln-site aws-site "(goal <= 0.5)"
ratio_line "big ${BIG_MIB} MiB" kiln-big aws-big "(goal: throughput >= 1.5x aws, this <= 0.67)"
awk -v k="$(med kiln-big)" -v a="$(med aws-big)" -v m="$BIG_MIB" 'BEGIN {
  printf "%-22s kiln %.0f MiB/s, aws %.0f MiB/s: kiln/aws %.2f (goal >= 1.5)\n", "big throughput", m / k, m / a, a / k}'
awk -v k="$(med kiln-big)" -v a="$(med aws-big)" -v fk="$(metric_med kiln-big server_cpu_s)" \
  -v fa="$(metric_med aws-big server_cpu_s)" 'BEGIN {
  printf "%-22s wall / fauxqs CPU: kiln %.2f, aws %.2f (1.00 = fauxqs never waited for the client)\n", "big fauxqs-bound", k / fk, a / fa}'
bench_footer
