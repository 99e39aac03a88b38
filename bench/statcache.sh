#!/usr/bin/env bash
# The stat cache and COPY of big contexts: bench_lib's rounds (RUNS, default 5; the cases
# compared run in turn, round after round, so a busy shared machine weighs on both alike; each
# command under /usr/bin/time -v: median, min, max, CPU, peak RSS), then one ratio line a case:
#   cold100k  cold build (fresh kiln root) of `FROM scratch / COPY . /src/` over a 100k-file
#             context vs `tar -cf - | gzip -1 | sha256sum` of the same tree   target <= 1.5x
#   scaling   cold 100k files / cold 10k files                                target <= 13x
#   server    a server-style rebuild of a 30k-file git repo with one file changed (kiln checkout
#             into a new directory + kiln build, both with the repo's context id, as kiln serve
#             runs them) vs the CLI's warm rebuild of the same tree in place with one file
#             changed                                                        target <= 2x
#   jobrun    the same rebuild as the server runs it: `kiln job run` of a git spec (its own
#             checkout, noted in the stat cache, then the build, in one job)     target <= 2x
#   nochange  the CLI rebuild of the 100k context with nothing changed (all stat cache hits)
# Usage: bench/statcache.sh [KILN_BIN]   (env: RUNS=5; PARTS="cold server" to run only some;
# trees are cached under /var/cache/kiln/bench-statcache-<N>)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_lib.sh # the README's binary (build/src/kiln, built if absent), timing helpers
bench_kiln "${1:-}"
PARTS=${PARTS:-cold server}
want() { [[ " $PARTS " == *" $1 "* ]]; }
bench_scratch statcache

# A tree of n source-like files (120 B to 9 KB of text, 50 per directory), made once.
tree() { # n -> prints the context directory
  local dir=/var/cache/kiln/bench-statcache-$1
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    python3 - "$dir/ctx" "$1" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
words = [("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz_(){};") for _ in range(rnd.randint(2, 9)))).encode()
         for _ in range(5000)]
for i in range(n):
    d = os.path.join(root, "m%03d" % (i // 1000), "p%02d" % ((i // 50) % 20))
    if i % 50 == 0:
        os.makedirs(d, exist_ok=True)
    want = rnd.choice((120, 400, 900, 1500, 2500, 4000, 6000, 9000))
    out = bytearray()
    while len(out) < want:
        out += rnd.choice(words) + (b"\n" if rnd.random() < 0.1 else b" ")
    with open(os.path.join(d, "f%06d.c" % i), "wb") as f:
        f.write(out[:want])
PY
    printf 'FROM scratch\nCOPY . /src/\n' >"$dir/ctx/Dockerfile"
    touch "$dir/.complete"
  fi
  echo "$dir/ctx"
}

want cold && C10=$(tree 10000) && C100=$(tree 100000)
C30=$(tree 30000)
floor() { echo "tar -cf - -C $1 . | gzip -1 | sha256sum >/dev/null"; }
cold() { echo "$KILN build --root $T/root --progress quiet -o type=oci,dest=$T/out $1"; }
fresh="rm -rf $T/root $T/out"

bench_header
if want cold; then
  rounds floor100k "" "$(floor "$C100")" cold100k "$fresh" "$(cold "$C100")"
  rounds nochange100k "" "$(cold "$C100")"
  rounds floor10k "" "$(floor "$C10")" cold10k "$fresh" "$(cold "$C10")"
fi

if want server; then
# 30k: a git repo of the tree; the CLI rebuilds it in place, the "server" checks each commit out anew
R=$T/repo
cp -a "$C30" "$R"
echo .git >"$R/.dockerignore" # the CLI's context is the work tree, as the server's checkout
git -C "$R" init -q -b main
git -C "$R" add -A
git -C "$R" -c user.name=b -c user.email=b@example.test commit -qm base
git clone -q --bare "$R" "$T/repo.git"
ID="git file://$T/repo.git "
change() { # one file changed and committed and pushed
  echo "echo \$RANDOM >>$R/m000/p00/f000000.c && git -C $R -c user.name=b -c user.email=b@example.test commit -qam c && git -C $R push -q $T/repo.git main"
}
# the previous checkout goes before the clock starts (kiln serve removes a build's directory
# after the build)
srv_build="$KILN checkout --root $T/sroot --context-id '$ID' file://$T/repo.git $T/w >/dev/null 2>&1 && $KILN build --root $T/sroot --context-id '$ID' --progress quiet -o type=oci,dest=$T/sout $T/w"
# warm both (first builds fill the caches)
bash -c "$srv_build" >/dev/null 2>&1
rm -rf "$T/w"
"$KILN" build --root "$T/croot" --progress quiet -o "type=oci,dest=$T/cout" "$R" >/dev/null 2>&1
# kiln serve's own path: kiln job run checks the repository out itself (under its root's work
# directory, removed after the job) and builds it in the same job
printf '{"source": {"git": "file://%s/repo.git", "ref": "main"}, "outputs": [{"type": "oci", "dest": "%s/jout"}]}\n' \
  "$T" "$T" >"$T/job.json"
job_build="$KILN job run --spec $T/job.json --root $T/jroot --events /dev/null"
bash -c "$job_build" >/dev/null 2>&1
rounds cli30k "$(change)" "$KILN build --root $T/croot --progress quiet -o type=oci,dest=$T/cout $R" \
  server30k "$(change) && rm -rf $T/w" "$srv_build" \
  jobrun30k "$(change)" "$job_build"
fi

echo
stats_table
echo
if want cold; then
  ratio_line cold100k cold100k floor100k "(goal <= 1.5: tar | gzip -1 | sha256sum of the tree)"
  ratio_line scaling cold100k cold10k "(goal <= 13: 10x the files)"
  ratio_line nochange100k nochange100k floor100k "(nothing changed: stat cache hits)"
  ratio_line cold10k cold10k floor10k
fi
if want server; then
  ratio_line server server30k cli30k "(goal <= 2: kiln checkout + build by hand vs the CLI's warm rebuild)"
  ratio_line jobrun jobrun30k cli30k "(goal <= 2: kiln job run, the server's path)"
fi
bench_footer
