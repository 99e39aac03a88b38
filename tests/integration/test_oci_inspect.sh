#!/usr/bin/env bash
# kiln inspect on OCI layouts and docker-archives written by other tools
# (a stdlib-Python layout, skopeo copies), compared with skopeo; bad inputs;
# kiln prune on a store with refs.
. "$(dirname "$0")/lib.sh"
FIX=$(dirname "$0")/oci_fixture.py
J() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

L=$T/layout
d1=$(python3 "$FIX" "$L" one) && d2=$(python3 "$FIX" "$L" two)
check "fixture layout with two images is made" test -n "$d1" -a -n "$d2"

"$KILN" inspect "oci:$L:one" >"$T/one.json" 2>"$T/err"; rc=$?
check "kiln inspect oci:DIR:one exits 0" test $rc -eq 0
check "inspect reports the manifest digest" test "$(J "$T/one.json" 'd["digest"]')" = "$d1"
check "inspect prints the config of the right image" \
  test "$(J "$T/one.json" 'd["config"]["config"]["Labels"]["fixture"]')" = one

if command -v skopeo >/dev/null; then
  skopeo inspect --raw "oci:$L:two" >"$T/sk_raw.json" 2>"$T/sk.err"
  skopeo inspect --config "oci:$L:two" >"$T/sk_cfg.json" 2>>"$T/sk.err"
  "$KILN" inspect "oci:$L:two" >"$T/two.json"
  check "manifest equals skopeo inspect --raw" python3 -c "
import json,sys; k=json.load(open('$T/two.json')); s=json.load(open('$T/sk_raw.json')); sys.exit(k['manifest']!=s)"
  check "config equals skopeo inspect --config" python3 -c "
import json,sys; k=json.load(open('$T/two.json')); s=json.load(open('$T/sk_cfg.json')); sys.exit(k['config']!=s)"

  skopeo copy -q "oci:$L:two" "docker-archive:$T/two.tar:example.com/fix:two" 2>>"$T/sk.err"
  "$KILN" inspect "docker-archive:$T/two.tar" >"$T/da.json" 2>"$T/err"; rc=$?
  check "kiln inspect docker-archive: (written by skopeo) exits 0" test $rc -eq 0
  check "docker-archive config equals skopeo's" python3 -c "
import json,sys; k=json.load(open('$T/da.json')); s=json.load(open('$T/sk_cfg.json')); sys.exit(k['config']!=s)"
  check "docker-archive repoTags" test "$(J "$T/da.json" 'd["repoTags"][0]')" = example.com/fix:two
  check "docker-archive layer digests match the config's diff_ids (uncompressed)" python3 -c "
import json,sys; k=json.load(open('$T/da.json'))
ls=[l['digest'] for l in k['manifest']['layers']]
sys.exit(ls!=k['config']['rootfs']['diff_ids'])"

  skopeo copy -q "oci:$L:two" "oci-archive:$T/two-oci.tar:two" 2>>"$T/sk.err"
  "$KILN" inspect "oci-archive:$T/two-oci.tar:two" >"$T/oa.json" 2>"$T/err"; rc=$?
  check "kiln inspect oci-archive: (written by skopeo) gives skopeo's config" bash -c "test $rc -eq 0 && python3 -c \"
import json,sys; k=json.load(open('$T/oa.json')); s=json.load(open('$T/sk_cfg.json')); sys.exit(k['config']!=s)\""
  mkdir -p "$T/sklayout"
  skopeo copy -q "oci:$L:one" "oci:$T/sklayout:copied" 2>>"$T/sk.err"
  check "kiln inspect reads a layout written by skopeo" "$KILN" inspect "oci:$T/sklayout:copied"
  check "the tag may be omitted when the layout holds one image" "$KILN" inspect "oci:$T/sklayout"
else
  skip "skopeo comparisons" "skopeo not installed"
fi

# a docker-archive as older `docker save` wrote it: <id>/layer.tar, the repeated
# layer a symlink to the first copy (which comes earlier in the tar)
python3 - "$T/legacy.tar" <<'PY'
import hashlib, io, json, sys, tarfile
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as t:
    ti = tarfile.TarInfo("etc/hello"); ti.size = 3; t.addfile(ti, io.BytesIO(b"hi\n"))
