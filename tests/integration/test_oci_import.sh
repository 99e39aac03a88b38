#!/usr/bin/env bash
# kiln import interop: a busybox image made by kiln is read by skopeo, unpacked
# by umoci and run by runc (gzip); zstd layers are re-read by skopeo into gzip
# and unpacked by kiln's own unpacker (kiln pull from a local registry);
# SOURCE_DATE_EPOCH makes imports reproducible.
. "$(dirname "$0")/lib.sh"

for tool in skopeo umoci runc python3; do
  if ! command -v "$tool" >/dev/null; then skip "interop needs $tool" "missing $tool"; exit 0; fi
done

ROOTFS=$T/rootfs
make_busybox_rootfs "$ROOTFS"
STORE=$T/store
export SOURCE_DATE_EPOCH=1700000000

# runc_bundle BUNDLE: makes the bundle's config non-interactive, runs it, prints its output.
RUNC_N=0
runc_bundle() {
  local bundle=$1 id
  RUNC_N=$((RUNC_N + 1)); id="kiln-it-$$-$RUNC_N"
  python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
  at_exit "runc delete -f $id"
  timeout 120 runc run -b "$bundle" "$id" </dev/null 2>"$T/runc-$id.err"
}

# --- gzip: OCI layout + docker-archive --------------------------------------
digest=$("$KILN" import "$ROOTFS" -t example.com/kiln/busybox:1.0 --root "$STORE" \
  --output "type=oci,dest=$T/oci" --output "type=docker,dest=$T/bb.tar" \
  --cmd '["/bin/echo","hello from kiln import"]' --env FOO=bar --label org.example=yes \
  --workdir /tmp --user 0:0 2>"$T/import.err")
rc=$?
check "kiln import exits 0" test $rc -eq 0
check "kiln import prints the manifest digest" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$digest"
check "progress goes to stderr" grep -q 'layer sha256:' "$T/import.err"

inspect=$(skopeo inspect "oci:$T/oci:1.0" 2>&1)
check "skopeo inspect oci:DIR:TAG accepts the layout" grep -q "\"Digest\": \"$digest\"" <<<"$inspect"
check "the layout image has one layer" python3 -c '
import json, sys; d = json.loads(sys.argv[1]); assert len(d["Layers"]) == 1' "$inspect"
cfg=$(skopeo inspect --config "oci:$T/oci:1.0" 2>&1)
check "config carries Cmd, Env, Labels, WorkingDir, User" python3 -c '
import json, sys
c = json.loads(sys.argv[1])["config"]
assert c["Cmd"] == ["/bin/echo", "hello from kiln import"], c
assert "FOO=bar" in c["Env"] and c["Labels"]["org.example"] == "yes"
assert c["WorkingDir"] == "/tmp" and c["User"] == "0:0"' "$cfg"
check "skopeo inspect docker-archive:FILE accepts the archive" \
  bash -c "skopeo inspect 'docker-archive:$T/bb.tar' | grep -q '\"Architecture\"'"

if umoci unpack --image "$T/oci:1.0" "$T/bundle" >"$T/umoci.log" 2>&1; then
  ok "umoci unpacks the kiln image"
  out=$(runc_bundle "$T/bundle")
  check "runc runs the unpacked bundle and prints what CMD says" test "$out" = "hello from kiln import"
  check "the busybox binary kept its mode" test -x "$T/bundle/rootfs/bin/busybox"
else
  not_ok "umoci unpacks the kiln image"; diag "$(tail -n 5 "$T/umoci.log")"
fi

# --- reproducibility ---------------------------------------------------------
touch "$ROOTFS/etc/passwd" "$ROOTFS/bin"
d2=$("$KILN" import "$ROOTFS" -t example.com/kiln/busybox:1.0 --root "$T/store2" \
  --cmd '["/bin/echo","hello from kiln import"]' --env FOO=bar --label org.example=yes \
  --workdir /tmp --user 0:0 2>/dev/null)
check "same tree + SOURCE_DATE_EPOCH gives the same manifest digest (other store, new mtimes)" \
  test "$digest" = "$d2"
d3=$(SOURCE_DATE_EPOCH=1700000001 "$KILN" import "$ROOTFS" -t example.com/kiln/busybox:1.0 \
  --root "$T/store2" 2>/dev/null)
check "another SOURCE_DATE_EPOCH gives another digest" test -n "$d3" -a "$d3" != "$digest"

