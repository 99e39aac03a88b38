#!/usr/bin/env bash
# Installs the pinned playwright-core (the browser driver only: it drives Debian's chromium,
# it downloads no browser) from the npm registry into a cache dir; prints that dir's
# node_modules. Idempotent: an install already there is reused.
set -euo pipefail
VERSION=1.65.1
DIR=${KILN_PLAYWRIGHT_DIR:-/var/cache/kiln/playwright-core-$VERSION}
if [ ! -f "$DIR/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$(dirname "$DIR")"
  # made in a temp dir beside it and renamed: an interrupted install leaves nothing half-done
  tmp=$(mktemp -d "$DIR.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    --prefix "$tmp" "playwright-core@$VERSION" >&2
  rm -rf "$DIR"
  mv "$tmp" "$DIR"
  trap - EXIT
fi
echo "$DIR/node_modules"
