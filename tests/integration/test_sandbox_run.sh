#!/usr/bin/env bash
# `kiln run`: normal work in a busybox rootfs — exit codes, output streams,
# env/workdir/user, mounts, limits — and the step's changes as a layer
# (whiteouts for deleted base files, owners as seen inside), the same from the
# overlay path and from the walking differ.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
  skip "kiln run" "needs root"
  exit 0
fi
R=$T/rootfs
make_busybox_rootfs "$R"
for a in dd tar cut md5sum sort find stat hostname pwd; do ln -sf busybox "$R/bin/$a"; done
echo 'builder:x:1000:1000::/home/builder:/bin/sh' >>"$R/etc/passwd"
echo base >"$R/etc/base-file"
mkdir -p "$R/opt/keep" "$R/opt/gone"
echo keep >"$R/opt/keep/f"
echo gone >"$R/opt/gone/f"
rmdir "$R/proc" "$R/sys" "$R/dev" # mount points kiln must not leave in the layer
lower_sum() { (cd "$R" && find . -printf '%p %m %U %G %s %T@\n' | sort | md5sum); }
BEFORE=$(lower_sum)
run() { "$KILN" run --rootfs "$R" --network none "$@"; }

out=$(run -- sh -c 'echo to-out; echo to-err >&2' 2>"$T/err")
check "stdout is the step's stdout" test "$out" = to-out
check "stderr is the step's stderr" grep -qx to-err "$T/err"
run -- false; check "exit code 1 passes through" test $? = 1
run -- sh -c 'exit 42'; check "exit code 42 passes through" test $? = 42
run -- sh -c 'kill -9 $$'; check "killed by SIGKILL exits 137" test $? = 137
run -- /no/such/thing 2>/dev/null; check "a missing command exits 127" test $? = 127
out=$(run --env FOO=bar --env PATH=/bin -- sh -c 'echo $FOO:$PATH')
check "--env sets the environment" test "$out" = bar:/bin
out=$(run --workdir /work/dir -- pwd)
check "--workdir is created and used" test "$out" = /work/dir
out=$(run --user builder -- id -u)
check "--user NAME from the rootfs passwd" test "$out" = 1000
out=$(run --user 1234:5678 -- sh -c 'echo $(id -u):$(id -g)')
check "--user UID:GID" test "$out" = 1234:5678
out=$(run --hostname buildbox -- hostname)
check "--hostname" test "$out" = buildbox
out=$(run -- id -u)
check "uid 0 inside" test "$out" = 0
out=$(run -- cat /proc/self/uid_map)
check "uid 0 inside is not uid 0 on the host" bash -c "awk '{exit !(\$1 == 0 && \$2 != 0)}' <<<'$out'"
out=$(run --timestamps -- echo hi)
check "--timestamps prefixes lines" grep -qE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} hi$' <<<"$out"

mkdir -p "$T/host-ro" "$T/host-rw" "$T/cache"
echo ro >"$T/host-ro/f"
echo s3cr3t >"$T/secret"
run --mount "type=bind,src=$T/host-ro,dst=/mnt/ro,ro" -- sh -c 'echo x > /mnt/ro/f' 2>/dev/null
check "a read-only bind mount refuses writes" test $? != 0
check "the host file behind a ro bind is unchanged" test "$(cat "$T/host-ro/f")" = ro
run --mount "type=bind,src=$T/host-rw,dst=/mnt/rw" -- sh -c 'echo rw > /mnt/rw/f'
check "a read-write bind mount writes through" test "$(cat "$T/host-rw/f" 2>/dev/null)" = rw
out=$(run --mount "type=tmpfs,dst=/scratch,size=1m" -- sh -c 'dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>&1; echo rc=$?')
check "a tmpfs mount has its size" grep -q 'rc=1' <<<"$out"
run --mount "type=cache,src=$T/cache,dst=/root/.cache" -- sh -c 'echo 1 >> /root/.cache/n'
run --mount "type=cache,src=$T/cache,dst=/root/.cache" -- sh -c 'echo 1 >> /root/.cache/n'
check "a cache mount persists between steps" test "$(wc -l <"$T/cache/n")" = 2
run --file-size 1m -- sh -c 'dd if=/dev/zero of=/big bs=1k count=4096 2>/dev/null'
check "--file-size limits the files a step writes" test $? != 0
run --timeout 1s -- sleep 30 2>/dev/null; check "--timeout kills a slow step (137)" test $? = 137

# The step's changes as a layer.
STEP='set -e
echo hi > /root/new
mkdir -p /app/sub && chown 1234:99 /app/sub && ln -s ../root/new /app/link
echo more >> /etc/base-file
rm /etc/group
rm -rf /opt/gone
chmod 700 /opt/keep
dd if=/dev/zero of=/app/large bs=1M count=64 2>/dev/null
cat /run/secrets/token > /dev/null'
run --mount "type=secret,src=$T/secret,dst=/run/secrets/token" --diff-output "$T/overlay.tar" \
  --source-date-epoch 0 -- sh -c "$STEP"