# --- gzip of several blocks (1 MiB each, libdeflate, one thread per CPU) ------------
# A tree of ~5 MiB becomes a layer of joined blocks in ONE gzip member: gzip -t, Python's
# zlib (in one member), skopeo (decompressing into a dir: layout) and umoci read it whole,
# and one CPU or all give the same bytes.
BIG=$T/bigtree
mkdir -p "$BIG/bin" "$BIG/data"
cp -a "$ROOTFS/." "$BIG/"
python3 - "$BIG/data" <<'PY'
import os, random, sys
r = random.Random(7)
words = [bytes(r.choice(b"abcdefghij") for _ in range(r.randint(2, 9))) for _ in range(500)]
for i in range(5):
    with open(os.path.join(sys.argv[1], "f%d" % i), "wb") as f:
        f.write(b" ".join(r.choice(words) for _ in range(200000)) + bytes(r.getrandbits(8) for _ in range(50000)))
PY
big1=$("$KILN" import "$BIG" -t big:1 --root "$T/bigstore" --output "type=oci,dest=$T/bigoci" \
  --cmd '["/bin/echo","hello members"]' 2>"$T/big1.err")
big2=$(taskset -c 0 "$KILN" import "$BIG" -t big:1 --root "$T/bigstore2" --output \
  "type=oci,dest=$T/bigoci2" --cmd '["/bin/echo","hello members"]' 2>/dev/null)
check "a layer of several blocks has the same digest on one CPU as on all ($(nproc))" \
  bash -c "test -n '$big1' && test '$big1' = '$big2'"
blob=$(sed -n 's/.*layer \(sha256:[0-9a-f]*\), .*/\1/p' "$T/big1.err" | head -1)
blobf=$T/bigoci/blobs/sha256/${blob#sha256:}
check "the layer is one gzip member of 5+ MiB and gzip -t accepts it" bash -c "gzip -t '$blobf' &&
  python3 - '$blobf' <<'PY'
import sys, zlib
d = zlib.decompressobj(31)
out = d.decompress(open(sys.argv[1], 'rb').read())
assert d.eof and not d.unused_data and len(out) > 5 << 20, (d.eof, len(d.unused_data), len(out))
PY"
check "skopeo copies the layout decompressing the layer (Go's gzip reads every member)" \
  bash -c "skopeo copy -q --dest-decompress 'oci:$T/bigoci:1' 'dir:$T/bigdir' &&
    python3 - '$T/bigdir' '$BIG' <<'PY'
import json, os, sys, tarfile
d = sys.argv[1]
m = json.load(open(os.path.join(d, 'manifest.json')))
layer = os.path.join(d, m['layers'][0]['digest'].split(':')[1])
t = tarfile.open(layer)
got = t.extractfile('data/f3').read()
assert got == open(os.path.join(sys.argv[2], 'data/f3'), 'rb').read()
PY"
if umoci unpack --image "$T/bigoci:1" "$T/bigbundle" >"$T/bigumoci.log" 2>&1; then
  check "umoci unpacks the layer to the same files" \
    diff -r "$BIG/data" "$T/bigbundle/rootfs/data"
else
  not_ok "umoci unpacks the layer"; diag "$(tail -n 5 "$T/bigumoci.log")"
fi

# --- OCI archive (tar=true) and tarball input ----------------------------------
tar -C "$ROOTFS" -czf "$T/rootfs.tgz" .
"$KILN" import "$T/rootfs.tgz" -t tarball:v1 --root "$STORE" --cmd 'echo from a tarball' \
  --output "type=oci,dest=$T/archive.tar" >/dev/null 2>"$T/tarball.err"
check "kiln import TARBALL writes an OCI archive" \
  bash -c "skopeo inspect 'oci-archive:$T/archive.tar' | grep -q '\"Layers\"'"
if skopeo copy -q "oci-archive:$T/archive.tar" "oci:$T/from-tarball:v1" >/dev/null 2>&1 &&
  umoci unpack --image "$T/from-tarball:v1" "$T/bundle-tgz" >/dev/null 2>&1; then
  out=$(runc_bundle "$T/bundle-tgz")
  check "an image imported from a tarball runs its shell-form CMD" test "$out" = "from a tarball"
else
  not_ok "an image imported from a tarball runs its shell-form CMD"
fi

# --- zstd -------------------------------------------------------------------
"$KILN" import "$ROOTFS" -t zstd:t --root "$STORE" --compression zstd --compression-level 5 \
  --cmd '["/bin/echo","hello zstd"]' --output "type=oci,dest=$T/zoci" >/dev/null 2>"$T/zstd.err"
check "a zstd import writes a tar+zstd layer" \
  bash -c "grep -rqs 'application/vnd.oci.image.layer.v1.tar+zstd' '$T/zoci/blobs/sha256'"
if skopeo copy -q --dest-compress --dest-compress-format gzip "oci:$T/zoci:t" "oci:$T/zgz:t" \
  >"$T/zcopy.log" 2>&1; then
  ok "skopeo re-reads the zstd stream into a gzip image"
  if umoci unpack --image "$T/zgz:t" "$T/bundle-z" >/dev/null 2>&1; then
    out=$(runc_bundle "$T/bundle-z")
    check "umoci + runc run the recompressed image" test "$out" = "hello zstd"
  else
    not_ok "umoci + runc run the recompressed image"
  fi
else
  not_ok "skopeo re-reads the zstd stream into a gzip image"; diag "$(tail -n 3 "$T/zcopy.log")"
fi

# kiln's own unpacker on the zstd layer: through a local registry and kiln pull.
if port=$(start_registry); then
  if skopeo copy -q --dest-tls-verify=false "oci:$T/zoci:t" "docker://127.0.0.1:$port/kiln/zstd:t" \
    >"$T/zpush.log" 2>&1 &&
    "$KILN" pull --root "$T/pullstore" --insecure-registry "127.0.0.1:$port" \
      --output "type=local,dest=$T/bundle-kz/rootfs" "127.0.0.1:$port/kiln/zstd:t" \
      >"$T/zpull.log" 2>&1; then
    ok "kiln pull unpacks the zstd image with kiln's unpacker"
    # the bundle config: the gzip bundle's, with the zstd image's command
    python3 - "$T/bundle/config.json" "$T/bundle-kz/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/echo", "hello zstd"]
