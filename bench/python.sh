#!/usr/bin/env bash
# Python auto-build benchmark on tests/fixtures/python/uv-flask (a Flask app locked with uv;
# run as root after images/build.sh):
#   cold   kiln build with an empty kiln root (no build cache, empty uv cache: PyPI downloads)
#   warm   the same root after a one-line change to app.py
#   peer   buildah bud of the equivalent hand-written multi-stage Dockerfile (same images,
#          same uv commands and cache mount) with empty storage (cold), then after the same
#          one-line change (warm), each pushed to an OCI layout like kiln's output
#   size   the run image's layers (compressed) of kiln's image and of the peer's
# Prints the medians and the ratios; goals: cold ≤ 1.0 × buildah cold, warm ≤ 0.2 × buildah
# cold, image size ≤ 1.0 × the peer's.    Usage: bench/python.sh [RUNS]   (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN_BIN:-$PWD/build/src/kiln}
RUNS=${1:-1}
IMAGES=$(KILN_BIN=$KILN bash images/build.sh python-build python-run | tail -1)
export KILN_IMAGE_PREFIX=oci:$IMAGES
T=$(mktemp -d /tmp/kiln-bench-python.XXXXXX)
trap 'rm -rf "$T"' EXIT
APP=tests/fixtures/python/uv-flask

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# "COMPRESSED UNCOMPRESSED" bytes of the layers of the one image in an OCI layout (each tool
# compresses at its own level: the uncompressed size is what the image holds)
layers_size() {
  python3 - "$1" <<'PY'
import gzip, json, os, sys
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
raw = 0
for l in m["layers"]:
    with open(blob(l["digest"]), "rb") as f:
        src = gzip.GzipFile(fileobj=f) if "gzip" in l["mediaType"] else f
        while True:
            b = src.read(1 << 20)
            if not b:
                break
            raw += len(b)
print(sum(l["size"] for l in m["layers"]), raw)
PY
}

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

cold=() warm=() pcold=() pwarm=()
ksize="0 0" psize="0 0"
for i in $(seq 1 "$RUNS"); do
  src=$T/src-$i
  cp -a "$APP" "$src"
  root=$T/root-$i
  t0=$(now)
  "$KILN" build --root "$root" --progress quiet -o "type=oci,dest=$T/out-$i" "$src" >/dev/null
  t1=$(now)
  echo "# bench $i" >>"$src/app.py"
  t2=$(now)
  "$KILN" build --root "$root" --progress quiet -o "type=oci,dest=$T/out2-$i" "$src" >/dev/null
  t3=$(now)
  cold+=("$(secs "$t0" "$t1")") warm+=("$(secs "$t2" "$t3")")
  ksize=$(layers_size "$T/out-$i")

  peer=$T/peer-$i
  cp -a "$APP" "$peer"
  cp "$T/Dockerfile" "$peer/Dockerfile"
  B=(buildah --root "$T/buildah-root-$i" --runroot "$T/buildah-run-$i" --storage-driver overlay)
  t4=$(now)
  "${B[@]}" bud -q --isolation chroot --layers -t bench-peer "$peer" >/dev/null
  "${B[@]}" push -q bench-peer "oci:$T/peer-out-$i:latest" >/dev/null
  t5=$(now)
  echo "# bench $i" >>"$peer/app.py"
  t6=$(now)
  "${B[@]}" bud -q --isolation chroot --layers -t bench-peer "$peer" >/dev/null
  "${B[@]}" push -q bench-peer "oci:$T/peer-out2-$i:latest" >/dev/null
  t7=$(now)
  pcold+=("$(secs "$t4" "$t5")") pwarm+=("$(secs "$t6" "$t7")")
  psize=$(layers_size "$T/peer-out-$i")
  "${B[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$root" "$T/buildah-root-$i" "$T/buildah-run-$i" "$T"/out*-"$i" "$T"/peer-out*-"$i"
done
c=$(printf '%s\n' "${cold[@]}" | median)
w=$(printf '%s\n' "${warm[@]}" | median)
pc=$(printf '%s\n' "${pcold[@]}" | median)
pw=$(printf '%s\n' "${pwarm[@]}" | median)
echo "uv-flask cold build (kiln):               ${c}s   (runs: ${cold[*]})"
echo "uv-flask warm rebuild, 1-line change:     ${w}s   (runs: ${warm[*]})"
echo "uv-flask cold build (buildah bud + push): ${pc}s   (runs: ${pcold[*]})"
echo "uv-flask warm rebuild (buildah bud + push): ${pw}s   (runs: ${pwarm[*]})"
read -r kc ku <<<"$ksize"
read -r pc_ pu <<<"$psize"
echo "run image layers, compressed:   kiln ${kc} bytes, buildah ${pc_} bytes"
echo "run image layers, uncompressed: kiln ${ku} bytes, buildah ${pu} bytes"
# the machine may be shared: the load says how much the times above can be trusted
echo "load average at the end:                  $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
python3 -c "
print(f'kiln cold / buildah cold = {$c/$pc:.3f}  (goal <= 1.0)')
print(f'kiln warm / buildah cold = {$w/$pc:.3f}  (goal <= 0.2)')
print(f'kiln warm / buildah warm = {$w/$pw:.3f}')
print(f'image size kiln / buildah = {$ku/$pu:.3f} uncompressed  (goal <= 1.0), {$kc/$pc_:.3f} compressed')"