check "the step ran (overlay)" test $? = 0
tar tvf "$T/overlay.tar" >"$T/overlay.txt" 2>&1
check "layer has the new file" grep -q ' root/new$' "$T/overlay.txt"
check "layer has a whiteout for a deleted base file" grep -q ' etc/.wh.group$' "$T/overlay.txt"
check "layer has a whiteout for a deleted base dir" grep -q ' opt/.wh.gone$' "$T/overlay.txt"
check "layer keeps owners as seen inside (1234:99)" grep -qE '1234/99 .* app/sub/$' "$T/overlay.txt"
check "layer has the symlink" grep -q 'app/link -> ../root/new' "$T/overlay.txt"
check "layer has the 64 MiB file" grep -qE ' 67108864 .* app/large$' "$T/overlay.txt"
check "layer has the changed base file" grep -q ' etc/base-file$' "$T/overlay.txt"
check_fails "layer has no secret" grep -q 'secrets' "$T/overlay.txt"
check_fails "layer has no mount points (proc, dev, sys, resolv.conf, hosts)" \
  grep -qE ' (proc|dev|sys)/$| etc/(resolv.conf|hosts|hostname)$' "$T/overlay.txt"
check_fails "layer has nothing from unchanged base dirs" grep -q ' opt/keep/f$' "$T/overlay.txt"
check "the lower rootfs is unchanged" test "$(lower_sum)" = "$BEFORE"

run --differ walk --mount "type=secret,src=$T/secret,dst=/run/secrets/token" \
  --diff-output "$T/walk.tar" --source-date-epoch 0 -- sh -c "$STEP"
check "the step ran (walking differ)" test $? = 0
tar tvf "$T/walk.tar" >"$T/walk.txt" 2>&1
if cmp -s "$T/overlay.tar" "$T/walk.tar"; then ok "overlay and walking differ give byte-identical layers"
else not_ok "overlay and walking differ give byte-identical layers"; diff "$T/overlay.txt" "$T/walk.txt" | head -20 | sed 's/^/# /'; fi
check "the lower rootfs is unchanged after the walking differ" test "$(lower_sum)" = "$BEFORE"

run --diff-output "$T/nothing.tar" -- true
check "a step that changes nothing gives an empty layer (no copied-up /etc for kiln's mounts)" \
  test -z "$(tar tf "$T/nothing.tar" 2>&1)"
run --differ walk --diff-output "$T/nothing-walk.tar" -- true
check "... also with the walking differ" test -z "$(tar tf "$T/nothing-walk.tar" 2>&1)"

