#!/usr/bin/env bash
# Registry benchmark: an image of 4 layers (1 GiB by default) pushed to and pulled from a
# local docker-registry by kiln and by skopeo (+ umoci for unpacking), and kiln's pull +
# unpack against the floor: `tar -xf` of the same files from plain tars on the same disk.
# The floor of the download itself is measured too: curl of the same blobs from the same
# registry to /dev/null, and curl | gzip -dc | tar -x of each; the registry's own CPU seconds
# during each registry case are reported as the figure reg_cpu (it shares the machine's CPUs).
# kiln-unpack is `kiln pull -o type=local` (layers streamed only, never stored),
# kiln-unpack-store the same with store=true (blobs written to the store and read back).
# RUNS rounds (default 5), the commands interleaved; medians, min/max, peak RSS and CPU
# seconds (bench_lib.sh), one ratio line per case. The registry's own speed bounds the pulls.
# Then the same pull + unpack of a real base image (kiln's node-build: ~46,000 files, what a
# build's FROM unpacks on a fresh worker) against `tar -xf` of its layers, and its plain pull
# (`kiln pull NAME` into kiln's store, as docker pull) against skopeo copy to a layout.
#
#   KILN_BIN         the kiln binary (default build/src/kiln, the README's; built if absent)
#   BENCH_LAYER_MIB  size of each of the 4 layers (default 256)
#   BENCH_BASE       an OCI layout of a real image (default /var/cache/kiln/images/node-build,
#                    skipped when absent or set to "none")
#   KILN_BASELINE    another kiln binary (e.g. an older commit's): its pull + unpack runs in
#                    the same rounds as "old-unpack" / "old-unpack-base", with a ratio line
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln
MIB=${BENCH_LAYER_MIB:-256}
CACHE=/var/cache/kiln/bench-registry-$MIB
W=$(mktemp -d /var/tmp/kiln-bench-registry.XXXXXX)
# start_registry runs in $(…), a subshell: its pids are kept in files, not in an array.
cleanup() {
  for p in "$W"/reg-*/pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  for d in floor-base nb3 nb6 nb7 nb8 nb9; do bench_dropfs "$W/$d" 2>/dev/null; done
  rm -rf "$W"
}
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
PS=$(start_registry skopeo); PK=$(start_registry kiln)
SK="skopeo --insecure-policy"
# One push of each, so that the pulls below have an image (and a warm registry) to read.
$SK copy -q --dest-tls-verify=false "oci:$CACHE:bench" "docker://127.0.0.1:$PS/bench/img:1"
"$KILN" push --progress=none --insecure-registry "127.0.0.1:$PK" "oci:$CACHE:bench" \
  "127.0.0.1:$PK/bench/img:1" >/dev/null
