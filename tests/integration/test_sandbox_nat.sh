#!/usr/bin/env bash
# Network modes of a step. The nat blocks are tested so that nothing can leave
# the machine even if a block were broken: kiln itself runs inside a network
# namespace made here, holding a dummy interface with 169.254.169.254 and a
# listener on it (on lo when there is no dummy driver), a listener on the
# namespace's 127.0.0.1, and a veth link to a second namespace ("outside")
# with a listener on 192.0.2.1 (TEST-NET-1, a documentation address, public by
# class) that a nat step must reach. The kiln namespace's own end of the link,
# 192.0.2.254, is a host address: refused.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v gcc >/dev/null || ! command -v slirp4netns >/dev/null || ! command -v ip >/dev/null; then
  skip "nat tests" "need root, ip and slirp4netns"
  exit 0
fi
R=$T/rootfs
make_busybox_rootfs "$R"
ln -sf busybox "$R/bin/ip"
gcc -static -O1 -o "$R/bin/fetch" "$KILN_SRC/tests/sandbox/hostile/fetch.c" || { not_ok "build fetch"; exit 0; }

NS=kiln-nat-$$
OUT=kiln-nat-out-$$
ip netns add "$NS" || { not_ok "ip netns add"; exit 0; }
at_exit "ip netns del $NS"
ip netns add "$OUT" || { not_ok "ip netns add"; exit 0; }
at_exit "ip netns del $OUT"
nsx() { ip netns exec "$NS" "$@"; }
outx() { ip netns exec "$OUT" "$@"; }
nsx ip link set lo up
outx ip link set lo up
nsx ip link add veth0 type veth peer name veth1 netns "$OUT" || { not_ok "veth pair"; exit 0; }
nsx ip addr add 192.0.2.254/24 dev veth0
nsx ip link set veth0 up
outx ip addr add 192.0.2.1/24 dev veth1
outx ip link set veth1 up
# A dummy interface where the kernel has the module, else the namespace's lo.
DEV=dummy0
nsx ip link add dummy0 type dummy 2>/dev/null || DEV=lo
nsx ip addr add 169.254.169.254/32 dev $DEV
nsx ip link set $DEV up

mkdir -p "$T/www"
echo "metadata-secret" >"$T/www/latest"
serve() { # addr port [netns]
  ip netns exec "${3:-$NS}" python3 -m http.server --bind "$1" --directory "$T/www" "$2" >/dev/null 2>&1 &
  at_exit "kill $!"
}
LPORT=18080
serve 169.254.169.254 80
serve 127.0.0.1 $LPORT
serve 192.0.2.254 8000
serve 192.0.2.1 8000 "$OUT"
ready() { nsx python3 -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)" "$1" "$2" 2>/dev/null; }
for _ in $(seq 1 50); do ready 169.254.169.254 80 && ready 127.0.0.1 $LPORT && ready 192.0.2.1 8000 && ready 192.0.2.254 8000 && break; sleep 0.1; done
check "listeners answer inside the test namespace (controls)" \
  bash -c "ip netns exec $NS python3 -c \"import urllib.request as u; assert b'metadata' in u.urlopen('http://169.254.169.254/latest', timeout=3).read()\""

krun() { nsx "$KILN" run --rootfs "$R" "$@"; }

out=$(krun --network nat -- fetch 192.0.2.1 8000 /latest 2>&1)
check "nat: a step reaches an outside address through slirp4netns" grep -q metadata-secret <<<"$out"
out=$(krun --network nat -- fetch 192.0.2.254 8000 /latest 2>&1)
rc=$?
if [ $rc != 0 ] && ! grep -q metadata-secret <<<"$out" && grep -q 'refused a connection to 192.0.2.254 port 8000: .*host' <<<"$out"; then
  ok "nat: an address of kiln's own host is refused, and the log names it"
else not_ok "nat: an address of kiln's own host is refused, and the log names it"; diag "$out"; fi
out=$(krun --network nat -- fetch 169.254.169.254 80 /latest 2>&1)
rc=$?
if [ $rc != 0 ] && ! grep -q metadata-secret <<<"$out"; then ok "nat: 169.254.169.254 is unreachable"
else not_ok "nat: 169.254.169.254 is unreachable"; diag "$out"; fi
out=$(krun --network nat -- fetch 169.254.170.2 80 /latest 2>&1)
check "nat: the rest of 169.254.0.0/16 is unreachable" test $? != 0
out=$(krun --network nat -- fetch 10.0.2.2 $LPORT /latest 2>&1)
rc=$?
if [ $rc != 0 ] && ! grep -q metadata-secret <<<"$out"; then ok "nat: the host's 127.0.0.1 is unreachable (10.0.2.2)"
else not_ok "nat: the host's 127.0.0.1 is unreachable (10.0.2.2)"; diag "$out"; fi
out=$(krun --network nat -- fetch 127.0.0.1 $LPORT /latest 2>&1)
check "nat: the step's 127.0.0.1 is its own" test $? != 0
out=$(krun --network nat -- sh -c 'ip route del prohibit 169.254.0.0/16 2>&1; fetch 169.254.169.254 80 /latest' 2>&1)
rc=$?
if [ $rc != 0 ] && ! grep -q metadata-secret <<<"$out"; then ok "nat: the step cannot remove the blocking route"
else not_ok "nat: the step cannot remove the blocking route"; diag "$out"; fi
out=$(krun --network nat -- cat /etc/resolv.conf 2>&1)
check "nat: resolv.conf points at slirp's DNS" grep -q 'nameserver 10.0.2.3' <<<"$out"
out=$(krun --network nat -- cat /etc/hosts 2>&1)
check "nat: /etc/hosts names localhost" grep -q localhost <<<"$out"

out=$(krun --network none -- fetch 192.0.2.1 8000 /latest 2>&1)
check "none: no outside address" test $? != 0
out=$(krun --network none -- ip addr 2>&1)
if grep -q 'lo:' <<<"$out" && ! grep -q tap0 <<<"$out"; then ok "none: loopback only"
else not_ok "none: loopback only"; diag "$out"; fi
out=$(krun --network host -- fetch 127.0.0.1 $LPORT /latest 2>&1)
check "host: the namespace's own loopback is reachable on explicit request" grep -q metadata-secret <<<"$out"
# Other kiln processes may be running steps meanwhile: an orphan is a
# slirp4netns whose step (the pid before "tap0") is gone.
orphans() {
  local pid args target
  for pid in $(pgrep -x slirp4netns); do
    args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    target=$(awk '{print $(NF - 1)}' <<<"$args")
    [ -n "$target" ] && ! kill -0 "$target" 2>/dev/null && echo "$pid"
  done
  return 0
}
check "no slirp4netns outlives its step" test -z "$(orphans)"
