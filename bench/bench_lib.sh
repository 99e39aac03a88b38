# Shared by every bench/ script: the kiln binary, timing under /usr/bin/time -v, the statistics
# printed (median, min, max of the rounds, peak RSS), one ratio line per case, and buildah on
# its fastest sensible setting. Source it after `cd "$(dirname "$0")/.."`; it sets
#   KILN   the README's binary, build/src/kiln (what scripts/setup.sh builds; built or brought
#          up to date here), or $KILN_BIN / the first argument given to bench_kiln
#   RUNS   rounds per case (default 5: medians of fewer runs are not reported as figures)
#   T      a scratch directory removed on exit (bench_scratch NAME)
# kiln compresses layers with ISA-L gzip level 3 by default (`--compression-level`); the peers
# are given the same level: buildah `push --compression-format gzip --compression-level 3`.
KILN_GZIP_LEVEL=${KILN_GZIP_LEVEL:-3}
RUNS=${RUNS:-5}
# When the script began: bench_header may print after the rounds, and must still tell the load
# and the time they started at.
BENCH_START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
BENCH_START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')

# Sets KILN to the binary to measure, building build/src/kiln the way scripts/setup.sh does.
bench_kiln() { # [path]
  local want=${1:-${KILN_BIN:-}}
  if [ -z "$want" ]; then
    want=build/src/kiln
    # built (or brought up to date with the source: the header names the source commit) the
    # way scripts/setup.sh does; a no-op when nothing changed
    [ -x "$want" ] || echo "building $want (meson + ninja, as scripts/setup.sh does)" >&2
    [ -f build/build.ninja ] || meson setup build >/dev/null
    ninja -C build >/dev/null
  fi
  [ -x "$want" ] || { echo "kiln binary not found at $want (set KILN_BIN)" >&2; exit 1; }
  KILN=$(realpath "$want")
}

# A scratch directory $T under /var/tmp (disk, like a build root), removed on exit unless the
# script sets its own trap (it then calls bench_cleanup itself).
bench_scratch() { # name
  # lowercase only: peers' Dockerfiles name layouts under it (FROM oci:$T/...), and an OCI
  # reference must be lowercase
  T=/var/tmp/kiln-bench-$1.$$.$RANDOM
  mkdir "$T"
  : >"$T/times"
  trap bench_cleanup EXIT
}
bench_cleanup() {
  if [ -d "$T/broot" ]; then # buildah ran (in this shell or under timed)
    bah rm -a >/dev/null 2>&1 || true
    bah rmi -a -f >/dev/null 2>&1 || true
  fi
  umount -R "$T/broot/overlay" 2>/dev/null || true
  rm -rf "$T"
}

# Starts Debian's docker-registry on a free loopback port with its storage under DIR; sets
# REG_PORT and REG_PID (the caller's EXIT trap kills it).
bench_registry() { # dir
  REG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$1"
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$1/data" "$REG_PORT" >"$1/config.yml"
  /usr/bin/docker-registry serve "$1/config.yml" >"$1/log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$REG_PORT") 2>/dev/null && break; sleep 0.2; done
}

