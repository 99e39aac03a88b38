#!/usr/bin/env bash
# Python auto-build benchmark on tests/fixtures/python/uv-flask (a Flask app locked with uv;
# run as root after images/build.sh):
#   cold   kiln build with an empty kiln root (no build cache, empty uv cache: PyPI downloads)
#   warm   the same root after a one-line change to app.py
#   peer   buildah bud (overlay driver, private TMPDIR so its uv cache mount starts empty) of the
#          equivalent hand-written multi-stage Dockerfile (same images, same uv commands and
#          cache mount) with empty storage (cold), then after the same one-line change (warm),
#          each pushed to an OCI layout at kiln's gzip level (3)
#   size   the run image's layers (compressed and not) of kiln's image and of the peer's
# Each case: median/min/max of RUNS rounds and peak RSS (bench/stack_lib.sh), then the ratios;
# goals: cold <= 1.0 x buildah cold, warm <= 0.2 x buildah cold, image size <= 1.0 x the peer's.
# Usage: bench/python.sh [RUNS]   (default 5; env KILN_BIN, default build/src/kiln, built if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${RUNS:-5}}
. bench/stack_lib.sh
bench_kiln
IMAGES=$(KILN_BIN=$KILN bash images/build.sh python-build python-run | tail -1)
export KILN_IMAGE_PREFIX=oci:$IMAGES
bench_scratch python
APP=tests/fixtures/python/uv-flask

cat >"$T/Dockerfile" <<DOCKERFILE
FROM oci:$IMAGES/python-build AS build
WORKDIR /app
ENV UV_PROJECT_ENVIRONMENT=/opt/venv
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --locked --no-dev --no-install-project
COPY . .
FROM oci:$IMAGES/python-run
WORKDIR /app
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PORT=8080
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
EXPOSE 8080
CMD ["/bin/sh", "-c", "gunicorn --bind 0.0.0.0:\$PORT app:app"]
DOCKERFILE

bench_src() { cp -a "$APP" "$1"; }
bench_edit() { echo "# bench $2" >>"$1/app.py"; }
bench_peer() { cp -a "$APP" "$1" && cp "$T/Dockerfile" "$1/Dockerfile"; }
bench_peer_edit() { echo "# bench $2" >>"$1/app.py"; }
stack_bench uv-flask
