#!/usr/bin/env bash
# A Next.js app auto-built by kiln against buildah building Next's own `with-docker` style
# Dockerfile of the same app on the same machine (median, min and max of RUNS rounds and the
# peak RSS, bench_lib's rounds; the cases compared run in turn, round after round, so a busy
# shared machine weighs on both alike):
#   cold   kiln: fresh kiln root (no npm cache, no build cache, no .next cache)
#          buildah: fresh storage (overlay driver, chroot isolation, a fresh private TMPDIR)
#   warm   one app file changed (app/page.js) after a build: both rebuild
#   size   the image's layers, uncompressed (what the image takes once unpacked) and
#          compressed (buildah pushes at kiln's gzip level)
# The app is tests/fixtures/frameworks/next-standalone (Next 16, output: 'standalone', its
# packages from the npm registry). buildah cannot reach Docker Hub, so its Dockerfile's
# node:XX-alpine is replaced by kiln's own images with the same Node release kiln uses:
# node-build + Node for the deps and builder stages, node-run + Node for the runner
# (made by kiln, exported as OCI layouts; bench_lib's bench_node_bases). The Node toolchain
# is fetched once before the clock starts, for kiln as for buildah's base images.
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
bench_scratch nextjs # $T, removed on exit with buildah's storage
unset KILN_IMAGE_PREFIX # kiln's own image directory, as after scripts/setup.sh
export KILN_IMAGES_DIR=$IMAGES KILN_TOOLCHAIN_CACHE=$T/toolchains

APP=$T/app
cp -a tests/fixtures/frameworks/next-standalone "$APP"
printf 'Dockerfile\n.dockerignore\nnode_modules\nnpm-debug.log\nREADME.md\n.next\n.git\n' >"$APP/.dockerignore"

# The Node release kiln's plan resolves, fetched once, and buildah's two base images with it.
bench_node_bases "$T" "$APP" "$IMAGES"

# Next.js's examples/with-docker Dockerfile, on those bases (addgroup/adduser → lines added
# to /etc/passwd and /etc/group: the run image has a shell but no user tools; the runner on
# the run image with node only, as kiln's plan does).
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
RUN echo 'nodejs:x:1001:' >>/etc/group && echo 'nextjs:x:1001:1001::/home/nextjs:/bin/sh' >>/etc/passwd
COPY --from=builder /app/public ./public
COPY --from=builder --chown=nextjs:nodejs /app/.next/standalone ./
COPY --from=builder --chown=nextjs:nodejs /app/.next/static ./.next/static
USER nextjs
EXPOSE 3000
ENV PORT=3000
ENV HOSTNAME="0.0.0.0"
CMD ["node", "server.js"]
EOF

kiln_build="$KILN build --root $T/root --progress quiet --compression-level $KILN_GZIP_LEVEL -t next-bench:latest -o type=oci,dest=$T/kout $APP"
bah_build="$(BAH_CMD) bud -q --isolation chroot --layers -f $T/Dockerfile -t next-bench:latest $APP"
kiln_fresh="rm -rf $T/root $T/kout"
change="echo \"// \$RANDOM\$RANDOM\" >>$APP/app/page.js"

bench_header
echo "Next.js $(python3 -c "import json; print(json.load(open('$APP/package.json'))['dependencies']['next'])"), Node $NODE_VERSION"
# cold: RUNS rounds of both in turn; warm: one app file changed after a build, both rebuild
rounds kiln-cold "$kiln_fresh" "$kiln_build" buildah-cold "$(bah_fresh_cmd)" "$bah_build"
rounds kiln-warm "$change" "$kiln_build" buildah-warm "$change" "$bah_build"
bash -c "$(bah_push_cmd next-bench:latest "$T/bout")" >/dev/null
read -r kc ku <<<"$(layers_size "$T/kout")"
read -r bc bu <<<"$(layers_size "$T/bout")"

echo
stats_table
echo "image layers, uncompressed: kiln $((ku / 1000000)) MB, buildah $((bu / 1000000)) MB; compressed (gzip level $KILN_GZIP_LEVEL): kiln $((kc / 1000000)) MB, buildah $((bc / 1000000)) MB"
ratio_line "nextjs cold" kiln-cold buildah-cold
ratio_line "nextjs warm" kiln-warm buildah-warm
python3 -c "print(f'nextjs image size      kiln/buildah {$ku/max($bu,1):.2f} uncompressed, {$kc/max($bc,1):.2f} compressed')"
bench_footer