# kiln's Node images with the Node release kiln's plan resolves for an app, for a peer's
# hand-written Dockerfile: OCI layouts DIR/node-build (tag build: the whole toolchain under
# /opt/node) and DIR/node-run (tag run: bin/node only, as kiln's run stage copies it), made
# by kiln from IMAGES' node-build and node-run. The toolchain is fetched once, into
# $KILN_TOOLCHAIN_CACHE when set (kiln's own builds then reuse it too). Sets NODE_VERSION.
bench_node_bases() { # dir app images
  local tc dir i
  tc=$("$KILN" plan --fetch-toolchain --root "$1/tcroot" "$2" 2>&1 >/dev/null |
    sed -n 's/^kiln: toolchain node \([^ ]*\) in \(.*\)$/\1 \2/p')
  NODE_VERSION=${tc%% *}
  dir=${tc#* }
  [ -d "$dir" ] || { echo "bench: no Node toolchain ($tc)" >&2; exit 1; }
  for i in build run; do
    mkdir -p "$1/base-$i"
    { echo "FROM oci:$3/node-$i"
      if [ $i = build ]; then echo "COPY --from=node / /opt/node"; else echo "COPY --from=node /bin/node /opt/node/bin/node"; fi
      echo "ENV PATH=/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    } >"$1/base-$i/Dockerfile"
    "$KILN" build --root "$1/baseroot" --progress quiet --build-context "node=$dir" -t "node:$i" \
      -o "type=oci,dest=$1/node-$i" "$1/base-$i" >/dev/null
  done
  rm -rf "$1/baseroot" # the disk the builds need: only the two layouts stay
}

# buildah with the overlay driver (not vfs, which copies every layer) and a private TMPDIR:
# buildah keeps RUN cache mounts under $TMPDIR/buildah-cache-UID whatever its --root, so a
# shared TMPDIR would make a "cold" build warm.
bah() {
  mkdir -p "$T/btmp"
  env TMPDIR="$T/btmp" buildah --root "$T/broot" --runroot "$T/brun" --storage-driver overlay "$@"
}
# the same as a command string (for timed/rounds, which run `bash -c`)
BAH_CMD() {
  echo "mkdir -p $T/btmp && env TMPDIR=$T/btmp buildah --root $T/broot --runroot $T/brun --storage-driver overlay"
}
# buildah push at kiln's gzip level
bah_push_cmd() { # image dest-oci-dir
  echo "rm -rf $2 && $(BAH_CMD) push -q --compression-format gzip --compression-level $KILN_GZIP_LEVEL $1 oci:$2:latest"
}
# forget everything buildah built (a cold start for the next round)
bah_fresh_cmd() {
  echo "$(BAH_CMD) rmi -a -f; $(BAH_CMD) rm -a; umount -R $T/broot/overlay 2>/dev/null; rm -rf $T/broot $T/brun $T/btmp"
}

# Runs `bash -c CMD` under /usr/bin/time -v; appends "name secs rss_kib cpu_secs" to $T/times
# (cpu = user + system of the command and its children: on a loaded shared machine it moves far
# less than wall time does).
timed() { # name cmd
  /usr/bin/time -v -o "$T/tv" bash -c "$2" >"$T/last.log" 2>&1 ||
    { echo "$1 failed:" >&2; tail -20 "$T/last.log" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0;
    for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.3f", s}' "$T/tv")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$T/tv")
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.3f", s}' "$T/tv")
  echo "$1 $wall $rss $cpu" >>"$T/times"
  # figures the command printed itself ("METRIC key=value ...": see bench_metric)
  sed -n 's/^METRIC //p' "$T/last.log" | tr ' ' '\n' |
    awk -F= -v n="$1" 'NF == 2 && $2 != "" {print n, $1, $2}' >>"$T/metrics"
}
# A figure of this round that is not the wall time of one command (a wrk run's requests/s and
# latency percentiles, a server's CPU and RSS): kept as "name key value" in $T/metrics, one per
# round, and summed up by metric_table (median, min, max over the rounds) like the wall times.
# A timed command gives them by printing a line "METRIC key=value [key=value ...]".
bench_metric() { # name key value
  echo "$1 $2 $3" >>"$T/metrics"
}
# A command dropping DIR's files from the page cache (posix_fadvise DONTNEED on each; never a
# global drop_caches that would disturb the machine's other users): a rounds() prepare step for
# runs that read from the disk ("cold").
evict_cmd() { # dir
  printf '%s' "python3 -c 'import os, sys
for r, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        try: fd = os.open(os.path.join(r, f), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError: continue
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' \"$1\""
}
# Fresh file systems (FRESH_FS=1, the default, where the machine allows it): bench_newfs DIR
# makes DIR an empty new journaled ext4 (8 GiB sparse image beside it, loop-mounted; inode tables
# written by mkfs, not by ext4lazyinit during a timed run), as a new worker's storage is new.
# Without it DIR is a plain new directory: on this VM's journal-less ext4 a tree made right after
# another was deleted pays for the deletion in the inode allocator (ext4's recently_deleted(),
# checked only without a journal; 1-6 minutes), whichever command comes next. Both are exported
# for rounds()' prepare commands (bash -c); bench_dropfs DIR unmounts and removes it.
FRESH_FS=${FRESH_FS:-1}
if [ "$FRESH_FS" = 1 ] && { [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null || ! losetup -f >/dev/null 2>&1; }; then
  echo "bench: FRESH_FS=1 needs root, mkfs.ext4 and a free loop device: plain directories" >&2
  FRESH_FS=0
fi
export FRESH_FS
bench_dropfs() { # dir
  if mountpoint -q "$1"; then umount "$1"; fi
  rm -rf "$1" "$1.img"
}
bench_newfs() { # dir
  bench_dropfs "$1"
  mkdir -p "$1"
  [ "$FRESH_FS" = 1 ] || return 0
  truncate -s 8G "$1.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$1.img"
  mount -o loop "$1.img" "$1"
}
export -f bench_dropfs bench_newfs
# Rounds of (name, prepare, command) triples run in turn, RUNS rounds, so a busy shared
# machine weighs on all alike. PEER_RUNS (default RUNS) bounds the rounds of names starting
# with "buildah-" (one of its big builds can take minutes).
rounds() {
  local -a names=() preps=() cmds=()
  local r i
  while [ $# -gt 0 ]; do names+=("$1"); preps+=("$2"); cmds+=("$3"); shift 3; done
  for ((r = 0; r < RUNS; r++)); do
    for i in "${!names[@]}"; do
      [[ ${names[$i]} != buildah-* ]] || [ "$r" -lt "${PEER_RUNS:-$RUNS}" ] || continue
      [ -z "${preps[$i]}" ] || bash -c "${preps[$i]}" >/dev/null 2>&1 || true
      timed "${names[$i]}" "${cmds[$i]}"
    done
  done
}
# "median min max" of the numbers on stdin (one a line; "0 0 0" when there are none), with
# printf format FMT for each
med_min_max() { # [fmt]
  sort -g | awk -v f="${1:-%.2f}" '{v[NR] = $1} END {
    if (NR == 0) { print "0 0 0"; exit }
    med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf f " " f " " f "\n", med, v[1], v[NR]}'
}
# "median min max rss_mib" of a name (seconds; peak RSS over the rounds and the processes)
stats() {
  echo "$(awk -v n="$1" '$1 == n {print $2}' "$T/times" | med_min_max)" \
    "$(awk -v n="$1" '$1 == n && $3 > m {m = $3} END {printf "%.0f", m / 1024}' "$T/times")"
}
med() { stats "$1" | cut -d' ' -f1; }
# median CPU seconds (user + system) of a name
cpu_med() { awk -v n="$1" '$1 == n && NF >= 4 {print $4}' "$T/times" | med_min_max | cut -d' ' -f1; }
# "median min max" of a name's figure KEY over the rounds (bench_metric)
metric_stats() { # name key [fmt]
  [ -f "$T/metrics" ] || { echo "0 0 0"; return; }
  awk -v n="$1" -v k="$2" '$1 == n && $2 == k {print $3}' "$T/metrics" | med_min_max "${3:-%.2f}"
}
metric_med() { metric_stats "$@" | cut -d' ' -f1; }
# The table of every figure kept by bench_metric: name, key, rounds, median, min, max.
metric_table() {
  [ -s "$T/metrics" ] || return 0
  printf '%-24s %-16s %4s %11s %11s %11s\n' run figure n median min max
  awk '!seen[$1 " " $2]++ {print $1, $2}' "$T/metrics" | while read -r n k; do
    printf '%-24s %-16s %4s %11s %11s %11s\n' "$n" "$k" \
      "$(awk -v n="$n" -v k="$k" '$1 == n && $2 == k' "$T/metrics" | wc -l)" $(metric_stats "$n" "$k")
  done
}
# Both tables (wall times, then the figures), set apart by blank lines.
bench_tables() {
  echo
  stats_table
  echo
  metric_table
  echo
}
# One line for a figure against an absolute goal: "CASE name key median (min-max) goal ratio".
# CMP is "<=" or ">=" (what meets the goal); the ratio is median / goal.
goal_line() { # case name key cmp goal [unit]
  local m lo hi met
  read -r m lo hi < <(metric_stats "$2" "$3")
  met=$(awk -v m="$m" -v g="$5" -v c="$4" 'BEGIN {print ((c == "<=" ? m <= g : m >= g) ? "met" : "NOT met")}')
  printf '%-22s %s %s %s%s (%s-%s)  goal %s %s%s  ratio %s  %s\n' "$1" "$2" "$3" "$m" "${6:-}" \
    "$lo" "$hi" "$4" "$5" "${6:-}" "$(ratio "$m" "$5")" "$met"
}
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9)))" "$1" "$2"; }
# The table of every name timed: runs, median, min, max, peak RSS.
stats_table() {
  local name
  printf '%-24s %4s %9s %9s %9s %9s %9s\n' run n median min max "RSS MiB" "CPU s"
  for name in $(awk '{print $1}' "$T/times" | awk '!seen[$0]++'); do
    printf '%-24s %4s %9s %9s %9s %9s %9s\n' "$name" "$(awk -v n="$name" '$1 == n' "$T/times" | wc -l)" \
      $(stats "$name") "$(cpu_med "$name")"
  done
}
# One ratio line: "CASE  A med  B med  A/B ratio" (medians).
ratio_line() { # case a b [goal text]
  printf '%-22s %s %7ss  %s %7ss  %s/%s %5s  %s\n' "$1" "$2" "$(med "$2")" "$3" "$(med "$3")" \
    "$2" "$3" "$(ratio "$(med "$2")" "$(med "$3")")" "${4:-}"
}
# What the figures came from: the machine, the binaries, the load (the machine may be shared).
bench_header() {
  printf 'machine: %s, %s CPUs, %s GiB RAM; load average at start: %s\n' "$(uname -srm)" \
    "$(nproc)" "$(free -g | awk '/Mem:/ {print $2}')" "$BENCH_START_LOAD"
  printf '%s (%s); gzip level %s for kiln and its peers; RUNS=%s\n' \
    "$("$KILN" version 2>/dev/null | head -1)" "$KILN" "$KILN_GZIP_LEVEL" "$RUNS"
  printf 'started %s; source at commit %s%s\n' "$BENCH_START_DATE" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
  ! command -v buildah >/dev/null || buildah --version
}
bench_footer() {
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs); ended $(date -u '+%H:%M UTC')"
}

