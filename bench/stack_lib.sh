# Shared by the stack benchmarks (bench/go.sh, bench/python.sh): one cold/warm comparison of
# kiln's auto build with buildah bud of a hand-written Dockerfile, on top of bench/bench_lib.sh
# (kiln binary, timing, statistics, buildah on overlay with a private TMPDIR, the same gzip
# level). Source it, define the hooks, then call stack_bench:
#   bench_src DIR I    make kiln's source in DIR          bench_edit DIR I   the one-line change
#   bench_peer DIR I   make buildah's context in DIR      bench_peer_edit DIR I
# Uses $KILN, $T (scratch dir, bench_scratch), $RUNS; prints the statistics of every case and
# one ratio line per case with NAME.
. bench/bench_lib.sh

stack_bench() { # NAME
  local name=$1 i src root peer ksize="0 0" psize="0 0" kc ku pc pu
  local kbuild="$KILN build --progress quiet --compression gzip --compression-level $KILN_GZIP_LEVEL"
  local bbud
  bbud="$(BAH_CMD) bud -q --isolation chroot --layers -t bench-peer"
  bench_header
  for i in $(seq 1 "$RUNS"); do
    src=$T/src-$i root=$T/root-$i peer=$T/peer-$i
    bench_src "$src" "$i"
    timed kiln-cold "$kbuild --root $root -o type=oci,dest=$T/out-$i $src"
    bench_edit "$src" "$i"
    timed kiln-warm "$kbuild --root $root -o type=oci,dest=$T/out2-$i $src"
    ksize=$(layers_size "$T/out-$i")
    bench_peer "$peer" "$i"
    bash -c "$(bah_fresh_cmd)" >/dev/null 2>&1 || true # a cold start: no images, no cache mounts
    timed buildah-cold "$bbud $peer && $(bah_push_cmd bench-peer "$T/peer-out-$i")"
    bench_peer_edit "$peer" "$i"
    timed buildah-warm "$bbud $peer && $(bah_push_cmd bench-peer "$T/peer-out2-$i")"
    psize=$(layers_size "$T/peer-out-$i")
    rm -rf "$root" "$T"/out*-"$i" "$T"/peer-out*-"$i" "$peer" "$src"
  done
  echo
  stats_table
  read -r kc ku <<<"$ksize"
  read -r pc pu <<<"$psize"
  echo "run image layers, compressed:   kiln ${kc} bytes, buildah ${pc} bytes (both gzip level $KILN_GZIP_LEVEL)"
  echo "run image layers, uncompressed: kiln ${ku} bytes, buildah ${pu} bytes"
  ratio_line "$name cold" kiln-cold buildah-cold "(goal <= 1.0)"
  ratio_line "$name warm/cold" kiln-warm buildah-cold "(goal <= 0.2)"
  ratio_line "$name warm" kiln-warm buildah-warm
  python3 -c "
print(f'$name image size           kiln/buildah {$ku/max($pu,1):.3f} uncompressed (goal <= 1.0), {$kc/max($pc,1):.3f} compressed')"
  bench_footer
}
