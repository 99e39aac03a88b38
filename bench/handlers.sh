#!/usr/bin/env bash
# Auto-build benchmark on examples/node-express (run as root after images/build.sh):
#   cold   kiln build with an empty kiln root (no build cache, empty npm cache)
#   warm   the same root after a one-line change to an app source file
#   peer   buildah bud of the equivalent hand-written Dockerfile on the same images,
#          with empty storage (cold), then buildah push to an OCI layout like kiln's output
# Prints the times, kiln's peak RSS (the sandboxed npm included), the load and the ratios; targets: warm ≤ 0.2 × cold,
# kiln cold ≤ 0.5 × buildah cold.    Usage: bench/handlers.sh [RUNS]   (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN_BIN:-$PWD/build/src/kiln}
RUNS=${1:-1}
IMAGES=$(KILN_BIN=$KILN bash images/build.sh node-build node-run)
export KILN_IMAGE_PREFIX=oci:$IMAGES
T=$(mktemp -d /tmp/kiln-bench-handlers.XXXXXX)
trap 'rm -rf "$T"' EXIT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cat >"$T/Dockerfile" <<DOCKERFILE
FROM oci:$IMAGES/node-build AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
FROM deps AS build
COPY . .
RUN rm -rf node_modules
FROM oci:$IMAGES/node-run
WORKDIR /app
ENV PORT=8080
COPY --from=deps /app/node_modules /app/node_modules
COPY --from=build /app /app
EXPOSE 8080
CMD ["/bin/sh", "-c", "npm start"]
DOCKERFILE

cold=() warm=() peer=() rss=0
for i in $(seq 1 "$RUNS"); do
  src=$T/src-$i
  cp -a examples/node-express "$src"
  root=$T/root-$i
  t0=$(now)
  /usr/bin/time -f %M -o "$T/rss" "$KILN" build --root "$root" --progress quiet \
    -o "type=oci,dest=$T/out-$i" "$src" >/dev/null
  t1=$(now)
  r=$(cat "$T/rss"); [ "$r" -gt "$rss" ] && rss=$r
  echo "// bench $i" >>"$src/lib/greeting.js"
  t2=$(now)
  "$KILN" build --root "$root" --progress quiet -o "type=oci,dest=$T/out2-$i" "$src" >/dev/null
  t3=$(now)
  cold+=("$(secs "$t0" "$t1")") warm+=("$(secs "$t2" "$t3")")

  cp -a examples/node-express "$T/peer-$i"
  cp "$T/Dockerfile" "$T/peer-$i/Dockerfile"
  t4=$(now)
  buildah --root "$T/buildah-root-$i" --runroot "$T/buildah-run-$i" --storage-driver vfs bud -q \
    --isolation chroot -t bench-peer "$T/peer-$i" >/dev/null
  # kiln writes an OCI layout; so does the peer.
  buildah --root "$T/buildah-root-$i" --runroot "$T/buildah-run-$i" --storage-driver vfs push -q \
    bench-peer "oci:$T/peer-out-$i:latest" >/dev/null
  t5=$(now)
  peer+=("$(secs "$t4" "$t5")")
  buildah --root "$T/buildah-root-$i" --runroot "$T/buildah-run-$i" --storage-driver vfs rmi -a -f \
    >/dev/null 2>&1 || true
  rm -rf "$root" "$T/buildah-root-$i" "$T/buildah-run-$i"
done
c=$(printf '%s\n' "${cold[@]}" | median)
w=$(printf '%s\n' "${warm[@]}" | median)
p=$(printf '%s\n' "${peer[@]}" | median)
echo "node-express cold build (kiln):          ${c}s   (runs: ${cold[*]})"
echo "node-express warm rebuild, 1-line change: ${w}s   (runs: ${warm[*]})"
echo "node-express cold build (buildah bud):   ${p}s   (runs: ${peer[*]})"
echo "kiln peak RSS (cold build):              $((rss / 1024)) MiB"
# the machine may be shared: the load says how much the times above can be trusted
echo "load average at the end:                 $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
python3 -c "print(f'warm/cold  = {$w/$c:.3f}  (target <= 0.2)'); print(f'kiln/buildah cold = {$c/$p:.3f}  (target <= 0.5)')"
