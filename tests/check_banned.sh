#!/usr/bin/env bash
# Fails when kiln's C sources call a function we ban (unbounded or thread-unsafe).
set -u
cd "$(dirname "$0")/.."
pattern='\b(sprintf|vsprintf|strcpy|strcat|strtok|gets|strncpy|strncat|tmpnam|mktemp|atoi|atol|alloca|readdir_r|asctime|ctime|gmtime|localtime|getpwnam|getgrnam|strerror_r)\s*\('
hits=$(grep -rnE "$pattern" --include='*.c' --include='*.h' src oci utils sandbox handlers 2>/dev/null | grep -v 'kiln-allow-banned')
if [ -n "$hits" ]; then
  echo "banned functions used:"; echo "$hits"; exit 1
fi
exit 0