json.dump(c, open(sys.argv[2], "w"))
PY
    out=$(runc_bundle "$T/bundle-kz")
    check "runc runs the rootfs kiln unpacked from zstd" test "$out" = "hello zstd"
  else
    not_ok "kiln pull unpacks the zstd image with kiln's unpacker"
    diag "$(tail -n 3 "$T/zpush.log" "$T/zpull.log")"
  fi
else
  not_ok "docker-registry starts"
fi

# --- default gzip level: libdeflate 3 (the lowest at or under buildah's bytes) ------
# layer_bytes LEVEL...: imports the rootfs (reproducible: SOURCE_DATE_EPOCH) and prints
# "DIGEST BYTES" of its one layer.
layer_bytes() {
  "$KILN" import "$ROOTFS" -t lvl:t --root "$T/lvlstore" "$@" 2>&1 >/dev/null |
    sed -n 's/.*layer \(sha256:[0-9a-f]*\), \([0-9]*\) bytes.*/\1 \2/p'
}
read -r d_def s_def < <(layer_bytes)
read -r d_3 _ < <(layer_bytes --compression gzip --compression-level 3)
read -r d_1 s_1 < <(layer_bytes --compression gzip --compression-level 1)
check "import's default gzip layer is the level-3 layer" \
  bash -c "test -n '$d_def' && test '$d_def' = '$d_3'"
check "the default level writes no more bytes than level 1 ($s_def vs $s_1)" \
  bash -c "test -n '$s_def' && test '$d_def' != '$d_1' && test '$s_def' -le '$s_1'"
"$KILN" build --compression-level 13 "$T" >/dev/null 2>"$T/lvl9.err"; rc=$?
check "kiln build refuses a gzip level out of range, naming it" \
  bash -c "test $rc -eq 2 && grep -q 'gzip compression level 13 out of range 0..12' '$T/lvl9.err'"
"$KILN" build --compression zstd --compression-level 19x "$T" >/dev/null 2>"$T/lvlx.err"; rc=$?
check "kiln build refuses a level that is not a number" \
  bash -c "test $rc -eq 2 && grep -qe '--compression-level 19x' '$T/lvlx.err'"

# --- usage errors ---------------------------------------------------------------
"$KILN" import "$ROOTFS" --root "$STORE" >/dev/null 2>&1; rc=$?
check "import without -t exits 2" test $rc -eq 2
"$KILN" import "$ROOTFS" -t x:y --compression lz4 --root "$STORE" >/dev/null 2>&1; rc=$?
check "an unknown compression exits 2" test $rc -eq 2
"$KILN" import "$ROOTFS" -t x:y --compression gzip --compression-level 13 --root "$STORE" \
  >/dev/null 2>&1; rc=$?
check "a gzip level out of range exits 2" test $rc -eq 2
err=$("$KILN" import "$T/nonexistent" -t x:y --root "$STORE" 2>&1 >/dev/null); rc=$?
check "a missing source exits 1 naming it" bash -c "test $rc -eq 1 && grep -q nonexistent <<<'$err'"
check "kiln import -h exits 0" bash -c "\"$KILN\" import -h >/dev/null"
