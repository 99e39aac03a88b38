#!/usr/bin/env bash
# Builds kiln's image from this checkout with kiln itself (images/kiln/Dockerfile: kiln compiled
# in a Debian 12 build stage, a run stage with its runtime libraries only) and pushes it.
#
#   scripts/release.sh REPOSITORY [VERSION]
#
# REPOSITORY  where the image goes, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/kiln or
#             127.0.0.1:5000/kiln. There is no default: a release never goes to a registry
#             nobody named (no Docker Hub).
# VERSION     the tag (default: the version kiln reports, `kiln version`); REPOSITORY:latest is
#             pushed too unless KILN_RELEASE_LATEST=0.
# Prints the pushed image's digest on stdout.
#
# Environment:
#   KILN_BIN            the kiln that builds (default build/src/kiln, built with meson if absent)
#   KILN_IMAGES_DIR     kiln's images (default /var/cache/kiln/images): the build's BASE is
#                       oci:$KILN_IMAGES_DIR/base (images/build.sh makes it)
#   KILN_RELEASE_BASE   another BASE (a Debian 12 image you name, e.g. oci:DIR or a registry ref)
#   KILN_RELEASE_ROOT   the kiln root of the build (its cache: apt layers, ccache; default
#                       /var/cache/kiln/release-root)
#   KILN_RELEASE_FLAGS  more `kiln build` flags, e.g. "--insecure-registry 127.0.0.1:5000" or
#                       "--ecr-create-repository"
set -euo pipefail
cd "$(dirname "$0")/.."
repo=${1:-}
if [ -z "$repo" ] || [ $# -gt 2 ]; then
  echo "usage: scripts/release.sh REPOSITORY [VERSION]  (e.g. 127.0.0.1:5000/kiln)" >&2
  exit 2
fi
case "$repo" in
  *:*/*|*.*/*|localhost/*) ;;
  *) echo "release: '$repo' names no registry host (REGISTRY/REPO): a release never goes to Docker Hub by default" >&2
     exit 2 ;;
esac
KILN=${KILN_BIN:-build/src/kiln}
if [ ! -x "$KILN" ]; then
  [ -f build/build.ninja ] || meson setup build >/dev/null
  ninja -C build >/dev/null
  KILN=build/src/kiln
fi
images=${KILN_IMAGES_DIR:-/var/cache/kiln/images}
base=${KILN_RELEASE_BASE:-oci:$images/base}
if [ -z "${KILN_RELEASE_BASE:-}" ] && [ ! -f "$images/base/index.json" ]; then
  echo "release: no base image in $images/base: make it with 'bash images/build.sh minimal-run'" \
    "(or set KILN_RELEASE_BASE)" >&2
  exit 1
fi
version=${2:-$("$KILN" version | head -n 1 | awk '{print $2}')}
names=("$repo:$version")
[ "${KILN_RELEASE_LATEST:-1}" = 0 ] || names+=("$repo:latest")
tags=()
for n in "${names[@]}"; do tags+=(-t "$n"); done
digest_file=$(mktemp)
trap 'rm -f "$digest_file"' EXIT
# shellcheck disable=SC2086  # KILN_RELEASE_FLAGS is a list of flags
"$KILN" build --root "${KILN_RELEASE_ROOT:-/var/cache/kiln/release-root}" \
  --progress "${KILN_RELEASE_PROGRESS:-plain}" -f images/kiln/Dockerfile --build-arg "BASE=$base" \
  "${tags[@]}" --push --digest-file "$digest_file" ${KILN_RELEASE_FLAGS:-} . >/dev/null
echo "release: pushed ${names[*]} ($(cat "$digest_file"))" >&2
cat "$digest_file"
echo
