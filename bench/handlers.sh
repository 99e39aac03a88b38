#!/usr/bin/env bash
# Auto-build benchmark on examples/node-express (run as root after images/build.sh):
#   cold   kiln build with an empty kiln root (no build cache, empty npm cache)
#   warm   the same root after a one-line change to an app source file
#   peer   buildah bud (overlay driver, private TMPDIR) of the equivalent hand-written
#          Dockerfile on the same images, with empty storage (cold) and after the same change
#          (warm), each pushed to an OCI layout at kiln's gzip level (3)
# Each case: median/min/max of RUNS rounds and peak RSS (kiln's includes the sandboxed npm),
# then the ratios (bench/stack_lib.sh); targets: kiln cold <= 0.5 x buildah cold, warm <= 0.2 x
# cold.    Usage: bench/handlers.sh [RUNS]   (default 5; env KILN_BIN, default build/src/kiln)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${RUNS:-5}}
. bench/stack_lib.sh
bench_kiln
IMAGES=$(KILN_BIN=$KILN bash images/build.sh node-build node-run | tail -1)
export KILN_IMAGE_PREFIX=oci:$IMAGES
bench_scratch handlers
# the Node release kiln's plan picks, fetched once (kiln's builds reuse it), and the peer's
# bases with it: kiln's node-build + the toolchain, node-run + bin/node
export KILN_TOOLCHAIN_CACHE=$T/toolchains
bench_node_bases "$T" examples/node-express "$IMAGES"

cat >"$T/Dockerfile" <<DOCKERFILE
FROM oci:$T/node-build:build AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
FROM deps AS build
COPY . .
RUN rm -rf node_modules
FROM oci:$T/node-run:run
WORKDIR /app
ENV PORT=8080
COPY --from=deps /app/node_modules /app/node_modules
COPY --from=build /app /app
EXPOSE 8080
CMD ["/bin/sh", "-c", "node server.js"]
DOCKERFILE

bench_src() { cp -a examples/node-express "$1"; }
bench_edit() { echo "// bench $2" >>"$1/lib/greeting.js"; }
bench_peer() { cp -a examples/node-express "$1" && cp "$T/Dockerfile" "$1/Dockerfile"; }
bench_peer_edit() { echo "// bench $2" >>"$1/lib/greeting.js"; }
stack_bench node-express
