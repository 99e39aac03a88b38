#!/usr/bin/env bash
# ThreadSanitizer over the build engine's parallel stages (not part of tests/run.sh: a TSan
# build and its runs take minutes). Builds kiln with -Db_sanitize=thread in build/tsan, then
# builds a Dockerfile of four independent stages (RUN, COPY, ADD, a cache mount, WORKDIR)
# joined by COPY --from in a last stage, RUNS times on a fresh root (--sbom, an OCI layout)
# and RUNS times warm (a local dest), and runs the unit tests under TSan. Prints every
# ThreadSanitizer report and ends with "N reports"; exits 1 when there is one.
#
#   RUNS=N          builds of each kind (default 4)
#   KILN_TSAN_UNIT=0  skip the unit tests
#
# A step's init is started by a raw clone(2) (sandbox/sandbox.c: no libc fork handlers, on
# purpose) that TSan does not see; the init's vfork then goes through TSan's fork
# interceptor (__tsan::ForkBefore), which waits for TSan's thread-registry lock: when another
# thread of kiln held it at the clone, the init hangs there for good. Each build is
# therefore bounded (timeout, counted as "hung", not a failure of kiln), and test_sandbox,
# which clones such inits from a threaded test, is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
RUNS=${RUNS:-4}
B=$SRC/build/tsan
if [ ! -f "$B/build.ninja" ]; then
  meson setup "$B" -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false >/dev/null || exit 1
fi
ninja -C "$B" >/dev/null || { echo "tsan build failed"; exit 1; }
W=$(mktemp -d /tmp/kiln-tsan.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 1777 "$W"
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 log_path=$W/report"

# the base: a busybox tree imported as an OCI layout (no registry needed)
mkdir -p "$W/rootfs/bin" "$W/ctx"
cp /bin/busybox "$W/rootfs/bin/busybox"
for a in sh echo cat mkdir; do ln -s busybox "$W/rootfs/bin/$a"; done
"$B/src/kiln" import "$W/rootfs" -t busybox:1 --root "$W/iroot" -o "type=oci,dest=$W/base" \
  --env PATH=/bin --source-date-epoch 0 >"$W/import.log" 2>&1 || { cat "$W/import.log"; exit 1; }
for f in fa fb fd; do head -c 300000 /dev/urandom >"$W/ctx/$f"; done
BASE="oci:$W/base:1"
cat >"$W/ctx/Dockerfile" <<EOF
FROM $BASE AS a
RUN echo a > /a && for i in 1 2 3; do echo a\$i; done
COPY fa /fa
FROM $BASE AS b
RUN echo b > /b
COPY fb /fb
FROM $BASE AS c
RUN --mount=type=cache,target=/cache echo c > /c && echo c > /cache/x
WORKDIR /w
FROM $BASE AS d
ADD fd /fd
RUN echo d
FROM $BASE
COPY --from=a /a /fa /
COPY --from=b /b /fb /
COPY --from=c /c /
COPY --from=d /fd /fd
RUN cat /a /b /c
EOF
ok=0 hung=0 failed=0
for i in $(seq 1 "$RUNS"); do
  rm -rf "$W/root"
  for kind in fresh warm; do
    if [ $kind = fresh ]; then out="--sbom -o type=oci,dest=$W/out"; else out="-o type=local,dest=$W/loc"; fi
    # shellcheck disable=SC2086
    timeout 180 "$B/src/kiln" build --root "$W/root" --progress plain $out "$W/ctx" >"$W/log-$kind-$i" 2>&1
    case $? in
      0) ok=$((ok + 1)) ;;
      124) hung=$((hung + 1)); echo "$kind build $i: hung (a step's init inside TSan's runtime)" ;;
      *) failed=$((failed + 1)); echo "$kind build $i failed:"; tail -5 "$W/log-$kind-$i" ;;
    esac
    rm -rf "$W/out" "$W/loc"
  done
done
echo "builds: $ok ok, $hung hung, $failed failed"
if [ "${KILN_TSAN_UNIT:-1}" != 0 ]; then
  for t in "$B"/tests/unit/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    case $(basename "$t") in test_sandbox) continue ;; esac
    timeout 600 "$t" >"$W/unit.log" 2>&1 || echo "$(basename "$t") failed"
  done
fi
n=0
for f in "$W"/report*; do
  [ -f "$f" ] || continue
  n=$((n + $(grep -c '^WARNING: ThreadSanitizer' "$f")))
  cat "$f"
done
echo "$n reports"
[ "$n" -eq 0 ] && [ "$failed" -eq 0 ]
