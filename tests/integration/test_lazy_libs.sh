#!/usr/bin/env bash
# Libraries loaded on first use (utils/lazylib): kiln is not linked against
# libgit2, libarchive, libcurl, libmicrohttpd, OpenSSL, SQLite, zstd, ISA-L,
# jansson, zlib, libdeflate, expat or libseccomp (the step filter is compiled
# at build time): only libc and libinih; `kiln run` never loads them;
# where one is missing, the commands that need it fail naming the library and
# what needs it, and `kiln run` still works (in a private mount namespace where
# each library file is hidden behind an empty file).
. "$(dirname "$0")/lib.sh"

LAZY="libgit2.so libarchive.so libcurl.so libmicrohttpd.so libseccomp.so libcrypto.so libssl.so
  libsqlite3.so libzstd.so libisal.so libjansson.so libz.so libdeflate.so libexpat.so"
needed=$(readelf -d "$KILN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
check "kiln links libc and libinih only" test "$(echo $needed)" = "libinih.so.1 libc.so.6 ld-linux-x86-64.so.2"
for l in $LAZY; do
  check "kiln is not linked against $l (else a function kiln calls is missing from utils/*_lazy.c)" bash -c "! grep -q '^$l' <<<'$needed'"
done

if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
  skip "kiln run without the lazy libraries" "needs root and unshare"
  exit 0
fi
R=$T/rootfs
make_busybox_rootfs "$R"

# Which shared objects a command maps (the dynamic loader's own account).
loaded() { LD_DEBUG=files LD_DEBUG_OUTPUT=$T/ld "$@" >/dev/null 2>&1; cat "$T"/ld.* 2>/dev/null; rm -f "$T"/ld.*; }
libs=$(loaded "$KILN" run --rootfs "$R" --network none -- true)
check "the loader's account of kiln run is there" grep -q 'file=libc.so.6' <<<"$libs"
for l in $LAZY; do
  check_fails "kiln run does not load $l" grep -q "file=$l" <<<"$libs"
done
libs=$(loaded "$KILN" version)
check "kiln version loads libarchive on first use" grep -q 'file=libarchive.so' <<<"$libs"
# kiln serve runs each job in a forked child while its threads run: it loads them all first
libs=$(loaded timeout 3 "$KILN" serve --no-auth --root "$T/preroot" --listen "127.0.0.1:$(free_port)")
for l in libgit2.so libarchive.so libcurl.so libzstd.so libisal.so libcrypto.so; do
  check "kiln serve loads $l before any job (no child loads a library)" grep -q "file=$l" <<<"$libs"
done

# The same commands with each library file hidden (private mount namespace).
LIBDIR=$(dirname "$(readlink -f /lib/x86_64-linux-gnu/libc.so.6)")
: >"$T/empty"
HIDE="libgit2.so.1.5 libarchive.so.13 libcurl.so.4 libmicrohttpd.so.12"
hidden() { # command... : runs it with the libraries $HIDE unloadable
  unshare -m bash -c 'for f in $2; do mount --bind "$1" "$0/$f" || exit 99; done
      shift 2; exec "$@"' "$LIBDIR" "$T/empty" "$HIDE" "$@"
}
out=$(hidden "$KILN" run --rootfs "$R" --network none -- sh -c 'echo still-runs' 2>&1)
check "kiln run works without libgit2, libarchive and libcurl" test "$out" = still-runs

mkdir -p "$T/ctx"
echo hi >"$T/ctx/f"
tar -cf "$T/a.tar" -C "$T/ctx" f
out=$(hidden "$KILN" load --root "$T/root" -i "$T/a.tar" 2>&1)
rc=$?
check "kiln load fails without libarchive" test $rc != 0 -a $rc != 99
check "the error names libarchive and what needs it" \
  grep -q 'libarchive.so.13 (needed to read and write tar and zip archives.*) could not be loaded' <<<"$out"

git init -q "$T/repo"
git -C "$T/repo" -c user.email=t@t -c user.name=t commit -q --allow-empty -m m
out=$(hidden "$KILN" checkout --root "$T/root" "file://$T/repo" "$T/dest" 2>&1)
check "kiln checkout fails without libgit2" test $? = 1
check "the error names libgit2 and what needs it" \
  grep -q 'git: libgit2.so.1.5 (needed for git sources.*) could not be loaded' <<<"$out"
check "nothing checked out" test ! -e "$T/dest"
out=$(hidden "$KILN" version 2>&1)
check "kiln version names the missing libgit2" grep -q '^libgit2: libgit2.so.1.5 (needed' <<<"$out"
out=$(hidden "$KILN" pull --root "$T/root" 127.0.0.1:1/none:latest 2>&1)
check "kiln pull names the missing libcurl" grep -q 'libcurl.so.4 (needed to talk HTTP' <<<"$out"
out=$(hidden timeout 20 "$KILN" serve --no-auth --root "$T/sroot" --listen "127.0.0.1:$(free_port)" 2>&1)
check "kiln serve names the missing libmicrohttpd" grep -q "libmicrohttpd.so.12 (needed by kiln serve's HTTP API) could not be loaded" <<<"$out"

# OpenSSL: its callers take a digest as infallible, so kiln ends as the loader would
HIDE="libcrypto.so.3 libssl.so.3"
out=$(hidden "$KILN" run --rootfs "$R" --network none -- sh -c 'echo still-runs' 2>&1)
check "kiln run works without OpenSSL" test "$out" = still-runs
out=$(hidden "$KILN" import "$T/ctx" -t lazy/t:1 --root "$T/root" 2>&1)
check "kiln import without libcrypto exits 127, as the loader would" test $? = 127
check "the error names libcrypto and what needs it" \
  grep -q '^kiln: libcrypto.so.3 (needed for SHA-256 digests.*) could not be loaded' <<<"$out"
check "nothing named in the store" bash -c "! $KILN images --root $T/root 2>/dev/null | grep -q lazy/t"
