#!/usr/bin/env bash
# A Next.js app auto-built by kiln against buildah building Next's own `with-docker` style
# Dockerfile of the same app on the same machine (medians of RUNS runs; the cases compared
# run in turn, round after round, so a busy shared machine weighs on both alike):
#   cold   kiln: fresh kiln root (no npm cache, no build cache, no .next cache)
#          buildah: fresh storage (overlay driver, chroot isolation, a fresh private TMPDIR)
#   warm   one app file changed (app/page.js) after a build: both rebuild
#   size   the image's layers, uncompressed (what the image takes once unpacked)
# The app is tests/fixtures/frameworks/next-standalone (Next 16, output: 'standalone', its
# packages from the npm registry). buildah cannot reach Docker Hub, so its Dockerfile's
# node:XX-alpine is replaced by kiln's own images with the same Node release kiln uses:
# node-build + Node for the deps and builder stages, node-run + Node for the runner
# (made by kiln, exported as OCI layouts). The Node toolchain is fetched once before the
# clock starts, for kiln as for buildah's base images.
# Usage: bench/nextjs.sh [KILN_BIN]   (env: RUNS=5; kiln's images from images/build.sh in
# $KILN_IMAGES_DIR, default /var/cache/kiln/images)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln "${1:-}"
RUNS=${RUNS:-5}
IMAGES=${KILN_IMAGES_DIR:-/var/cache/kiln/images}
command -v buildah >/dev/null || { echo "bench/nextjs.sh: buildah is not installed" >&2; exit 2; }
for i in node-build node-run; do
  [ -f "$IMAGES/$i/oci-layout" ] || { echo "bench/nextjs.sh: $IMAGES/$i is missing: run scripts/setup.sh" >&2; exit 2; }
done
T=/var/tmp/kiln-bench-nextjs-$$
mkdir -p "$T"
trap 'buildah --root "$T/bah" --runroot "$T/bahrun" --storage-driver overlay rm -a >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
unset KILN_IMAGE_PREFIX # kiln's own image directory, as after scripts/setup.sh
export KILN_IMAGES_DIR=$IMAGES KILN_TOOLCHAIN_CACHE=$T/toolchains

APP=$T/app
cp -a tests/fixtures/frameworks/next-standalone "$APP"
printf 'Dockerfile\n.dockerignore\nnode_modules\nnpm-debug.log\nREADME.md\n.next\n.git\n' >"$APP/.dockerignore"