layer = raw.getvalue(); lid = hashlib.sha256(layer).hexdigest()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + lid] * 2}}).encode()
cid = hashlib.sha256(cfg).hexdigest()
man = json.dumps([{"Config": cid + ".json", "RepoTags": ["legacy:1"],
                   "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]).encode()
with tarfile.open(sys.argv[1], "w") as t:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    add("aaa/layer.tar", layer)
    ln = tarfile.TarInfo("bbb/layer.tar"); ln.type = tarfile.SYMTYPE; ln.linkname = "../aaa/layer.tar"; t.addfile(ln)
    add(cid + ".json", cfg)
    add("manifest.json", man)
PY
"$KILN" inspect "docker-archive:$T/legacy.tar" >"$T/legacy.json" 2>"$T/err"; rc=$?
check "legacy docker-archive with a symlinked repeated layer: exit 0" test $rc -eq 0
check "  ...both layers resolve to the same uncompressed blob (= diff_ids)" python3 -c "
import json,sys; k=json.load(open('$T/legacy.json'))
ls=[l['digest'] for l in k['manifest']['layers']]
sys.exit(not (len(ls)==2 and ls==k['config']['rootfs']['diff_ids'] and k['manifest']['layers'][0]['mediaType'].endswith('tar')))"
if command -v skopeo >/dev/null; then
  check "  ...and skopeo agrees it is a valid archive" bash -c "skopeo inspect 'docker-archive:$T/legacy.tar' >/dev/null"
fi

# bad inputs: clear errors, exit 1
"$KILN" inspect "oci:$L" >/dev/null 2>"$T/err"; rc=$?
check "two images and no tag: exit 1" test $rc -eq 1
check "  ...naming the tags" grep -q "one, two" "$T/err"
"$KILN" inspect "oci:$L:three" >/dev/null 2>"$T/err"; rc=$?
check "unknown tag: exit 1 and a message naming it" bash -c "test $rc -eq 1 && grep -q \"no image tagged 'three'\" '$T/err'"
"$KILN" inspect "oci:$T/nonexistent" >/dev/null 2>"$T/err"; rc=$?
check "not a layout: exit 1" bash -c "test $rc -eq 1 && grep -q 'not an OCI image layout' '$T/err'"
cp -r "$L" "$T/bad"
cfg=$(J "$T/one.json" 'd["manifest"]["config"]["digest"][7:]')
chmod u+w "$T/bad/blobs/sha256/$cfg"; echo '{"tampered":1}' >"$T/bad/blobs/sha256/$cfg"
"$KILN" inspect "oci:$T/bad:one" >/dev/null 2>"$T/err"; rc=$?
check "tampered config blob: exit 1, digest mismatch named" bash -c "test $rc -eq 1 && grep -q 'does not match its digest' '$T/err'"
man=${d1#sha256:}
echo '{"schemaVersion":2,' >"$T/bad/blobs/sha256/$man"
"$KILN" inspect "oci:$T/bad:one" >/dev/null 2>"$T/err"; rc=$?
check "truncated manifest: exit 1" test $rc -eq 1
echo '{"manifests":[' >"$T/bad/index.json"
"$KILN" inspect "oci:$T/bad:one" >/dev/null 2>"$T/err"; rc=$?
check "invalid index.json JSON: exit 1 with line/column" bash -c "test $rc -eq 1 && grep -q 'invalid JSON at line' '$T/err'"
echo 'not a tarball' >"$T/junk.tar"
"$KILN" inspect "docker-archive:$T/junk.tar" >/dev/null 2>"$T/err"; rc=$?
check "docker-archive that is not a tar: exit 1" test $rc -eq 1
"$KILN" inspect >/dev/null 2>&1; rc=$?
check "no IMAGE: exit 2" test $rc -eq 2
"$KILN" inspect --validate-json application/vnd.oci.image.manifest.v1+json "$T/junk.tar" >/dev/null 2>"$T/err"; rc=$?
check "--validate-json on a non-JSON file: exit 1 naming the JSON error" bash -c "test $rc -eq 1 && grep -q 'invalid JSON' '$T/err'"
check "kiln inspect -h exits 0" bash -c "'$KILN' inspect -h >/dev/null"
check "kiln prune -h exits 0" bash -c "'$KILN' prune -h >/dev/null"

# prune: a store whose refs pin one image (manifest -> config + layer); junk goes
S=$T/store
mkdir -p "$S/blobs/sha256" "$S/refs" "$S/tmp"
cp "$L"/blobs/sha256/* "$S/blobs/sha256/"
python3 - "$S" "$d1" <<'PY'
import hashlib, sys, os
root, d = sys.argv[1], sys.argv[2]
name = "image/example.com/fix:one"
open(os.path.join(root, "refs", hashlib.sha256(name.encode()).hexdigest()), "w").write(d + "\n" + name + "\n")
open(os.path.join(root, "blobs", "sha256", hashlib.sha256(b"junk").hexdigest()), "wb").write(b"junk")
open(os.path.join(root, "tmp", "blob-stale"), "wb").write(b"partial")
PY
# a multi-platform index pinning image two (as kiln pull pins registry indexes)
python3 - "$S" "$d2" <<'PY'
import hashlib, json, os, sys
root, d = sys.argv[1], sys.argv[2]
size = os.path.getsize(os.path.join(root, "blobs", "sha256", d[7:]))
ix = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size,
                                "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
h = hashlib.sha256(ix).hexdigest()
open(os.path.join(root, "blobs", "sha256", h), "wb").write(ix)
name = "image/example.com/fix:multi"
open(os.path.join(root, "refs", hashlib.sha256(name.encode()).hexdigest()), "w").write("sha256:" + h + "\n" + name + "\n")
PY
# unpacked layer trees the build engine keeps: one per diff_id of the pinned images' configs
# stays, a tree of no kept config and a stale temp tree go
python3 - "$S" "$d1" <<'PY'
import json, os, sys
root, d = sys.argv[1], sys.argv[2]
blob = lambda x: open(os.path.join(root, "blobs", "sha256", x[7:]), "rb").read()
cfg = json.loads(blob(json.loads(blob(d))["config"]["digest"]))
low = os.path.join(root, "build", "lowers")
for i, x in enumerate(cfg["rootfs"]["diff_ids"]):
    os.makedirs(os.path.join(low, x[7:], "etc"))
    open(os.path.join(low, "kept-lowers"), "a").write(x[7:] + "\n")
    # the engine's marker that a blob holds the tree: goes with its tree
    open(os.path.join(low, x[7:] + ".blob-" + "cd" * 32), "w").close()
    open(os.path.join(low, "kept-lowers"), "a").write(x[7:] + ".blob-" + "cd" * 32 + "\n")
os.makedirs(os.path.join(low, "ab" * 32, "usr"))
open(os.path.join(low, "ab" * 32 + ".blob-" + "cd" * 32), "w").close()
os.makedirs(os.path.join(low, ".tmp-stale", "x"))
PY
mv "$S/build/lowers/kept-lowers" "$T/kept-lowers"
before=$(ls "$S/blobs/sha256" | wc -l)
"$KILN" prune --root "$S" --dry-run 2>"$T/err"; rc=$?
check "prune --dry-run exits 0 and removes nothing" bash -c "test $rc -eq 0 && test $(ls "$S/blobs/sha256" | wc -l) -eq $before"
"$KILN" prune --root "$S" 2>"$T/err"; rc=$?
check "prune exits 0" test $rc -eq 0
check "prune reports what it freed (the junk blob)" grep -q 'removed 1 blob' "$T/err"
check "prune keeps both pinned images and the index (7 blobs)" test "$(ls "$S/blobs/sha256" | wc -l)" -eq 7
check "prune removes stale temp files" test -z "$(ls "$S/tmp")"
check "prune keeps the unpacked trees of kept images' layers" \
  bash -c "test -s '$T/kept-lowers' && while read -r h; do test -e '$S/build/lowers/'\$h || exit 1; done <'$T/kept-lowers'"
check "prune removes unpacked trees no kept image lists, and stale temp trees" \
  bash -c "test ! -e '$S/build/lowers/$(printf 'ab%.0s' $(seq 32))' && test ! -e '$S/build/lowers/$(printf 'ab%.0s' $(seq 32)).blob-$(printf 'cd%.0s' $(seq 32))' && test ! -e '$S/build/lowers/.tmp-stale'"
check "prune reports the unpacked trees it removed" grep -q 'removed 2 unpacked layer tree' "$T/err"
"$KILN" inspect --root "$S" "store:image/example.com/fix:one" >"$T/st.json"; rc=$?
check "the pinned image is still complete (inspect store:)" bash -c "test $rc -eq 0 && grep -q fixture '$T/st.json'"
"$KILN" inspect --root "$S" "store:image/example.com/fix:multi" >"$T/stm.json"; rc=$?
check "inspect store: of a pinned index shows its linux/amd64 image" \
  bash -c "test $rc -eq 0 && test \"\$(python3 -c 'import json;print(json.load(open(\"$T/stm.json\"))[\"config\"][\"config\"][\"Labels\"][\"fixture\"])')\" = two"
rm "$S/refs/$(printf %s image/example.com/fix:multi | sha256sum | cut -c1-64)"
"$KILN" prune --root "$S" 2>"$T/err"
check "unpinning the index frees it and its image (4 blobs)" grep -q 'removed 4 blob' "$T/err"
# build cache entries unused for longer than --cache-max-age go, then what only they pinned
one=$(sed -n 1p "$S/refs/$(printf %s image/example.com/fix:one | sha256sum | cut -c1-64)")
for n in cache/stale cache/fresh; do
  printf '%s\n%s\n' "$one" "$n" >"$S/refs/$(printf %s "$n" | sha256sum | cut -c1-64)"
done
touch -d '3 hours ago' "$S/refs/$(printf %s cache/stale | sha256sum | cut -c1-64)"
"$KILN" prune --root "$S" --cache-max-age 2 2>"$T/err"; rc=$?
check "prune --cache-max-age drops the cache entry unused for 3 hours only" \
  bash -c "test $rc -eq 0 && grep -q 'dropped 1 build cache entry' '$T/err' && test ! -e '$S/refs/$(printf %s cache/stale | sha256sum | cut -c1-64)' && test -e '$S/refs/$(printf %s cache/fresh | sha256sum | cut -c1-64)'"
"$KILN" prune --root "$S" --cache-max-age soon 2>"$T/err"; rc=$?
check "prune --cache-max-age with a bad value is a usage error naming it" bash -c "test $rc -eq 2 && grep -q soon '$T/err'"
# a build holds the store: --no-wait refuses, the blob of the running build survives
exec 9>"$S/lock"; flock -s 9
"$KILN" prune --root "$S" --no-wait 2>"$T/err"; rc=$?
check "prune --no-wait while the store is in use: exit 1, 'in use'" bash -c "test $rc -eq 1 && grep -q 'in use' '$T/err'"
exec 9>&-

# layouts and archives written by kiln (through kiln import): several images
# per layout, a tag written again replaces only its own image
if "$KILN" import -h >/dev/null 2>&1 && command -v skopeo >/dev/null; then
  R=$T/rootfs; mkdir -p "$R/etc"; echo hi >"$R/etc/hi"
  imp() { "$KILN" import "$R" -t "$1" --label "which=$2" --root "$T/kstore" --output "$3" 2>>"$T/imp.err"; }
  da=$(imp example.com/multi:v1 a "type=oci,dest=$T/multi")
  db=$(imp example.com/multi:v2 b "type=oci,dest=$T/multi")
  dc=$(imp example.com/multi:v1 c "type=oci,dest=$T/multi")
  check "three kiln imports into one layout succeed" test -n "$da" -a -n "$db" -a -n "$dc" -a "$da" != "$dc"
  check "index.json keeps two images (v1 replaced, v2 kept)" test "$(J "$T/multi/index.json" 'len(d["manifests"])')" = 2
  check "skopeo finds v1 as the newest import" \
    bash -c "skopeo inspect 'oci:$T/multi:v1' | grep -q '\"Digest\": \"$dc\"'"
  check "skopeo still finds v2" bash -c "skopeo inspect 'oci:$T/multi:v2' | grep -q '\"Digest\": \"$db\"'"
  check "io.containerd.image.name carries the full name" \
    grep -q '"io.containerd.image.name":"example.com/multi:v2"' "$T/multi/index.json"
  "$KILN" inspect "oci:$T/multi:v2" >"$T/m2.json"
  check "kiln inspect of its own layout shows the label" test "$(J "$T/m2.json" 'd["config"]["config"]["Labels"]["which"]')" = b
  for i in 1 2 3 4 5 6 7 8; do imp "example.com/par:$i" "p$i" "type=oci,dest=$T/par" >/dev/null & done; wait
  check "8 concurrent imports into one layout keep all 8 entries" \
    test "$(J "$T/par/index.json" 'len(d["manifests"])')" = 8
  dd=$(imp example.com/multi:v2 b "type=docker,dest=$T/multi-docker.tar")
  "$KILN" inspect "docker-archive:$T/multi-docker.tar" >"$T/md.json" 2>"$T/err"; rc=$?
  check "kiln reads back its own docker-archive with the same manifest digest" \
    bash -c "test $rc -eq 0 && test \"\$(python3 -c 'import json;print(json.load(open(\"$T/md.json\"))[\"digest\"])')\" = '$dd'"
  check "the docker-archive is also an OCI archive (skopeo oci-archive:)" \
    bash -c "skopeo inspect 'oci-archive:$T/multi-docker.tar' | grep -q '\"Digest\": \"$dd\"'"
else
  skip "kiln-written multi-image layouts" "kiln import or skopeo missing"
fi
