#!/usr/bin/env bash
# A real build step: `apt-get update && apt-get install` in a debootstrapped
# Debian 12 rootfs (made once by scripts/debian-rootfs.sh and cached under
# /var/cache/kiln/rootfs), with network=nat. Only the host's Debian mirror is
# contacted. The installed package must land in the step's layer.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null || ! command -v slirp4netns >/dev/null; then
  skip "apt-get in a Debian rootfs" "needs root, debootstrap and slirp4netns"
  exit 0
fi
if ! D=$(bash "$KILN_SRC/scripts/debian-rootfs.sh" 2>"$T/deboot.log"); then
  not_ok "debootstrap a Debian rootfs (cached)"
  sed 's/^/# /' "$T/deboot.log" | tail -n 20
  exit 0
fi
ok "Debian rootfs available at $D"

out=$("$KILN" run --rootfs "$D" --network nat --timeout 600s --memory 1g --diff-output "$T/apt.tar" -- \
  sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends hello && hello' 2>&1)
rc=$?
if [ $rc = 0 ] && grep -q 'Hello, world!' <<<"$out"; then ok "apt-get update && apt-get install hello (nat)"
else not_ok "apt-get update && apt-get install hello (nat) (exit $rc)"; tail -n 20 <<<"$out" | sed 's/^/# /'; fi
tar tf "$T/apt.tar" >"$T/apt.txt" 2>/dev/null
check "the layer holds /usr/bin/hello" grep -qx 'usr/bin/hello' "$T/apt.txt"
check "the layer holds dpkg's new status" grep -qx 'var/lib/dpkg/status' "$T/apt.txt"
check_fails "the layer holds no resolv.conf or hosts" grep -qE '^etc/(resolv.conf|hosts)$' "$T/apt.txt"
check_fails "the shared Debian rootfs did not get hello" test -e "$D/usr/bin/hello"
owner=$(tar tvf "$T/apt.tar" usr/bin/hello 2>/dev/null | awk '{print $2}')
check "files in the layer are owned 0/0 (not the host's shifted ids)" test "$owner" = 0/0
