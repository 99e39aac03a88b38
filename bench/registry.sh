#!/usr/bin/env bash
# Registry benchmark: a 1 GiB image of 4 layers pushed to and pulled from a
# local docker-registry by kiln and by skopeo (+ umoci for unpacking), side by
# side. The registry's own ingest speed bounds both. Prints wall times, the
# kiln/peer ratios and kiln's peak RSS.
#
#   KILN_BIN         the kiln binary (default build/src/kiln, the README's; built if absent)
#   BENCH_LAYER_MIB  size of each of the 4 layers (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
MIB=${BENCH_LAYER_MIB:-256}
CACHE=/var/cache/kiln/bench-registry-$MIB
W=$(mktemp -d /tmp/kiln-bench-registry.XXXXXX)
# start_registry runs in $(…), a subshell: its pids are kept in files, not in an array.
cleanup() { for p in "$W"/reg-*/pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
export https_proxy=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9 no_proxy=127.0.0.1,localhost

# The image: 4 layers of MIB MiB each (half random, half text: partly compressible).
if [ ! -f "$CACHE/index.json" ]; then
  echo "# building the ${MIB} MiB x 4 image in $CACHE (once)"
  mkdir -p "$CACHE"
  python3 - "$CACHE" "$MIB" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile, zlib
out, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(os.path.join(out, "blobs", "sha256", d), "wb").write(b)
    return "sha256:" + d
layers, diffs = [], []
for i in range(4):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for j in range(mib // 16):
            data = os.urandom(8 << 20) + (("line %d of layer %d\n" % (j, i)) * 400000)[: 8 << 20].encode()
            ti = tarfile.TarInfo("layer%d/file%03d" % (i, j)); ti.size = len(data); ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    diffs.append("sha256:" + hashlib.sha256(tar).hexdigest())
    gz = gzip.compress(tar, compresslevel=1, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                  "layers": layers}).encode()
md = put(man)
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(out, "oci-layout"), "w"))
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
           "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "bench"}}]},
          open(os.path.join(out, "index.json"), "w"))
PY
fi

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start_registry() { # name -> echoes port
  local port dir
  port=$(free_port); dir=$W/reg-$1
  mkdir -p "$dir"
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$dir/data" "$port" >"$dir/config.yml"
  /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  echo "$port"
}
# timed NAME command... -> sets T_<NAME> (seconds) and R_<NAME> (peak RSS KiB)
timed() {
  local name=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$W/time" "$@" >"$W/$name.out" 2>"$W/$name.err" || {
    echo "FAILED: $name"; tail -5 "$W/$name.err"; exit 1; }
  read -r t r <"$W/time"
  printf -v "T_$name" '%s' "$t"; printf -v "R_$name" '%s' "$r"
  printf '%-22s %8.2f s  %8d KiB peak RSS\n' "$name" "$t" "$r"
}
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

PS=$(start_registry skopeo); PK=$(start_registry kiln)
SK="skopeo --insecure-policy"
echo "# push (oci layout -> registry)"
timed skopeo_push $SK copy --dest-tls-verify=false "oci:$CACHE:bench" "docker://127.0.0.1:$PS/bench/img:1"
timed kiln_push "$KILN" push --progress=none --insecure-registry "127.0.0.1:$PK" "oci:$CACHE:bench" "127.0.0.1:$PK/bench/img:1"
echo "# pull (registry -> oci layout)"
timed skopeo_pull $SK copy --src-tls-verify=false "docker://127.0.0.1:$PK/bench/img:1" "oci:$W/skopeo-oci:bench"
timed kiln_pull "$KILN" pull --progress=none --root "$W/store1" --insecure-registry "127.0.0.1:$PK" \
  -o "type=oci,dest=$W/kiln-oci:bench" "127.0.0.1:$PK/bench/img:1"
echo "# pull + unpack (registry -> rootfs)"
unpack_peer() {
  $SK copy --src-tls-verify=false "docker://127.0.0.1:$PK/bench/img:1" "oci:$W/peer-oci:bench" &&
    umoci unpack --rootless --image "$W/peer-oci:bench" "$W/peer-bundle"
}
[ -f "$W/kiln-oci/index.json" ] || { echo "kiln pull wrote no OCI layout"; exit 1; }
export -f unpack_peer; export SK W PK
timed peer_unpack bash -c unpack_peer
timed kiln_unpack "$KILN" pull --progress=none --root "$W/store2" --insecure-registry "127.0.0.1:$PK" \
  -o "type=local,dest=$W/kiln-rootfs" "127.0.0.1:$PK/bench/img:1"
want=$((4 * (MIB / 16)))
got=$(find "$W/kiln-rootfs" -type f | wc -l)
[ "$got" = "$want" ] || { echo "kiln unpacked $got files, expected $want"; exit 1; }
echo
echo "kiln push / skopeo copy oci->docker:          $(ratio "$T_kiln_push" "$T_skopeo_push")  (target <= 1.0)"
echo "kiln pull / skopeo copy docker->oci:          $(ratio "$T_kiln_pull" "$T_skopeo_pull")  (target <= 1.0)"
echo "kiln pull type=local / skopeo + umoci unpack: $(ratio "$T_kiln_unpack" "$T_peer_unpack")  (target <= 0.4)"
peak=$(printf '%s\n' "$R_kiln_push" "$R_kiln_pull" "$R_kiln_unpack" | sort -n | tail -1)
echo "kiln peak RSS: $((peak / 1024)) MiB  (target <= 64)"
