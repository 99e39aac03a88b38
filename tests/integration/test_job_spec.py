#!/usr/bin/env python3
"""kiln build checks its whole job (job/spec.h) before any work starts: a bad -o, tag, cache
reference, notify URL, limit or secret is refused with exit 2 and a message naming the field,
before the kiln root is even opened and before any step runs; a good command still builds."""
import os

from kilntest import T, kiln

ctx = os.path.join(T.tmp, "ctx")
os.makedirs(ctx)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY a /a\n")
with open(os.path.join(ctx, "a"), "w") as f:
    f.write("hello\n")
out = os.path.join(T.tmp, "out")

# (flags, what the error names)
bad = [
    (["-o", "type=bogus"], "field 'outputs[0].type': unknown output type 'bogus'"),
    (["-o", "type=oci"], "field 'outputs[0].dest': type=oci needs a dest"),
    (["-o", f"type=oci,dest={out},colour=red"], "field 'outputs[0].colour': not an option of type=oci"),
    (["-o", f"type=oci,dest={out},tar=maybe"], "field 'outputs[0].tar': must be true or false"),
    (["-o", f"type=oci,dest={out}", "-o", "type=bogus2"], "field 'outputs[1].type': unknown output type 'bogus2'"),
    (["-o", "type=registry"], "field 'outputs[0]': a push needs a name"),
    (["--push"], "field 'outputs[0]': a push needs a name"),
    (["-o", "type=registry,name=Bad/Name"], "field 'outputs[0].name': invalid image reference 'Bad/Name'"),
    (["-o", "type=s3,dest=s3://b"], "field 'outputs[0].dest': 's3://b': the bucket name must be 3 to 63"),
    (["-o", "type=s3,dest=http://bucket/x"], "field 'outputs[0]"),
    (["-t", "bad..ref", "-o", f"type=oci,dest={out}"], "field 'tags[0]': invalid image reference 'bad..ref'"),
    (["--cache-from", "type=registry,ref=UPPER/x"], "field 'cache.from[0]': invalid image reference"),
    (["--cache-to", "type=registry,ref=a..b"], "field 'cache.to': invalid image reference"),
    (["--pids-limit", "99999999"], "field 'limits.pids': 99999999 is too large"),
    (["--secret", "id=bad id,src=/dev/null"], "field 'secrets.bad id': is not a valid secret id"),
    (["--secret", "id=tok,src=/dev/null,env=HOME"], "field 'secrets.tok': takes a file or a variable"),
    (["--build-arg", "1BAD=x"], "field 'build_args.1BAD': is not a valid name"),
    (["--subdir", "../up"], "field 'source.subdir': must not contain '..'"),
]
for flags, want in bad:
    root = os.path.join(T.tmp, "root-bad")
    r = kiln("build", "--root", root, "--progress", "plain", *flags, ctx)
    name = " ".join(flags)
    T.check(f"kiln build {name}: exit 2 naming the field", r.returncode == 2 and want in r.stderr,
            f"rc={r.returncode}\n{r.stderr}")
    T.check(f"kiln build {name}: no step ran and the kiln root was not opened",
            "#1 " not in r.stderr and "COPY a" not in r.stderr and not os.path.exists(root),
            r.stderr)
    T.check(f"kiln build {name}: nothing written", not os.path.exists(out), os.listdir(T.tmp))

# a git context's fragment: URL#REF:SUBDIR is read into source.ref and source.subdir
r = kiln("build", "--root", os.path.join(T.tmp, "root-git"), "-o", "type=bogus",
         "https://127.0.0.1:1/x.git#main:sub")
T.check("a git context with a bad -o: refused before the clone", r.returncode == 2 and
        "unknown output type 'bogus'" in r.stderr and "clon" not in r.stderr.lower(), r.stderr)
r = kiln("build", "--root", os.path.join(T.tmp, "root-git"), "https://127.0.0.1:1/x.git#ma~in")
T.check("a git context with a bad ref: field 'source.ref'",
        r.returncode == 2 and "field 'source.ref': is not a valid git ref" in r.stderr, r.stderr)

# what is valid still builds
root = os.path.join(T.tmp, "root")
r = kiln("build", "--root", root, "--progress", "plain", "-t", "kiln-it/job:1", "--pids-limit", "64",
         "-o", f"type=oci,dest={out},tar=false", ctx)
T.check("a valid command builds", r.returncode == 0 and os.path.exists(os.path.join(out, "index.json")),
        r.stderr)
T.done()
