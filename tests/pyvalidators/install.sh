#!/usr/bin/env bash
# Installs the pinned SPDX and in-toto validators (requirements.txt) from PyPI into a venv
# under the cache (KILN_CACHE, default /var/cache/kiln), named after the Python version and
# requirements.txt's hash so a changed pin or Python makes a new one; prints the venv's python.
# Idempotent and safe to run concurrently: the venv is made in a temp dir beside its final
# name and renamed there under a lock, so an interrupted install leaves nothing half-done.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${KILN_CACHE:-/var/cache/kiln}
PY=${KILN_PYTHON:-python3}
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
sum=$(sha256sum "$HERE/requirements.txt" | cut -c1-12)
pin() { sed -n "s/^$1==//p" "$HERE/requirements.txt"; }
DIR="$CACHE/pyvalidators-py$pyver-spdx-tools$(pin spdx-tools)-in-toto-attestation$(pin in-toto-attestation)-$sum"
check() { "$1/bin/python" -c 'import spdx_tools.spdx.validation.document_validator, in_toto_attestation.predicates.provenance.v1.provenance_pb2' 2>/dev/null; }
mkdir -p "$CACHE"
exec 9>"$CACHE/pyvalidators.lock"
flock 9
if ! check "$DIR"; then
  rm -rf "$DIR" "$DIR".tmp.*  # a broken venv, or what an install killed mid-way left
  tmp=$(mktemp -d "$DIR.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m venv "$tmp"
  # pip's own scripts name the temp path; only bin/python (found relative to pyvenv.cfg) is used after the rename
  "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$HERE/requirements.txt" >&2 ||
    { echo "install.sh: pip could not install $HERE/requirements.txt (is PyPI reachable?)" >&2; exit 1; }
  check "$tmp" || { echo "install.sh: the validators do not import after pip install" >&2; exit 1; }
  mv -T "$tmp" "$DIR"
  trap - EXIT
  check "$DIR" || { echo "install.sh: $DIR does not import after the rename" >&2; exit 1; }
fi
echo "$DIR/bin/python"
