"""BuildKit's Dockerfile parser conformance corpus, run through `kiln dockerfile`.

Positive cases must dump exactly the `result` AST, negative cases must fail,
the line-number file must give BuildKit's start/end lines, and every
envVarTest (ProcessWord) and wordsTest (ProcessWords) line must hold.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import CORPORA, T, kiln  # noqa: E402

BASE = os.path.join(CORPORA, "buildkit-dockerfile-parser")
if not os.path.isdir(BASE):
    T.skip("buildkit corpus", f"{BASE} not found")
    T.done()

# Positive cases: the AST dump must match byte for byte.
pos = os.path.join(BASE, "testfiles")
for case in sorted(os.listdir(pos)):
    df = os.path.join(pos, case, "Dockerfile")
    with open(os.path.join(pos, case, "result"), "rb") as f:
        want = f.read().replace(b"\r\n", b"\n")
    r = kiln("dockerfile", "parse", df, input=b"")
    T.check(f"parse {case}", r.returncode == 0 and r.stdout == want,
            f"rc={r.returncode}\n--- got\n{r.stdout.decode(errors='replace')}\n--- want\n"
            f"{want.decode(errors='replace')}\n{r.stderr.decode(errors='replace')}")

# Negative cases: parsing must fail with a located message.
neg = os.path.join(BASE, "testfiles-negative")
for case in sorted(os.listdir(neg)):
    r = kiln("dockerfile", "parse", os.path.join(neg, case, "Dockerfile"))
    T.check(f"reject {case}", r.returncode == 1 and "Dockerfile:" in r.stderr,
            f"rc={r.returncode} stderr={r.stderr}")

# Line numbers (TestParseIncludesLineNumbers).
r = kiln("dockerfile", "lines", os.path.join(BASE, "testfile-line", "Dockerfile"))
T.check("line numbers", r.stdout.split("\n")[:4] == ["5 31", "5 5", "11 12", "17 31"]
        and r.stdout.count("\n") == 4, r.stdout + r.stderr)

# envVarTest: ProcessWord with a fixed environment (Unix platform lines).
ENV = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]
env_args = [a for e in ENV for a in ("--env", e)]
n_env = 0
with open(os.path.join(BASE, "shell", "envVarTest"), encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        plat, src, want = [x.strip() for x in line.split("|", 2)]
        if plat == "W":
            continue
        n_env += 1
        r = kiln("dockerfile", "word", *env_args, "--", src)
        if want == "error":
            ok = r.returncode == 1
        else:
            ok = r.returncode == 0 and r.stdout == want + "\n"
        T.check(f"envVarTest:{lineno} {src!r}", ok,
                f"want {want!r} got rc={r.returncode} {r.stdout!r} {r.stderr!r}")

# wordsTest: ProcessWords; ENV lines extend the environment.
words_env = []
with open(os.path.join(BASE, "shell", "wordsTest"), encoding="utf-8") as f:
    for lineno, raw in enumerate(f, 1):
        raw = raw.rstrip("\n")
        if raw.startswith("#"):
            continue
        if raw.startswith("ENV "):
            words_env.append(raw[4:])
            continue
        if "|" not in raw:
            continue
        src, want = raw.split("|", 1)
        src = src.strip()
        want = want.lstrip(" ")
        args = [a for e in words_env for a in ("--env", e)]
        r = kiln("dockerfile", "word", "--words", *args, "--", src)
        if want == "error":
            ok = r.returncode == 1
        else:
            ok = r.returncode == 0 and json.loads(r.stdout or "null") == want.split(",")
        T.check(f"wordsTest:{lineno} {src!r}", ok,
                f"want {want!r} got rc={r.returncode} {r.stdout!r} {r.stderr!r}")

T.diag(f"{n_env} envVarTest lines checked")
T.done()
