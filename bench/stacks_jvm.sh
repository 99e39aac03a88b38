#!/usr/bin/env bash
# Benchmarks kiln's auto build of the Spring Boot fixture (tests/fixtures/jvm-spring) against
# a hand-written multi-stage Dockerfile for the same app (the same jvm-build/jvm-run images,
# ~/.m2 as a cache mount, the jar's layers copied one by one) built by buildah on the same
# machine (overlay driver, a private TMPDIR so its cache mount starts empty each round):
#   cold       empty kiln root / buildah storage and Maven caches (images only)
#   warm       the same build again after a one-line change of App.java (caches warm)
#   unchanged  the same build again with nothing changed
#   size       the run image's layers: their content (uncompressed tar bytes) and gzip bytes
#              (both at gzip level 3: kiln's default ISA-L level 3, buildah push
#              --compression-level 3)
# Each case: median/min/max of RUNS rounds (default 5) and peak RSS, then one ratio line per
# case kiln/buildah (goals: cold <= 1.0x, warm <= 0.2x of buildah cold, size <= 1.0x).
# Usage: bench/stacks_jvm.sh [KILN_BIN]   (needs images/build.sh jvm-build jvm-run and buildah;
#        default binary build/src/kiln, built if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh
bench_kiln "${1:-}"
IMAGES=${KILN_IMAGES_DIR:-/var/cache/kiln/images}
command -v buildah >/dev/null || { echo "buildah is not installed (apt-get install buildah)"; exit 1; }
[ -f "$IMAGES/jvm-build/index.json" ] && [ -f "$IMAGES/jvm-run/index.json" ] ||
  { echo "no jvm-build/jvm-run images: KILN_BIN=$KILN images/build.sh jvm-build jvm-run"; exit 1; }
bench_scratch jvm

cat >"$T/Dockerfile" <<EOF
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

kbuild() { # out
  echo "KILN_IMAGE_PREFIX=oci:$IMAGES $KILN build --root $T/kroot --progress quiet -t bench:latest --compression gzip --compression-level $KILN_GZIP_LEVEL --output type=oci,dest=$T/$1 $T/kiln-src"
}
bbuild="$(BAH_CMD) bud --quiet --layers --network host -t bench-bud -f $T/Dockerfile $T/bud-src"
edit() { # dir
  sed -i "s/spring boot ok[^\\\\]*/spring boot ok $RANDOM/" "$1/src/main/java/dev/kiln/demo/App.java"
}

bench_header
for i in $(seq 1 "$RUNS"); do
  rm -rf "$T/kroot" "$T"/k? "$T/kiln-src" "$T/bud-src"
  bash -c "$(bah_fresh_cmd)" >/dev/null 2>&1 || true
  cp -r tests/fixtures/jvm-spring "$T/kiln-src"
  cp -r tests/fixtures/jvm-spring "$T/bud-src"
  cp "$T/Dockerfile" "$T/bud-src/Dockerfile"
  timed kiln-cold "$(kbuild k1)"
  timed buildah-cold "$bbuild"
  edit "$T/kiln-src"
  edit "$T/bud-src"
  timed kiln-warm "$(kbuild k2)"
  timed buildah-warm "$bbuild"
  timed kiln-unchanged "$(kbuild k3)"
  timed buildah-unchanged "$bbuild"
done
bash -c "$(bah_push_cmd bench-bud "$T/bud-oci")" >/dev/null
read -r ks kr < <(layers_size "$T/k3")
read -r bs br < <(layers_size "$T/bud-oci")

echo
stats_table
ratio_line "spring boot cold" kiln-cold buildah-cold "(goal <= 1.0)"
ratio_line "spring boot warm/cold" kiln-warm buildah-cold "(goal <= 0.2)"
ratio_line "spring boot warm" kiln-warm buildah-warm
ratio_line "spring boot unchanged" kiln-unchanged buildah-unchanged
mb() { echo "$1 / 1048576" | bc -l; }
printf '%-22s kiln %8.1fM buildah %8.1fM kiln/buildah %5.2f (goal <= 1.0)\n' "run image (content)" "$(mb "$kr")" "$(mb "$br")" "$(echo "$kr / $br" | bc -l)"
printf '%-22s kiln %8.1fM buildah %8.1fM kiln/buildah %5.2f\n' "run image (gzip $KILN_GZIP_LEVEL)" "$(mb "$ks")" "$(mb "$bs")" "$(echo "$ks / $bs" | bc -l)"
bench_footer
