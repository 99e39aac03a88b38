# Shared by the stack benchmarks (bench/go.sh): timing helpers, the layer size of an OCI
# layout, and one cold/warm comparison of kiln's auto build with buildah bud of a hand-written
# Dockerfile. Source it, define the hooks, then call stack_bench:
#   bench_src DIR I    make kiln's source in DIR          bench_edit DIR I   the one-line change
#   bench_peer DIR I   make buildah's context in DIR      bench_peer_edit DIR I
# Uses $KILN, $T (scratch dir), $RUNS; prints the medians and the ratios with NAME.
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


stack_bench() { # NAME
  local name=$1 i src root peer t0 t1 t2 t3 t4 t5 t6 t7 c w pc pw kc ku pc_ pu
  local cold=() warm=() pcold=() pwarm=() ksize="0 0" psize="0 0"
  for i in $(seq 1 "$RUNS"); do
    src=$T/src-$i root=$T/root-$i peer=$T/peer-$i
    bench_src "$src" "$i"
    t0=$(now)
    "$KILN" build --root "$root" --progress quiet -o "type=oci,dest=$T/out-$i" "$src" >/dev/null
    t1=$(now)
    bench_edit "$src" "$i"
    t2=$(now)
    "$KILN" build --root "$root" --progress quiet -o "type=oci,dest=$T/out2-$i" "$src" >/dev/null
    t3=$(now)
    cold+=("$(secs "$t0" "$t1")") warm+=("$(secs "$t2" "$t3")")
    ksize=$(layers_size "$T/out-$i")
    bench_peer "$peer" "$i"
    # buildah keeps RUN cache mounts under $TMPDIR/buildah-cache-UID whatever its --root:
    # a private TMPDIR makes its cold build cold
    mkdir -p "$T/buildah-tmp-$i"
    local B=(env TMPDIR="$T/buildah-tmp-$i" buildah --root "$T/buildah-root-$i"
      --runroot "$T/buildah-run-$i" --storage-driver overlay)
    t4=$(now)
    "${B[@]}" bud -q --isolation chroot --layers -t bench-peer "$peer" >/dev/null
    "${B[@]}" push -q bench-peer "oci:$T/peer-out-$i:latest" >/dev/null
    t5=$(now)
    bench_peer_edit "$peer" "$i"
    t6=$(now)
    "${B[@]}" bud -q --isolation chroot --layers -t bench-peer "$peer" >/dev/null
    "${B[@]}" push -q bench-peer "oci:$T/peer-out2-$i:latest" >/dev/null
    t7=$(now)
    pcold+=("$(secs "$t4" "$t5")") pwarm+=("$(secs "$t6" "$t7")")
    psize=$(layers_size "$T/peer-out-$i")
    "${B[@]}" rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$root" "$T/buildah-root-$i" "$T/buildah-run-$i" "$T/buildah-tmp-$i" "$T"/out*-"$i" "$T"/peer-out*-"$i" "$peer" "$src"
  done
  c=$(printf '%s\n' "${cold[@]}" | median)
  w=$(printf '%s\n' "${warm[@]}" | median)
  pc=$(printf '%s\n' "${pcold[@]}" | median)
  pw=$(printf '%s\n' "${pwarm[@]}" | median)
  echo "$name cold build (kiln):                 ${c}s   (runs: ${cold[*]})"
  echo "$name warm rebuild, 1-line change:       ${w}s   (runs: ${warm[*]})"
  echo "$name cold build (buildah bud + push):   ${pc}s   (runs: ${pcold[*]})"
  echo "$name warm rebuild (buildah bud + push): ${pw}s   (runs: ${pwarm[*]})"
  read -r kc ku <<<"$ksize"
  read -r pc_ pu <<<"$psize"
  echo "run image layers, compressed:   kiln ${kc} bytes, buildah ${pc_} bytes"
  echo "run image layers, uncompressed: kiln ${ku} bytes, buildah ${pu} bytes"
  # the machine may be shared: the load says how much the times above can be trusted
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
  python3 -c "
print(f'kiln cold / buildah cold = {$c/$pc:.3f}  (goal <= 1.0)')
print(f'kiln warm / buildah cold = {$w/$pc:.3f}  (goal <= 0.2)')
print(f'kiln warm / buildah warm = {$w/$pw:.3f}')
print(f'image size kiln / buildah = {$ku/$pu:.3f} uncompressed  (goal <= 1.0), {$kc/$pc_:.3f} compressed')"
}
