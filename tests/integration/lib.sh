# Shared helpers for shell integration tests. Source it; it prints TAP lines.
#   KILN_BIN   the kiln binary under test (set by tests/run.sh)
#   T          a private temp dir, removed at exit
set -u
: "${KILN_BIN:?KILN_BIN must point at the kiln binary}"
KILN=$KILN_BIN
T=$(mktemp -d /tmp/kiln-it.XXXXXX)
_TAP_N=0
_TAP_FAILS=0
_CLEANUPS=()

at_exit() { _CLEANUPS+=("$*"); }
_run_cleanups() {
  local i
  for ((i = ${#_CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${_CLEANUPS[$i]}" >/dev/null 2>&1 || true; done
  local p
  for p in "$T"/registry.*/pid; do [ -f "$p" ] && kill "$(cat "$p")" >/dev/null 2>&1; done
  rm -rf "$T"
  echo "1..$_TAP_N"
}
trap _run_cleanups EXIT

ok() { _TAP_N=$((_TAP_N + 1)); echo "ok $_TAP_N - $*"; }
not_ok() { _TAP_N=$((_TAP_N + 1)); _TAP_FAILS=$((_TAP_FAILS + 1)); echo "not ok $_TAP_N - $*"; }
skip() { _TAP_N=$((_TAP_N + 1)); echo "ok $_TAP_N - $1 # SKIP ${2:-}"; }
# check "description" command...   -> ok when the command exits 0
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# check_fails "description" command... -> ok when the command exits non-zero
check_fails() { local d=$1; shift; if "$@"; then not_ok "$d"; else ok "$d"; fi; }
diag() { echo "# $*"; }

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# Waits until 127.0.0.1:PORT accepts connections (max ~10 s).
wait_port() {
  local port=$1 i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Makes a busybox rootfs in DIR (from busybox-static).
make_busybox_rootfs() {
  local dir=$1
  mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root}
  cp /bin/busybox "$dir/bin/busybox"
  for a in sh echo cat ls mkdir rm ln chmod chown touch true false sleep id env test wc head sed grep; do
    ln -sf busybox "$dir/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
  echo 'root:x:0:' >"$dir/etc/group"
}

# Starts docker-registry (no auth) on a free port; echoes the port.
start_registry() {
  local port dir
  port=$(free_port); dir=$(mktemp -d "$T/registry.XXXXXX")
  cat >"$dir/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
  /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  # called as port=$(start_registry): an at_exit here would be lost with the subshell, so the
  # pid is kept beside the registry and _run_cleanups stops it
  echo $! >"$dir/pid"
  wait_port "$port" || return 1
  echo "$port"
}
