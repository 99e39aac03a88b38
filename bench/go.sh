#!/usr/bin/env bash
# Go auto-build benchmark on tests/fixtures/go/chi-service (a chi service: go 1.23, one module
# from the Go module proxy; run as root after images/build.sh):
#   cold   kiln build with an empty kiln root (no build cache, empty module and build caches:
#          the proxy downloads and the standard library compiled); the Go toolchain is fetched
#          once before the clock starts into a shared toolchain cache, as a build server keeps it
#   warm   the same root after a one-line change to main.go
#   peer   buildah bud of the equivalent hand-written multi-stage Dockerfile (same images, the
#          same toolchain copied from its context, same go commands and cache mounts) with
#          empty storage (cold), then after the same one-line change (warm), each pushed to an
#          OCI layout like kiln's output
#   size   the run image's layers (compressed and not) of kiln's image and of the peer's
# Prints the medians and the ratios; goals: cold <= 1.0 x buildah cold, warm <= 0.2 x buildah
# cold, image size <= 1.0 x the peer's. Each case: median/min/max of RUNS rounds and peak RSS.
# Usage: bench/go.sh [RUNS]   (default 5; env KILN_BIN, default build/src/kiln, built if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${RUNS:-5}}
. bench/stack_lib.sh
bench_kiln
IMAGES=$(KILN_BIN=$KILN bash images/build.sh go-build minimal-run | tail -1)
export KILN_IMAGE_PREFIX=oci:$IMAGES
bench_scratch go
APP=tests/fixtures/go/chi-service
# the toolchain, fetched (and verified) once: kiln's builds and the peer use the same files
export KILN_TOOLCHAIN_CACHE=${KILN_TOOLCHAIN_CACHE:-/var/cache/kiln/toolchains}
GOROOT_DIR=$("$KILN" plan --fetch-toolchain "$APP" 2>&1 >/dev/null | sed -n 's/^kiln: toolchain go [^ ]* in //p')
[ -x "$GOROOT_DIR/bin/go" ] || { echo "no Go toolchain in '$GOROOT_DIR'" >&2; exit 1; }


# the peer's context: the toolchain as go/, the app as app/
cat >"$T/Dockerfile" <<DOCKERFILE
FROM oci:$IMAGES/go-build AS build
COPY go/ /usr/local/go/
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    GOTOOLCHAIN=local GOPROXY=https://proxy.golang.org,direct CGO_ENABLED=0
WORKDIR /app
COPY app/go.mod app/go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY app/ .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \\
    go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o /usr/local/bin/chi-service .
FROM oci:$IMAGES/minimal-run
ENV PORT=8080
COPY --from=build /usr/local/bin/chi-service /usr/local/bin/chi-service
EXPOSE 8080
CMD ["/usr/local/bin/chi-service"]
DOCKERFILE

bench_src() { cp -a "$APP" "$1"; }
bench_edit() { echo "// bench $2" >>"$1/main.go"; }
bench_peer() {
  mkdir -p "$1"
  cp -a "$APP" "$1/app"
  cp -a "$GOROOT_DIR" "$1/go"
  cp "$T/Dockerfile" "$1/Dockerfile"
}
bench_peer_edit() { echo "// bench $2" >>"$1/app/main.go"; }
stack_bench chi-service
