#!/usr/bin/env bash
# Benchmarks kiln's auto build of the Spring Boot fixture (tests/fixtures/jvm-spring) against
# a hand-written multi-stage Dockerfile for the same app (the same jvm-build/jvm-run images,
# ~/.m2 as a cache mount, the jar's layers copied one by one) built by buildah on the same
# machine:
#   cold   empty kiln root / buildah storage and Maven caches (images only)
#   warm   the same build again after a one-line change of App.java (caches warm)
#   unchanged  the same build again with nothing changed
#   size   the run image's layers: their content (uncompressed tar bytes) and gzip bytes (kiln
#          compresses at level 1, buildah's push at its default level)
# Prints the times and the ratios kiln/buildah (goals: cold <= 1.0x, warm <= 0.2x, size <= 1.0x).
# Usage: bench/stacks_jvm.sh [KILN_BIN]   (needs images/build.sh jvm-build jvm-run and buildah)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=$(realpath "${1:-${KILN_BIN:-build/src/kiln}}")
IMAGES=${KILN_IMAGES_DIR:-/var/cache/kiln/images}
command -v buildah >/dev/null || { echo "buildah is not installed (apt-get install buildah)"; exit 1; }
[ -f "$IMAGES/jvm-build/index.json" ] && [ -f "$IMAGES/jvm-run/index.json" ] ||
  { echo "no jvm-build/jvm-run images: KILN_BIN=$KILN images/build.sh jvm-build jvm-run"; exit 1; }
T=$(mktemp -d /tmp/kiln-bench-jvm.XXXXXX)
B=(buildah --root "$T/bstore" --runroot "$T/brun" --storage-driver overlay)
cleanup() { "${B[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "$T"; }
trap cleanup EXIT
export TMPDIR=$T/tmp # buildah's cache mounts live under it: a cold build starts empty
mkdir -p "$TMPDIR"

cp -r tests/fixtures/jvm-spring "$T/kiln-src"
cp -r tests/fixtures/jvm-spring "$T/bud-src"
cat >"$T/bud-src/Dockerfile" <<EOF
FROM oci:$IMAGES/jvm-build AS build
WORKDIR /app
COPY pom.xml ./
COPY src src
RUN --mount=type=cache,target=/root/.m2/repository mvn -B -ntp -DskipTests package && \\
    java -Djarmode=tools -jar target/spring-demo-0.1.0.jar extract --layers --launcher --destination /layers
FROM oci:$IMAGES/jvm-run
WORKDIR /app
COPY --from=build /layers/dependencies/ ./
COPY --from=build /layers/spring-boot-loader/ ./
COPY --from=build /layers/snapshot-dependencies/ ./
COPY --from=build /layers/application/ ./
ENV PORT=8080
CMD ["sh", "-c", "exec java -Dserver.port=\$PORT -cp /app org.springframework.boot.loader.launch.JarLauncher"]
EOF

now() { date +%s.%N; }
kiln_build() { # out
  KILN_IMAGE_PREFIX=oci:$IMAGES "$KILN" build --root "$T/kroot" --progress quiet -t bench:latest \
    --output "type=oci,dest=$T/$1" "$T/kiln-src" >"$T/kiln.log" 2>&1 || { tail -n 30 "$T/kiln.log" >&2; exit 1; }
}
bud_build() {
  "${B[@]}" bud --quiet --layers --network host -t bench-bud -f "$T/bud-src/Dockerfile" "$T/bud-src" \
    >"$T/bud.log" 2>&1 || { tail -n 30 "$T/bud.log" >&2; exit 1; }
}
edit() { # dir
  sed -i "s/spring boot ok[^\\\\]*/spring boot ok $RANDOM/" "$1/src/main/java/dev/kiln/demo/App.java"
}
timeit() { local s; s=$(now); "$@"; echo "$(now) - $s" | bc; }

kc=$(timeit kiln_build k1)
bc_=$(timeit bud_build)
edit "$T/kiln-src"
edit "$T/bud-src"
kw=$(timeit kiln_build k2)
bw=$(timeit bud_build)
ku=$(timeit kiln_build k3)
bu=$(timeit bud_build)

layers_size() { # oci layout dir → "compressed uncompressed" bytes of its image's layers
  python3 - "$1" <<'PY'
import gzip, json, os, sys
d = sys.argv[1]
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
idx = json.load(open(os.path.join(d, "index.json")))
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
"${B[@]}" push --quiet bench-bud "oci:$T/bud-oci:latest" >/dev/null
read -r ks kr < <(layers_size "$T/k3")
read -r bs br < <(layers_size "$T/bud-oci")

printf '%-22s %10s %10s %8s\n' "spring boot" kiln buildah ratio
printf '%-22s %9.1fs %9.1fs %7.2fx\n' "cold build" "$kc" "$bc_" "$(echo "$kc / $bc_" | bc -l)"
printf '%-22s %9.1fs %9.1fs %7.2fx\n' "warm (App.java edit)" "$kw" "$bw" "$(echo "$kw / $bw" | bc -l)"
printf '%-22s %9.1fs %9.1fs %7.2fx\n' "unchanged rebuild" "$ku" "$bu" "$(echo "$ku / $bu" | bc -l)"
mb() { echo "$1 / 1048576" | bc -l; }
printf '%-22s %8.1fM %8.1fM %7.2fx\n' "run image (content)" "$(mb "$kr")" "$(mb "$br")" "$(echo "$kr / $br" | bc -l)"
printf '%-22s %8.1fM %8.1fM %7.2fx\n' "run image (gzip)" "$(mb "$ks")" "$(mb "$bs")" "$(echo "$ks / $bs" | bc -l)"