# The Node release kiln's plan resolves, fetched once, and buildah's two base images with it.
tc=$("$KILN" plan --fetch-toolchain --root "$T/tcroot" "$APP" 2>&1 >/dev/null | sed -n 's/^kiln: toolchain node \([^ ]*\) in \(.*\)$/\1 \2/p')
NODE_VERSION=${tc%% *}
NODE_DIR=${tc#* }
[ -d "$NODE_DIR" ] || { echo "bench/nextjs.sh: no Node toolchain ($tc)" >&2; exit 1; }
for i in build run; do
  mkdir -p "$T/base-$i"
  printf 'FROM oci:%s/node-%s\nCOPY --from=node / /opt/node\nENV PATH=/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' \
    "$IMAGES" "$i" >"$T/base-$i/Dockerfile"
  "$KILN" build --root "$T/baseroot" --progress quiet --build-context "node=$NODE_DIR" -t "node:$i" \
    -o "type=oci,dest=$T/node-$i" "$T/base-$i" >/dev/null
done
rm -rf "$T/baseroot" # the disk the builds need: only the two layouts stay

# Next.js's examples/with-docker Dockerfile, on those bases (addgroup/adduser → Debian's
# groupadd/useradd; the runner on the run image, as kiln's plan does).
cat >"$T/Dockerfile" <<EOF
FROM oci:$T/node-build:build AS base

FROM base AS deps
WORKDIR /app
COPY package.json package-lock.json* ./
RUN npm ci

FROM base AS builder
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
ENV NEXT_TELEMETRY_DISABLED=1
RUN npm run build

FROM oci:$T/node-run:run AS runner
WORKDIR /app
ENV NODE_ENV=production
ENV NEXT_TELEMETRY_DISABLED=1
RUN groupadd --system --gid 1001 nodejs && useradd --system --uid 1001 --gid nodejs nextjs
COPY --from=builder /app/public ./public
COPY --from=builder --chown=nextjs:nodejs /app/.next/standalone ./
COPY --from=builder --chown=nextjs:nodejs /app/.next/static ./.next/static
USER nextjs
EXPOSE 3000
ENV PORT=3000
ENV HOSTNAME="0.0.0.0"
CMD ["node", "server.js"]
EOF

mkdir -p "$T/btmp" # private TMPDIR: buildah's cache mounts live under it, not under --root
BAH="env TMPDIR=$T/btmp buildah --root $T/bah --runroot $T/bahrun --storage-driver overlay"
kiln_build="$KILN build --root $T/root --progress quiet --compression-level $KILN_GZIP_LEVEL -t next-bench:latest -o type=oci,dest=$T/kout $APP"
bah_build="$BAH bud --isolation chroot --layers -f $T/Dockerfile -t next-bench:latest $APP"
kiln_fresh="rm -rf $T/root $T/kout"
bah_fresh="$BAH rm -a >/dev/null 2>&1; $BAH rmi -a -f >/dev/null 2>&1; rm -rf $T/bah $T/bahrun $T/btmp; mkdir -p $T/btmp"
change="echo \"// \$RANDOM\$RANDOM\" >>$APP/app/page.js"

# Wall seconds of one shell command (its output discarded; a failure stops the bench).
secs() {
  local t0 t1
  t0=$(date +%s.%N)
  bash -c "$1" >"$T/last.log" 2>&1 || { tail -30 "$T/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1"
}
# name prepare command [name prepare command]...: RUNS rounds in turn, then each median.
interleave() {
  local -a names=() preps=() cmds=()
  while [ $# -gt 0 ]; do names+=("$1"); preps+=("$2"); cmds+=("$3"); shift 3; done
  for ((r = 0; r < RUNS; r++)); do
    for i in "${!names[@]}"; do
      [ -z "${preps[$i]}" ] || bash -c "${preps[$i]}" >/dev/null 2>&1
      local s
      s=$(secs "${cmds[$i]}")
      echo "${names[$i]} $s" >>"$T/times"
      echo "  ${names[$i]} run $((r + 1)): ${s}s" >&2
    done
  done
  for i in "${!names[@]}"; do
    awk -v n="${names[$i]}" '$1 == n {print $2}' "$T/times" | sort -n |
      awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
  done
}
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9)))" "$1" "$2"; }
# Uncompressed bytes of the layers of the image in an OCI layout.
layout_size() {
  python3 - "$1" <<'PY'
import gzip, json, os, sys
d = sys.argv[1]
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
idx = json.load(open(os.path.join(d, "index.json")))
man = json.load(open(blob(idx["manifests"][0]["digest"])))
n = 0
for l in man["layers"]:
    f = open(blob(l["digest"]), "rb")
    src = gzip.GzipFile(fileobj=f) if "gzip" in l["mediaType"] else f
    while True:
        b = src.read(1 << 20)
        if not b:
            break
        n += len(b)
print(n)
PY
}

echo "Next.js $(python3 -c "import json; print(json.load(open('$APP/package.json'))['dependencies']['next'])"), Node $NODE_VERSION, $RUNS runs" >&2
{ read -r kc; read -r bc; } < <(interleave kiln-cold "$kiln_fresh" "$kiln_build" buildah-cold "$bah_fresh" "$bah_build")
{ read -r kw; read -r bw; } < <(interleave kiln-warm "$change" "$kiln_build" buildah-warm "$change" "$bah_build")
$BAH push --quiet --compression-format gzip --compression-level "$KILN_GZIP_LEVEL" next-bench:latest "oci:$T/bout:latest" >/dev/null
ks=$(layout_size "$T/kout")
bs=$(layout_size "$T/bout")

printf '%-6s kiln %8ss   buildah %8ss   ratio %s\n' cold "$kc" "$bc" "$(ratio "$kc" "$bc")"
printf '%-6s kiln %8ss   buildah %8ss   ratio %s\n' warm "$kw" "$bw" "$(ratio "$kw" "$bw")"
printf '%-6s kiln %7sMB   buildah %7sMB   ratio %s\n' size "$((ks / 1000000))" "$((bs / 1000000))" \
  "$(ratio "$ks" "$bs")"
