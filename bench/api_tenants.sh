#!/usr/bin/env bash
# Benchmarks kiln serve's API with two tenants, first alone and then with 200 idle connections
# held open (connected, no request sent, from 8 loopback addresses: many clients, each under
# the per-address cap). The load is GET /v1/builds/{id}, each request alternating between the
# two tenants, each reading its own build with its own token. The access log is on (stderr)
#   target: GET p99 < 10 ms in both runs (the idle connections change nothing: ratio ~1)
# Usage: bench/api_tenants.sh [KILN_BIN]
#   (env: DURATION=10s CONNS=16 THREADS=2 IDLE=200 ROUNDS=3; ACCESS_LOG=off: --no-access-log)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln "${1:-}"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
IDLE=${IDLE:-200}
ROUNDS=${ROUNDS:-3}
LOG_OPT=()
[ "${ACCESS_LOG:-on}" = off ] && LOG_OPT=(--no-access-log)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
T=$(mktemp -d /tmp/kiln-bench.XXXXXX)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
TOKEN_A=bench-acme-token-0123456789
TOKEN_B=bench-globex-token-0123456789
PID="" IDLE_PID=""
cleanup() {
  [ -n "$IDLE_PID" ] && kill "$IDLE_PID" 2>/dev/null
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

# Two tenants; idle connections are kept for the whole run (connection_timeout), the default
# per-address (128) and total caps stay.
cat >"$T/config.json" <<JSON
{"tenants": [{"name": "acme", "tokens": ["$TOKEN_A"]},
             {"name": "globex", "tokens": ["$TOKEN_B"]}],
 "connection_timeout": 600}
JSON
start() {
  # Builds run /bin/true: the benchmark measures the API, not building.
  "$KILN" serve --listen 127.0.0.1:$PORT --root "$T/root" --workers 1 --config "$T/config.json" \
    --build-command /bin/true ${LOG_OPT[@]+"${LOG_OPT[@]}"} >"$T/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}
if ! start; then
  if grep -q 'no API token configured' "$T/serve.log"; then
    # a kiln from before tenants: both tokens act for the one tenant "default"
    echo "WARNING: this kiln has no \"tenants\" config: both tokens are one tenant's"
    printf '{"tokens": ["%s", "%s"], "connection_timeout": 600}\n' "$TOKEN_A" "$TOKEN_B" \
      >"$T/config.json"
    PID=""
    start || { cat "$T/serve.log"; exit 1; }
  else
    cat "$T/serve.log"
    exit 1
  fi
fi

submit() { # token => build id
  curl -sf -H "Authorization: Bearer $1" -d '{"source":{"git":"https://git.example.test/a.git"}}' \
    "http://127.0.0.1:$PORT/v1/builds" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])'
}
ID_A=$(submit "$TOKEN_A")
ID_B=$(submit "$TOKEN_B")
sleep 1

cat >"$T/get.lua" <<LUA
local reqs = {
  wrk.format("GET", "/v1/builds/$ID_A", {["Authorization"] = "Bearer $TOKEN_A"}),
  wrk.format("GET", "/v1/builds/$ID_B", {["Authorization"] = "Bearer $TOKEN_B"}),
}
local n = 0
request = function()
  n = n + 1
  return reqs[n % 2 + 1]
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d non2xx=%d errors=%d rps=%.0f p50=%d p90=%d p99=%d p999=%d max=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
LUA

run() { # label => RESULT line in $T/$label.out
  echo "== $1: GET /v1/builds/{id}, 2 tenants ($DURATION, $CONNS connections)"
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$T/get.lua" "http://127.0.0.1:$PORT/" >"$T/$1.out"
  grep '^RESULT' "$T/$1.out"
}
field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" "$T/$1.out"; }

# The idle connections: opened from 127.0.0.2..9, then only held; on exit, the number still
# open (the server closed none of them) is written out.
cat >"$T/idle.py" <<'PY'
import signal, socket, sys, time
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i % 8), 0))
    s.connect(("127.0.0.1", port))
    socks.append(s)
def still_open():
    k = 0
    for s in socks:
        s.setblocking(False)
        try:
            k += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            k += 1
        except OSError:
            pass
    return k
open(out + ".ready", "w").write(str(still_open()))
def stop(*_):
    open(out, "w").write(str(still_open()))
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(1)
PY

# Rounds alternate (without, with): on a shared machine the load of other processes moves
# the tail, so each round's pair is compared and the medians are reported.
for r in $(seq "$ROUNDS"); do
  run "base$r"
  rm -f "$T/idle.count" "$T/idle.count.ready"
  python3 "$T/idle.py" "$PORT" "$IDLE" "$T/idle.count" &
  IDLE_PID=$!
  for _ in $(seq 100); do [ -s "$T/idle.count.ready" ] && break; sleep 0.1; done
  sleep 1
  THREADS_SRV=$(awk '/^Threads/ {print $2}' "/proc/$PID/status")
  run "idle$r"
  kill "$IDLE_PID"
  wait "$IDLE_PID" 2>/dev/null || true
  IDLE_PID=""
  echo "   idle connections open at start / end: $(cat "$T/idle.count.ready") / $(cat "$T/idle.count"); server threads: $THREADS_SRV"
  sleep 1
done

median() { # label-prefix field
  for r in $(seq "$ROUNDS"); do field "$1$r" "$2"; done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
b99=$(median base p99)
i99=$(median idle p99)
echo
echo "summary over $ROUNDS rounds (medians; latencies in microseconds):"
printf '  without idle connections: %s req/s, p50 %s, p90 %s, p99 %s\n' \
  "$(median base rps)" "$(median base p50)" "$(median base p90)" "$b99"
printf '  with %s idle connections: %s req/s, p50 %s, p90 %s, p99 %s\n' \
  "$IDLE" "$(median idle rps)" "$(median idle p50)" "$(median idle p90)" "$i99"
echo "  p99 ratio (with / without): $(python3 -c "print('%.2f' % ($i99 / max($b99, 1)))")"
echo "  non-2xx answers: $(cat "$T"/*.out | sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' | paste -sd+ | bc)"
echo "  target: p99 < 10000 us with and without: $([ "$b99" -lt 10000 ] && [ "$i99" -lt 10000 ] && echo met || echo NOT met)"
echo "  load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
