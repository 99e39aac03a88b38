#!/usr/bin/env bash
# The kiln CLI's conventions: exit codes, -h, version.
. "$(dirname "$0")/lib.sh"

out=$("$KILN" version)
check "kiln version prints kiln's version" grep -q '^kiln [0-9]' <<<"$out"
check "kiln version names libgit2 and libarchive" grep -q 'libgit2' <<<"$out"
"$KILN" >/dev/null 2>&1; rc=$?
check "kiln with no command exits 2" test $rc -eq 2
"$KILN" frobnicate >/dev/null 2>&1; rc=$?
check "unknown command exits 2" test $rc -eq 2
"$KILN" version --bogus >/dev/null 2>&1; rc=$?
check "unknown flag exits 2" test $rc -eq 2
check "kiln -h lists commands" bash -c "'$KILN' -h | grep -q version"
