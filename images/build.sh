#!/usr/bin/env bash
# Builds kiln's base, build and run images with kiln itself:
#   base            Debian 12 minbase (scripts/debian-rootfs.sh, debootstrap) → kiln import
#   node-build/run, python-build/run, go-build, static-run, jvm-build/run, rust-build,
#   ruby-build/run, php-build/run, minimal-run
#                   images/<name>/Dockerfile on base
# Each image is an OCI layout under $KILN_IMAGES_DIR (default /var/cache/kiln/images/<name>),
# rebuilt only when its Dockerfile (or the base) changed. With KILN_IMAGE_PUSH=PREFIX
# (e.g. 127.0.0.1:5000/kiln or an ECR prefix) every image is also pushed as PREFIX/<name>.
# The auto-build uses them through KILN_IMAGE_PREFIX=oci:$KILN_IMAGES_DIR (local) or the
# registry prefix. The host's extra CA certificates (KILN_EXTRA_CA_DIR, default
# /usr/local/share/ca-certificates) are added to the images' TLS roots.
# images/kiln (kiln's own image, from this checkout's sources) is not one of them: it is made
# and pushed by scripts/release.sh.
# Usage: images/build.sh [NAME...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN_BIN:-build/src/kiln}
OUT=${KILN_IMAGES_DIR:-/var/cache/kiln/images}
ALL=(node-build node-run python-build python-run go-build static-run jvm-build jvm-run rust-build
  ruby-build ruby-run php-build php-run minimal-run)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${ALL[@]}")
mkdir -p "$OUT"
exec 8>"$OUT/.build.lock"
flock 8

push() { # name
  if [ -n "${KILN_IMAGE_PUSH:-}" ]; then
    skopeo copy --quiet --dest-tls-verify=false "oci:$OUT/$1:latest" "docker://$KILN_IMAGE_PUSH/$1:latest"
  fi
}

rootfs=$(bash scripts/debian-rootfs.sh)
# v3: layers gzip-compressed (images made before kiln build compressed by default
# kept uncompressed layers, which every image built on them then carried)
base_key=$( (stat -c %Y "$rootfs.complete"; echo v3) | sha256sum | cut -c1-16)
if [ "$(cat "$OUT/base.key" 2>/dev/null)" != "$base_key" ] || [ ! -f "$OUT/base/index.json" ]; then
  echo "images: base from $rootfs" >&2
  rm -rf "$OUT/base"
  # Device nodes never go into a layer: /dev stays an empty directory.
  tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -C "$rootfs" -cf "$OUT/base.tar" .
  "$KILN" import "$OUT/base.tar" -t kiln/base --cmd '["/bin/sh"]' --source-date-epoch 0 \
    --output "type=oci,dest=$OUT/base" >/dev/null
  rm -f "$OUT/base.tar"
  echo "$base_key" >"$OUT/base.key"
fi
push base
for name in "${want[@]}"; do
  df=images/$name/Dockerfile
  [ -f "$df" ] || { echo "images: no $df" >&2; exit 2; }
  ctx=$(mktemp -d "$OUT/.ctx-$name.XXXXXX")
  cp "images/$name/"* "$ctx/"
  mkdir -p "$ctx/extra-ca"
  for crt in "${KILN_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"/*.crt; do
    [ -f "$crt" ] && cp "$crt" "$ctx/extra-ca/"
  done
  # the key covers every file of the image's directory (the Dockerfile first, so images
  # with nothing else keep their key) and the CA certificates
  key=$( (cat "$df" $(find "images/$name" -maxdepth 1 -type f ! -name Dockerfile | sort) \
    "$ctx/extra-ca/"* 2>/dev/null; echo "$base_key") | sha256sum | cut -c1-16)
  if [ "$(cat "$OUT/$name.key" 2>/dev/null)" = "$key" ] && [ -f "$OUT/$name/index.json" ]; then
    rm -rf "$ctx"
    push "$name"
    continue
  fi
  echo "images: $name" >&2
  rm -rf "$OUT/$name.tmp"
  "$KILN" build --progress quiet ${KILN_ISOLATION:+--isolation "$KILN_ISOLATION"} -f "$df" --build-arg "BASE=oci:$OUT/base" -t "kiln/$name" \
    --source-date-epoch 0 --output "type=oci,dest=$OUT/$name.tmp" "$ctx" >/dev/null
  rm -rf "$ctx"
  rm -rf "$OUT/$name"
  mv "$OUT/$name.tmp" "$OUT/$name"
  echo "$key" >"$OUT/$name.key"
  push "$name"
done
echo "$OUT"
