#!/usr/bin/env bash
# The hostile-step suite: small static C programs (tests/sandbox/hostile/) each
# try one way out of the step sandbox. Every attempt must fail, and the host
# must be unchanged, checked from outside. Run in `sandbox` and `chroot`
# isolation.
#
# On this host chroot isolation still gets mount/pid/ipc/uts/net namespaces,
# so every case holds; the last section simulates a host without any
# namespace and lists what chroot cannot stop there.
. "$(dirname "$0")/lib.sh"

if ! command -v gcc >/dev/null || [ "$(id -u)" != 0 ]; then
  skip "hostile suite" "needs gcc and root"
  exit 0
fi
SRCDIR=$KILN_SRC/tests/sandbox/hostile
R=$T/rootfs
make_busybox_rootfs "$R"
mkdir -p "$R/hostile" "$R/usr/bin"
built=1
for f in "$SRCDIR"/*.c; do
  gcc -static -O1 -o "$R/hostile/$(basename "$f" .c)" "$f" 2>"$T/gcc.log" || { built=0; cat "$T/gcc.log"; }
done
check "hostile programs build (gcc -static)" test $built = 1
# A setuid-root copy of the probe, run as an unprivileged user.
cp "$R/hostile/setuid_probe" "$R/usr/bin/setuid_probe"
chmod 4755 "$R/usr/bin/setuid_probe"
echo 'nobody:x:1000:1000::/:/bin/sh' >>"$R/etc/passwd"

MARKER=$T/host-only-marker
echo host >"$MARKER"
TARGET=$T/host-target
mkdir -p "$TARGET"
sleep 1000 &
HOSTPID=$!
at_exit "kill $HOSTPID"
running() { pgrep -f "$1" >/dev/null; }
lower_sum() { (cd "$R" && find . -printf '%p %m %U %G %s\n' | sort | md5sum); }
LOWER_BEFORE=$(lower_sum)

# hostile ISO NAME ARGS...  → ok when the program prints BLOCKED and exits 0
hostile() {
  local iso=$1 name=$2; shift 2
  local out rc
  out=$("$KILN" run --rootfs "$R" --isolation "$iso" --network none -- "/hostile/$name" "$@" 2>&1)
  rc=$?
  if [ $rc = 0 ] && grep -q '^BLOCKED' <<<"$out"; then ok "[$iso] $name blocked"
  else not_ok "[$iso] $name blocked (exit $rc)"; diag "$out"; fi
}

for iso in sandbox chroot; do
  hostile $iso mount
  hostile $iso umount_root
  hostile $iso pivot_root
  hostile $iso chroot_escape "$MARKER"
  hostile $iso ptrace_host "$HOSTPID"
  hostile $iso kexec
  hostile $iso init_module
  hostile $iso bpf
  hostile $iso keyctl
  hostile $iso reboot
  hostile $iso userns
  hostile $iso proc_tricks "$MARKER"
  hostile $iso symlink_out "$TARGET"
  hostile $iso sys_write
  hostile $iso mknod_blk

  out=$("$KILN" run --rootfs "$R" --isolation $iso --network none --user nobody -- /usr/bin/setuid_probe 2>&1)
  rc=$?
  if [ $rc = 0 ] && grep -q '^BLOCKED' <<<"$out"; then ok "[$iso] setuid binary gains nothing"
  else not_ok "[$iso] setuid binary gains nothing (exit $rc)"; diag "$out"; fi

  out=$("$KILN" run --rootfs "$R" --isolation $iso --network none --pids 64 -- /hostile/fork_bomb 5000 2>&1)
  rc=$?
  if [ $rc = 0 ] && grep -q '^BLOCKED' <<<"$out"; then ok "[$iso] fork bomb stopped by the pids limit"
  else not_ok "[$iso] fork bomb stopped by the pids limit (exit $rc)"; diag "$out"; fi

  out=$("$KILN" run --rootfs "$R" --isolation $iso --network none --memory 64m -- /hostile/memory_hog 1024 2>&1)
  rc=$?
  if [ $rc = 137 ] || { [ $rc = 0 ] && grep -q '^BLOCKED' <<<"$out"; }; then ok "[$iso] memory hog stopped by the memory limit"
  else not_ok "[$iso] memory hog stopped by the memory limit (exit $rc)"; diag "$out"; fi

  if [ $rc = 137 ] && [ -w /sys/fs/cgroup/memory ]; then
    check "[$iso] kiln says the step ran out of memory" grep -q 'out of memory' <<<"$out"
  fi
  out=$("$KILN" run --rootfs "$R" --isolation $iso --network none --timeout 2s -- /hostile/spin 2>&1)
  rc=$?
  if [ $rc = 137 ] && grep -q 'timeout' <<<"$out"; then ok "[$iso] endless loop killed by the timeout"
  else not_ok "[$iso] endless loop killed by the timeout (exit $rc)"; diag "$out"; fi

  TOKEN=kiln-daemon-$iso-$$-$RANDOM
  out=$("$KILN" run --rootfs "$R" --isolation $iso --network none -- /hostile/daemon "$TOKEN" 2>&1)
  rc=$?
  check "[$iso] daemon step exits 0" test $rc = 0
  check_fails "[$iso] no daemon survives the step" running "$TOKEN"
done

# chroot isolation on a host WITHOUT namespaces (simulated: every clone with
# a namespace flag is refused): the step runs chrooted into its own copy of
# the rootfs (walking differ), as host root with reduced capabilities.
# What this mode cannot stop is listed as such.
nons() { KILN_SANDBOX_NO_NAMESPACES=1 "$KILN" run --rootfs "$R" --isolation chroot --differ walk --network none "$@"; }
cannot() { skip "[chroot without namespaces] $1" "cannot stop: $2"; }
hostile_nons() {
  local name=$1 out rc; shift
  out=$(nons -- "/hostile/$name" "$@" 2>&1)
  rc=$?
  if [ $rc = 0 ] && grep -q '^BLOCKED' <<<"$out"; then ok "[chroot without namespaces] $name blocked"
  else not_ok "[chroot without namespaces] $name blocked (exit $rc)"; diag "$out"; fi
}
for p in mount umount_root pivot_root kexec init_module bpf keyctl reboot userns mknod_blk; do
  hostile_nons $p
done
hostile_nons chroot_escape "$MARKER"
hostile_nons proc_tricks "$MARKER"
hostile_nons symlink_out "$TARGET"
cannot "ptrace_host" "the step shares the host's pid namespace: it can signal host processes of its uid (ptrace itself is refused by seccomp)"
cannot "sys_write" "no mount namespace to put a read-only /sys in (the copy's /sys is a plain directory; host /sys is not reachable from the chroot)"
cannot "network" "no network namespace: the host's network, instance metadata included, is reachable"
out=$(nons --user nobody -- /usr/bin/setuid_probe 2>&1)
check "[chroot without namespaces] setuid binary gains nothing" grep -q '^BLOCKED' <<<"$out"
out=$(nons --timeout 2s -- /hostile/spin 2>&1)
check "[chroot without namespaces] endless loop killed by the timeout" test $? = 137
TOKEN=kiln-daemon-nons-$$-$RANDOM
nons -- /hostile/daemon "$TOKEN" >/dev/null 2>&1
check_fails "[chroot without namespaces] no daemon survives the step" running "$TOKEN"

# kill -9 of kiln leaves nothing running, and the next kiln sweeps its cgroup.
TOKEN=kiln-kill9-$$-$RANDOM
"$KILN" run --rootfs "$R" --network none --memory 256m -- /hostile/daemon sleep "$TOKEN" >/dev/null 2>&1 &
KPID=$!
disown $KPID
for _ in $(seq 1 100); do running "$TOKEN" && break; sleep 0.1; done
check "step of a running kiln is up" running "$TOKEN"
kill -9 $KPID
for _ in $(seq 1 100); do kill -0 $KPID 2>/dev/null || break; sleep 0.1; done
for _ in $(seq 1 100); do running "$TOKEN" || break; sleep 0.1; done
check_fails "kill -9 of kiln leaves no step process" running "$TOKEN"
left=$(find /sys/fs/cgroup -maxdepth 4 -type d -name "kiln-$KPID-*" 2>/dev/null | head -1)
if [ -n "$left" ]; then
  "$KILN" run --rootfs "$R" --network none -- true >/dev/null 2>&1
  check_fails "the next kiln sweeps the dead kiln's cgroup" test -d "$left"
else
  skip "the next kiln sweeps the dead kiln's cgroup" "no writable memory cgroup here"
fi

# The host, from outside.
check "host marker unchanged" test "$(cat "$MARKER")" = host
check "host target dir untouched by symlink writes" test -z "$(ls -A "$TARGET")"
check "the lower rootfs is unchanged" test "$(lower_sum)" = "$LOWER_BEFORE"
for p in /mnt-hostile /pivot-hostile /chroot-hostile /hostile-sda /hostile-mem /abs-link /sys/kiln-hostile; do
  [ -e "$p" ] && { not_ok "host has no $p"; continue; }
done
ok "nothing the steps made appears on the host"
check "no step mount visible on the host" test "$(grep -c "$T" /proc/self/mountinfo)" = 0
kill -0 $HOSTPID 2>/dev/null
check "the host process survived" test $? = 0