# The floor of pull + unpack: `tar -xf` of the same files from plain (uncompressed) tars on the
# same disk, one per layer, in order.
plain_tars() { # layout dir
python3 - "$1" "$2" <<'PY'
import gzip, json, os, shutil, sys
d, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
for i, l in enumerate(m["layers"]):
    with gzip.open(blob(l["digest"])) as src, open(os.path.join(out, "%d.tar" % i), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
}
plain_tars "$CACHE" "$W/plain"
T=$W # bench_lib keeps its times under $T
: >"$T/times"
REG="--insecure-registry 127.0.0.1:$PK"
IMG=127.0.0.1:$PK/bench/img:1
# The registry's CPU seconds while CMD runs, as the round's figure reg_cpu (METRIC line).
reg_cpu() { # cmd -> a command string
  local pid
  pid=$(cat "$W/reg-kiln/pid")
  echo "c0=\$(awk '{print \$14 + \$15}' /proc/$pid/stat); $1; rc=\$?;" \
    "awk -v a=\$c0 -v t=$(getconf CLK_TCK) '{printf \"METRIC reg_cpu=%.2f\\n\", (\$14 + \$15 - a) / t}' /proc/$pid/stat; exit \$rc"
}
# The layer blobs of the image in $CACHE, as URLs on the kiln registry.
URLS=$(python3 - "$CACHE" "$PK" <<'PY'
import json, os, sys
d, port = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(os.path.join(d, "blobs", *idx["manifests"][0]["digest"].split(":"))))
print(" ".join("http://127.0.0.1:%s/v2/bench/img/blobs/%s" % (port, l["digest"]) for l in m["layers"]))
PY
)
CURL_NULL="curl -sf $(for u in $URLS; do printf -- '-o /dev/null %s ' "$u"; done)"
CURL_TAR="for u in $URLS; do curl -sf \$u | gzip -dc | tar -x -C $W/curl-floor || exit 1; done"
rounds \
  skopeo-push "" "$SK copy -q --dest-tls-verify=false oci:$CACHE:bench docker://127.0.0.1:$PS/bench/img:2" \
  kiln-push "" "$KILN push --progress=none $REG oci:$CACHE:bench 127.0.0.1:$PK/bench/img:2" \
  skopeo-pull "rm -rf $W/skopeo-oci" "$SK copy -q --src-tls-verify=false docker://$IMG oci:$W/skopeo-oci:bench" \
  kiln-pull "rm -rf $W/store1 $W/kiln-oci" "$KILN pull --progress=none --root $W/store1 $REG -o type=oci,dest=$W/kiln-oci:bench $IMG" \
  tar-xf "rm -rf $W/floor; mkdir $W/floor" "for f in $W/plain/*.tar; do tar -xf \$f -C $W/floor || exit 1; done" \
  skopeo-umoci "rm -rf $W/peer-oci $W/peer-bundle" "$SK copy -q --src-tls-verify=false docker://$IMG oci:$W/peer-oci:bench && umoci unpack --rootless --image $W/peer-oci:bench $W/peer-bundle >/dev/null" \
  kiln-unpack "rm -rf $W/store2 $W/kiln-rootfs" "$(reg_cpu "$KILN pull --progress=none --root $W/store2 $REG -o type=local,dest=$W/kiln-rootfs $IMG")" \
  kiln-unpack-store "rm -rf $W/store4 $W/kiln-rootfs4" "$(reg_cpu "$KILN pull --progress=none --root $W/store4 $REG -o type=local,dest=$W/kiln-rootfs4,store=true $IMG")" \
  curl-null "" "$(reg_cpu "$CURL_NULL")" \
  curl-gunzip-tar "rm -rf $W/curl-floor; mkdir $W/curl-floor" "$(reg_cpu "$CURL_TAR")" \
  ${KILN_BASELINE:+old-unpack "rm -rf $W/store5 $W/old-rootfs" "$KILN_BASELINE pull --progress=none --root $W/store5 $REG -o type=local,dest=$W/old-rootfs $IMG"}
BASE=${BENCH_BASE:-/var/cache/kiln/images/node-build}
if [ "$BASE" != none ] && [ -f "$BASE/index.json" ]; then
  "$KILN" push --progress=none $REG "oci:$BASE" "127.0.0.1:$PK/bench/base:1" >/dev/null
  plain_tars "$BASE" "$W/plain-base"
  # Each run's tree goes to a new file system (bench_newfs; FRESH_FS=0: a plain directory):
  # this VM's ext4 has no journal, and there a new inode skips every free one deleted in the
  # last 1-6 minutes (ext4's recently_deleted(), one buffer lookup each), so creating 47,000
  # files after deleting the previous round's cost seconds of system time in the inode
  # allocator, whichever command came next; a fresh worker has no such deletions behind it.
  # tar's own warnings (PAX keywords it does not know) are not failures
  rounds \
    tar-xf-base "bench_newfs $W/floor-base" "for f in $W/plain-base/*.tar; do tar -xf \$f -C $W/floor-base 2>/dev/null || exit 1; done" \
    kiln-unpack-base "bench_newfs $W/nb3" "$(reg_cpu "$KILN pull --progress=none --root $W/nb3/store $REG -o type=local,dest=$W/nb3/out 127.0.0.1:$PK/bench/base:1")" \
    ${KILN_BASELINE:+old-unpack-base "bench_newfs $W/nb6" "$KILN_BASELINE pull --progress=none --root $W/nb6/store $REG -o type=local,dest=$W/nb6/out 127.0.0.1:$PK/bench/base:1"} \
    skopeo-pull-base "bench_newfs $W/nb7" "$SK copy -q --src-tls-verify=false docker://127.0.0.1:$PK/bench/base:1 oci:$W/nb7/oci:bench" \
    kiln-pull-base "bench_newfs $W/nb8" "$KILN pull --progress=none --root $W/nb8/store $REG 127.0.0.1:$PK/bench/base:1" \
    ${KILN_BASELINE:+old-pull-base "bench_newfs $W/nb9" "$KILN_BASELINE pull --progress=none --root $W/nb9/store $REG 127.0.0.1:$PK/bench/base:1"}
  # tar writes whiteouts (.wh.NAME) as files where kiln applies them (removing NAME)
  a=$(cd "$W/floor-base" && find . ! -name '.wh.*' ! -name lost+found | wc -l); b=$(cd "$W/nb3/out" && find . | wc -l)
  [ "$b" -le "$a" ] && [ $((b * 100)) -ge $((a * 95)) ] ||
    { echo "kiln unpacked $b entries of the base image, tar $a (whiteouts aside)"; exit 1; }
  echo "$b" >"$T/base-entries"
  for d in floor-base nb3 nb6 nb7 nb8 nb9; do bench_dropfs "$W/$d"; done
  rm -rf "$W/plain-base"
