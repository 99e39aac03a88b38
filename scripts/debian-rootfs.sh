#!/usr/bin/env bash
# Makes (once) a Debian 12 "bookworm" minbase root filesystem with debootstrap and
# prints its path. The result is cached and reused:
#   /var/cache/kiln/rootfs/debian-bookworm      (override with KILN_ROOTFS_CACHE=DIR)
# The mirror is the host's own Debian mirror (from /etc/apt/sources.list*), so that
# nothing but the apt mirror is contacted. Files are owned as debootstrap made them
# (root = host uid 0); kiln's sandbox maps them into its user namespace itself.
# Safe to run concurrently: the tree is built in a temp dir and renamed into place.
set -euo pipefail
CACHE=${KILN_ROOTFS_CACHE:-/var/cache/kiln/rootfs}
DEST=$CACHE/debian-bookworm
if [ -f "$DEST.complete" ] && [ -d "$DEST" ]; then echo "$DEST"; exit 0; fi

mirror=${KILN_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" && $0 ~ /debian/ && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ && $2 ~ /debian\/?$/ && $2 !~ /security/ {print $2; exit}' || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$CACHE"
exec 9>"$CACHE/.debian-bookworm.lock"
flock 9
if [ -f "$DEST.complete" ] && [ -d "$DEST" ]; then echo "$DEST"; exit 0; fi
tmp=$(mktemp -d "$CACHE/.debian-bookworm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "debootstrap bookworm from $mirror into $DEST (once)" >&2
debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$tmp/log" 2>&1 || {
  tail -n 30 "$tmp/log" >&2
  exit 1
}
# Images made from it are for builds: no package lists, no apt cache.
rm -rf "$tmp/root/var/lib/apt/lists/"* "$tmp/root/var/cache/apt/"*.bin
rm -rf "$DEST" "$DEST.complete"
mv "$tmp/root" "$DEST"
touch "$DEST.complete"
echo "$DEST"
