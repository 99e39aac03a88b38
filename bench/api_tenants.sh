#!/usr/bin/env bash
# Benchmarks kiln serve's API with two tenants, first alone and then with 200 idle connections
# held open (connected, no request sent, from 8 loopback addresses: many clients, each under
# the per-address cap). The load is GET /v1/builds/{id}, each request alternating between the
# two tenants, each reading its own build with its own token. The access log is on (stderr)
#   target: GET p99 < 10 ms in both cases (the idle connections change nothing: ratio ~1)
# RUNS rounds (default 5) of the two cases in turn, each wrk run under /usr/bin/time -v
# (bench_lib's timed) with its figures kept per round (requests/s, p50/p90/p99/p99.9 and max
# latency, the server's CPU and peak RSS); printed as median, min and max over the rounds, then
# one ratio line per case.
# Usage: bench/api_tenants.sh [KILN_BIN]
#   (env: RUNS=5 DURATION=10s CONNS=16 THREADS=2 IDLE=200; ACCESS_LOG=off: --no-access-log)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln "${1:-}"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
IDLE=${IDLE:-200}
LOG_OPT=()
[ "${ACCESS_LOG:-on}" = off ] && LOG_OPT=(--no-access-log)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
bench_scratch api-tenants
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
TOKEN_A=bench-acme-token-0123456789
TOKEN_B=bench-globex-token-0123456789
PID="" IDLE_PID=""
cleanup() {
  [ -n "$IDLE_PID" ] && kill "$IDLE_PID" 2>/dev/null
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null
  bench_cleanup
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
LUA

wrk_metrics_lua >>"$T/get.lua"
wrk_cmd="bench_serving $PID wrk -t$THREADS -c$CONNS -d$DURATION -s $T/get.lua http://127.0.0.1:$PORT/"

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
# the tail, so both cases see the same share of it.
bench_header
echo "wrk $DURATION, $CONNS connections, $THREADS threads; $IDLE idle connections in the second case"
for ((r = 0; r < RUNS; r++)); do
  timed without "$wrk_cmd"
  rm -f "$T/idle.count" "$T/idle.count.ready"
  python3 "$T/idle.py" "$PORT" "$IDLE" "$T/idle.count" &
  IDLE_PID=$!
  for _ in $(seq 100); do [ -s "$T/idle.count.ready" ] && break; sleep 0.1; done
  sleep 1
  bench_metric idle server_threads "$(awk '/^Threads/ {print $2}' "/proc/$PID/status")"
  timed with-idle "$wrk_cmd"
  kill "$IDLE_PID"
  wait "$IDLE_PID" 2>/dev/null || true
  IDLE_PID=""
  bench_metric idle open_at_start "$(cat "$T/idle.count.ready")"
  bench_metric idle open_at_end "$(cat "$T/idle.count")"
  sleep 1
done

bench_tables
goal_line "without idle" without p99_ms "<=" 10 " ms"
goal_line "with $IDLE idle" with-idle p99_ms "<=" 10 " ms"
printf '%-22s with-idle/without: p99 %s, p50 %s, req/s %s (medians)\n' "idle connections" \
  "$(ratio "$(metric_med with-idle p99_ms)" "$(metric_med without p99_ms)")" \
  "$(ratio "$(metric_med with-idle p50_ms)" "$(metric_med without p50_ms)")" \
  "$(ratio "$(metric_med with-idle rps)" "$(metric_med without rps)")"
non2xx=$(awk '$2 == "non2xx" || $2 == "errors" {s += $3} END {print s + 0}' "$T/metrics")
[ "$non2xx" = 0 ] || echo "WARNING: $non2xx non-2xx answers or socket errors"
bench_footer
exit 0