fi
want=$((4 * (MIB / 16)))
got=$(find "$W/kiln-rootfs" -type f | wc -l)
[ "$got" = "$want" ] || { echo "kiln unpacked $got files, expected $want"; exit 1; }

bench_header
echo "image: 4 layers of $MIB MiB (half random, half text, gzip -1), docker-registry on loopback, $W on $(df --output=fstype "$W" | tail -1)"
stats_table
echo
metric_table
echo
ratio_line push kiln-push skopeo-push "(target <= 1.0)"
ratio_line pull kiln-pull skopeo-pull "(target <= 1.0)"
ratio_line pull+unpack kiln-unpack skopeo-umoci "(target <= 0.4)"
ratio_line unpack-floor kiln-unpack tar-xf "(target <= 1.1: plain tar -xf of the same files)"
ratio_line unpack-store kiln-unpack-store tar-xf "(store=true: blobs kept)"
ratio_line curl-floor curl-null tar-xf "(the download alone: curl of the blobs to /dev/null)"
ratio_line curl-pipe kiln-unpack curl-gunzip-tar "(curl | gzip -dc | tar -x of each blob)"
printf '%-22s kiln-unpack %s s  tar-xf %s s  curl-null %s s  ratio %s  (kiln-unpack CPU / tar-xf CPU)\n' cpu \
  "$(cpu_med kiln-unpack)" "$(cpu_med tar-xf)" "$(cpu_med curl-null)" "$(ratio "$(cpu_med kiln-unpack)" "$(cpu_med tar-xf)")"
[ -z "${KILN_BASELINE:-}" ] || ratio_line unpack-vs-old kiln-unpack old-unpack "($KILN_BASELINE; CPU $(cpu_med kiln-unpack) vs $(cpu_med old-unpack) s)"
printf '%-22s registry CPU during kiln-unpack %s s, curl-null %s s (on the same %s CPUs)\n' reg-cpu \
  "$(metric_med kiln-unpack reg_cpu)" "$(metric_med curl-null reg_cpu)" "$(nproc)"
if grep -q '^kiln-unpack-base ' "$T/times"; then
  echo "base image: $BASE ($(du -sh "$BASE" | cut -f1) of layers, $(cat "$T/base-entries" 2>/dev/null) entries)"
  ratio_line base-unpack kiln-unpack-base tar-xf-base "(target <= 1.1: plain tar -xf of its layers)"
  printf '%-22s kiln-unpack-base %s s  tar-xf-base %s s  ratio %s  (CPU)\n' base-cpu "$(cpu_med kiln-unpack-base)" \
    "$(cpu_med tar-xf-base)" "$(ratio "$(cpu_med kiln-unpack-base)" "$(cpu_med tar-xf-base)")"
  [ -z "${KILN_BASELINE:-}" ] || ratio_line base-vs-old kiln-unpack-base old-unpack-base "($KILN_BASELINE)"
  ratio_line base-pull kiln-pull-base skopeo-pull-base "(target <= 1.0: kiln pull into its store, as docker pull)"
  [ -z "${KILN_BASELINE:-}" ] || ratio_line base-pull-vs-old kiln-pull-base old-pull-base "($KILN_BASELINE)"
fi
bench_footer
