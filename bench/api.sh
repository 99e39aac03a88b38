#!/usr/bin/env bash
# Benchmarks kiln serve's API on loopback with wrk:
#   GET /v1/builds/{id}   target >= 5,000 req/s with p99 < 10 ms
#   POST /v1/builds       target >= 1,000 enqueues/s
#   idle RssAnon          target <= 20 MiB
# Usage: bench/api.sh [KILN_BIN]   (env: DURATION=10s CONNS=32 THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln "${1:-}"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
T=$(mktemp -d /tmp/kiln-bench.XXXXXX)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
TOKEN=bench-token-0123456789
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

# Builds run /bin/true: the benchmark measures the API and the queue, not building.
KILN_API_TOKENS=$TOKEN "$KILN" serve --listen 127.0.0.1:$PORT --root "$T/root" --workers 2 \
  --build-command /bin/true >"$T/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/RssAnon/ {print $2}' "/proc/$PID/status"; }
IDLE_KB=$(rss)

ID=$(curl -sf -H "Authorization: Bearer $TOKEN" -d '{"source":{"git":"https://git.example.test/a.git"}}' \
  "http://127.0.0.1:$PORT/v1/builds" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
sleep 0.5

cat >"$T/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
cat >"$T/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source":{"git":"https://git.example.test/app.git","ref":"main"},"outputs":[{"type":"registry","name":"r.example.test/app:1"}]}'
LUA

echo "== GET /v1/builds/$ID ($DURATION, $CONNS connections)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$T/get.lua" \
  "http://127.0.0.1:$PORT/v1/builds/$ID" | tee "$T/get.out"
echo "== POST /v1/builds ($DURATION, $CONNS connections)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$T/post.lua" \
  "http://127.0.0.1:$PORT/v1/builds" | tee "$T/post.out"
BUSY_KB=$(rss)

get_rps=$(awk '/Requests\/sec/ {print $2}' "$T/get.out")
get_p99=$(awk '$1 == "99%" {print $2}' "$T/get.out")
post_rps=$(awk '/Requests\/sec/ {print $2}' "$T/post.out")
non2xx=$(grep -h 'Non-2xx' "$T/get.out" "$T/post.out" || true)
echo
echo "summary:"
echo "  GET  /v1/builds/{id}: $get_rps req/s, p99 $get_p99 (target >= 5000 req/s, p99 < 10ms)"
echo "  POST /v1/builds:      $post_rps enqueues/s (target >= 1000)"
echo "  RssAnon idle: $((IDLE_KB / 1024)) MiB ($IDLE_KB kB; target <= 20 MiB), after load: $((BUSY_KB / 1024)) MiB"
[ -n "$non2xx" ] && echo "  WARNING: $non2xx"
exit 0