# Usage errors.
"$KILN" run -- true 2>/dev/null; check "--rootfs is required (exit 2)" test $? = 2
"$KILN" run --rootfs "$R" 2>/dev/null; check "a command is required (exit 2)" test $? = 2
"$KILN" run --rootfs "$R" --network bogus -- true 2>/dev/null; check "bad --network (exit 2)" test $? = 2
"$KILN" run --rootfs "$R" --mount type=bind,dst=/x -- true 2>/dev/null; check "bad --mount (exit 2)" test $? = 2
"$KILN" run --rootfs "$T/nope" -- true 2>/dev/null; check "missing rootfs (exit 2)" test $? = 2
out=$("$KILN" run --rootfs "$R" --network none --mount type=tmpfs,dst=/etc/passwd/x -- true 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q '/etc/passwd/x' <<<"$out"; then ok "a setup failure inside the step fails naming the mount (exit 1)"
else not_ok "a setup failure inside the step fails naming the mount (exit $rc)"; diag "$out"; fi
check "kiln run -h documents --diff-output" bash -c "'$KILN' run -h | grep -q diff-output"
out=$("$KILN" run -v --rootfs "$R" --network none -- true 2>&1)
check "-v says which isolation auto picked" grep -q 'isolation: sandbox' <<<"$out"

# Changes nobody keeps stay off the host's disk (no scratch dir to create
# and remove: on a filesystem mounted with discard, each removal waits for
# the disk).
TOKEN=m-$$-$RANDOM
mkdir -p "$T/sig"
touch "$T/sig/hold"
run --mount "type=bind,src=$T/sig,dst=/sig" -- sh -c \
  "echo x > /$TOKEN; touch /sig/ready; while [ -e /sig/hold ]; do sleep 0.1; done" &
SPID=$!
for _ in $(seq 1 200); do [ -e "$T/sig/ready" ] && break; sleep 0.1; done
check "the step wrote its file" test -e "$T/sig/ready"
check_fails "... which is nowhere on the host's disk" bash -c \
  "find /var/tmp/kiln /run/kiln -xdev -name '$TOKEN' 2>/dev/null | grep -q ."
rm -f "$T/sig/hold"
wait $SPID
check "... and the step ended normally" test $? = 0

# The step log says what enforces each limit; a cgroup v2 hierarchy (on a
# hybrid host the unified one, without controllers) holds the step's
# processes, and its cgroup is gone after the step.
out=$(run -v --pids 32 --memory 256m -- cat /proc/self/cgroup 2>&1)
check "the log names what limits pids" grep -Eq 'limits: .*pids 32 by (cgroup v[12] pids.max|RLIMIT_NPROC)' <<<"$out"
check "the log names what limits memory" grep -Eq 'limits: memory 268435456 bytes by (cgroup v[12] memory|RLIMIT_AS)' <<<"$out"
cg=$(sed -n 's/.*tracked in cgroup v2 \([^ ;()]*\).*/\1/p' <<<"$out")
if [ -n "$cg" ]; then
  check "the step's cgroup namespace is rooted at its cgroup v2 (clone3 CLONE_INTO_CGROUP)" grep -qx '0::/' <<<"$out"
  rm -f "$T/sig/ready"
  touch "$T/sig/hold"
  run -v --pids 32 --mount "type=bind,src=$T/sig,dst=/sig" -- sh -c \
    "touch /sig/ready; while [ -e /sig/hold ]; do sleep 0.1; done" 2>"$T/cg.log" &
  SPID=$!
  for _ in $(seq 1 200); do [ -e "$T/sig/ready" ] && break; sleep 0.1; done
  cg=$(sed -n 's/.*tracked in cgroup v2 \([^ ;()]*\).*/\1/p' "$T/cg.log")
  check "a running step's processes are in its cgroup v2" grep -q . "$cg/cgroup.procs"
  rm -f "$T/sig/hold"
  wait $SPID
  check "the step's cgroup v2 is removed after the step" test ! -e "$cg"
  TOKEN=kiln-cgdaemon-$$-$RANDOM
  run --pids 32 -- sh -c "(setsid sleep 300 $TOKEN &) ; true" >/dev/null 2>&1
  check_fails "a daemon of a step with a cgroup does not survive it" pgrep -f "sleep 300 $TOKEN"
else
  skip "the step ran in its cgroup v2" "no writable cgroup2 hierarchy here"
  skip "the step's cgroup v2 is removed after the step" "no writable cgroup2 hierarchy here"
  skip "a daemon of a step with a cgroup does not survive it" "no writable cgroup2 hierarchy here"
fi
# Detection follows /proc/self/mountinfo, in a mount namespace of the
# test's own: with every cgroup hierarchy hidden, the limits fall back to
# rlimits and the log says so and why; with cgroup2 mounted somewhere else,
# kiln finds it there.
if grep -q cgroup2 /proc/filesystems && command -v unshare >/dev/null; then
  out=$(unshare -m sh -c "mount -t tmpfs none /sys/fs/cgroup && '$KILN' run --rootfs '$R' --network none --pids 16 -- true" 2>&1)
  check "without cgroups, pids fall back to RLIMIT_NPROC, said without -v" grep -q 'limits: pids 16 by RLIMIT_NPROC.*no cgroup for pids: v2: no writable cgroup2 hierarchy; v1: no writable pids hierarchy' <<<"$out"
  mkdir -p "$T/cg2"
  out=$(unshare -m sh -c "mount -t tmpfs none /sys/fs/cgroup && mount -t cgroup2 none '$T/cg2' && '$KILN' run -v --rootfs '$R' --network none --pids 16 -- cat /proc/self/cgroup" 2>&1)
  check "cgroup2 mounted elsewhere is found through mountinfo" grep -q "tracked in cgroup v2 $T/cg2/kiln-" <<<"$out"
  check "... and the step runs in it" grep -qx '0::/' <<<"$out"
else
  skip "without cgroups, pids fall back to RLIMIT_NPROC" "no cgroup2 or unshare here"
  skip "cgroup2 mounted elsewhere is found through mountinfo" "no cgroup2 or unshare here"
  skip "... and the step runs in it" "no cgroup2 or unshare here"
fi

# --rootfs oci:DIR:TAG — an image's layers unpacked once into the lower cache.
export KILN_LAYER_CACHE=$T/layers
if "$KILN" import "$R" -t local/bb:1 --root "$T/store" --output "type=oci,dest=$T/img" >/dev/null 2>&1; then
  out=$("$KILN" run --rootfs "oci:$T/img:1" --network none -- cat /etc/base-file 2>&1)
  check "--rootfs oci:DIR:TAG runs on the image" test "$out" = base
  check "the image's layer is cached once" test "$(ls "$T/layers" | wc -l)" = 1
  out=$("$KILN" run --rootfs "oci:$T/img:1" --network none --user builder -- id -u 2>&1)
  check "--user resolves in the image" test "$out" = 1000
else
  not_ok "kiln import for the oci: rootfs test"
fi
