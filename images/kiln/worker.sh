#!/usr/bin/env bash
# Builds kiln's worker image (images/kiln/Dockerfile.worker): KILN_IMAGE plus the IMAGEs
# (registry references or oci:DIR[:TAG], e.g. kiln's build images) unpacked in an additional
# image store at /var/lib/kiln-store.
#
#   images/kiln/worker.sh KILN_IMAGE IMAGE... [-- KILN_BUILD_FLAGS...]
#
# e.g. images/kiln/worker.sh 123456789012.dkr.ecr.eu-west-1.amazonaws.com/kiln:0.1.0 \
#        oci:/var/cache/kiln/images/node-build oci:/var/cache/kiln/images/python-build \
#        -- -t 123456789012.dkr.ecr.eu-west-1.amazonaws.com/kiln-worker:0.1.0 --push
# The flags after -- go to `kiln build` (outputs, tags, --root, --insecure-registry ...); they
# are also given to `kiln store add` when they are registry flags it knows
# (KILN_STORE_FLAGS, e.g. "--insecure-registry 127.0.0.1:5000"; "--no-blobs": the image holds
# the unpacked trees only, the builds download the layer blobs for the images they write). KILN_BIN: the kiln to use
# (default build/src/kiln). The store is made in a temp dir under $TMPDIR (default /var/tmp)
# and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: images/kiln/worker.sh KILN_IMAGE IMAGE... [-- KILN_BUILD_FLAGS...]" >&2; exit 2; }
KILN=${KILN_BIN:-build/src/kiln}
kiln_image=$1
shift
images=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do images+=("$1"); shift; done
[ $# -eq 0 ] || shift
[ ${#images[@]} -gt 0 ] || { echo "worker.sh: no IMAGE to put in the store" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-worker.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # the store must not sit under a directory others can write
mkdir "$work/ctx"
# shellcheck disable=SC2086  # KILN_STORE_FLAGS is a list of flags
"$KILN" store add --progress none --root "$work/root" ${KILN_STORE_FLAGS:-} "$work/store" \
  "${images[@]}" >&2
rm -rf "$work/root" "$work/store/tmp" "$work/store/lock" # a writer's, not part of the store
# owners, modes, xattrs (file capabilities) and hardlinks kept: the tree is what the image holds
tar -C "$work/store" --numeric-owner --xattrs --xattrs-include='*' -cf "$work/ctx/store.tar" .
cp images/kiln/Dockerfile.worker "$work/ctx/Dockerfile"
"$KILN" build --build-arg "KILN_IMAGE=$kiln_image" "$@" "$work/ctx"
