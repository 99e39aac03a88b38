#!/usr/bin/env bash
# The first command on a fresh Debian 12 machine (as root), from a clone of kiln:
# installs what kiln needs, builds kiln, builds every image the auto-build uses
# (base, node/python/go/jvm/rust/ruby/php build images, node/python/static/minimal/jvm/ruby/php
# run images) with kiln
# itself, auto-builds examples/go-http (no Dockerfile: kiln detects a
# Go module) into an OCI layout, runs the image with runc and prints its HTTP
# answer fetched over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "installing Debian packages (scripts/install-deps.sh)"
bash scripts/install-deps.sh

step "building kiln (meson + ninja)"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
KILN=$PWD/build/src/kiln
"$KILN" version | head -n 1

step "building kiln's base, build and run images with kiln (cached under /var/cache/kiln/images)"
# All of them, so that no auto-build meets a missing image; each is rebuilt only when its
# Dockerfile changed, on the debootstrapped base that is made once.
images=$(KILN_BIN=$KILN bash images/build.sh)
export KILN_IMAGE_PREFIX=oci:$images

step "kiln plan examples/go-http"
"$KILN" plan examples/go-http

out=$PWD/kiln-out/go-http
step "kiln build examples/go-http → $out"
rm -rf "$out"
"$KILN" build -t go-http:latest --output "type=oci,dest=$out" examples/go-http

step "running the image (umoci unpack + runc) and fetching its answer over loopback"
work=$(mktemp -d /tmp/kiln-setup.XXXXXX)
cid=kiln-setup-$$
cleanup() {
  runc kill "$cid" KILL >/dev/null 2>&1 || true
  runc delete --force "$cid" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
umoci unpack --image "$out:latest" "$work/bundle" >/dev/null
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
python3 - "$work/bundle/config.json" "$port" <<'PY'
import json, sys
path, port = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["env"] = [e for e in c["process"]["env"] if not e.startswith("PORT=")] + ["PORT=" + port]
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"))
PY
runc run --bundle "$work/bundle" "$cid" >"$work/run.log" 2>&1 </dev/null &
for _ in $(seq 1 100); do
  if answer=$(python3 -c "import urllib.request,sys;print(urllib.request.urlopen('http://127.0.0.1:$port/',timeout=2).read().decode(),end='')" 2>/dev/null); then
    printf '\nGET http://127.0.0.1:%s/ →\n%s\n' "$port" "$answer"
    exit 0
  fi
  sleep 0.2
done
echo "the container did not answer; its log:" >&2
cat "$work/run.log" >&2
exit 1
