#!/usr/bin/env bash
# Installs everything kiln needs to build, test and benchmark on Debian 12 (run as root).
# Idempotent: packages already present are skipped by apt.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

BUILD_PKGS=(
  build-essential meson ninja-build pkg-config clang clang-format
  libgit2-dev libarchive-dev libssl-dev libcurl4-openssl-dev libjansson-dev
  libseccomp-dev libmicrohttpd-dev libsqlite3-dev libzstd-dev libisal-dev
  libdeflate-dev libcmocka-dev zlib1g-dev libexpat1-dev libinih-dev libclang-rt-14-dev libfuzzer-14-dev
)
RUN_PKGS=(
  git ca-certificates openssl python3 iproute2 uidmap slirp4netns busybox-static
  debootstrap zstd time
)
PEER_PKGS=(
  docker-registry skopeo umoci runc buildah apache2-utils bubblewrap hyperfine isal
  awscli
  wrk chromium
)

missing=()
for p in "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}" "${PEER_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian docker-registry package starts a system service on :5000; tests run their own.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
# Without systemd the package's init script started it, with a pid file: end that pid, and only
# if it is still that program (start-stop-daemon checks /proc/PID/exe), never by name.
REGISTRY_PIDFILE=/var/run/docker-registry.pid
if [ -f "$REGISTRY_PIDFILE" ]; then
  start-stop-daemon --stop --quiet --retry 10 --pidfile "$REGISTRY_PIDFILE" \
    --exec /usr/bin/docker-registry >/dev/null 2>&1 || true
  rm -f "$REGISTRY_PIDFILE"
fi
# Node.js + npm run the AWS emulator of the tests (fauxqs); tests/aws/setup.sh
# fetches Node 22 from the npm registry when this one is older than 20.
if ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# playwright-core (pinned, driver only) drives Debian's chromium in the dashboard's browser test,
# which is skipped without it
bash "$(dirname "$0")/../tests/browser/install.sh" >/dev/null 2>&1 ||
  echo "install-deps: playwright-core not installed (test_server_dashboard_browser will be skipped)" >&2
# moto's server answers STS AssumeRole (fauxqs does not) in the per-tenant credentials test,
# which is skipped without it
if ! python3 -c 'import moto.server, boto3' >/dev/null 2>&1; then
  python3 -m pip install --quiet 'moto[server]==5.2.1' >/dev/null 2>&1 ||
    echo "install-deps: moto not installed (test_server_creds_sts will be skipped)" >&2
fi
exit 0