# "COMPRESSED UNCOMPRESSED" bytes of the layers of the one image in an OCI layout
layers_size() {
  python3 - "$1" <<'PY'
import gzip, json, os, sys
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
raw = 0
for l in m["layers"]:
    with open(blob(l["digest"]), "rb") as f:
        src = gzip.GzipFile(fileobj=f) if "gzip" in l["mediaType"] else f
        while True:
            b = src.read(1 << 20)
            if not b:
                break
            raw += len(b)
print(sum(l["size"] for l in m["layers"]), raw)
PY
}

# Runs CMD..., then prints "METRIC server_cpu_s=S server_rss_mib=M" for the server process PID:
# the CPU seconds (user + system, its threads and reaped children) it used while CMD ran and
# its peak RSS so far (VmHWM): what a client command's own CPU and RSS do not show. Exported:
# timed runs its commands with `bash -c`.
bench_serving() { # pid cmd...
  local pid=$1 t0 t1
  shift
  t0=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")
  "$@" || return
  t1=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")
  awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v m="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")" \
    'BEGIN {printf "METRIC server_cpu_s=%.2f server_rss_mib=%.1f\n", (b - a) / hz, m / 1024}'
}
export -f bench_serving
# A wrk script's done(): one METRIC line of the run's requests/s and latency percentiles (ms),
# non-2xx answers and socket errors, for timed to keep (append to a wrk -s script).
wrk_metrics_lua() {
  cat <<'LUA'
done = function(summary, latency, requests)
  local ms = function(p) return latency:percentile(p) / 1000 end
  io.write(string.format("METRIC rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
}
