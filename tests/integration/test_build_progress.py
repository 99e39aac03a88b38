#!/usr/bin/env python3
"""kiln build's progress on a terminal (src/progress): run under a pseudo-terminal, the tty view
shows each step's line with its time, parallel stages running at once, the running step's last
output lines, CACHED on the second build and a summary (steps, slowest, image digest and size);
a failing RUN's output is on the screen exactly once, after its instruction and its
Dockerfile FILE:LINE (and, with --progress=plain, once as it streams: the end names the
instruction and FILE:LINE without it); escape sequences a step prints never reach the terminal;
--progress=json is one JSON object per line (step events with their Dockerfile line, a last
result with the digest); --progress=quiet prints nothing. The screen is replayed from the bytes
written (cursor up, clear to the end) as a terminal would show it."""
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import fcntl
import termios

from kilnbuild import make_base
from kilntest import KILN, T, kiln

ROOT = os.path.join(T.tmp, "root")
BASE = make_base(ROOT)
COLS, ROWS = 100, 30


def on_tty(*args, env=None):
    """Runs kiln with stderr on a pseudo-terminal of COLS x ROWS; returns (rc, stdout, raw
    bytes written to the terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    e = dict(os.environ, TERM="xterm")
    e.update(env or {})
    p = subprocess.Popen([KILN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=slave, env=e)
    os.close(slave)
    raw = b""
    while True:
        r, _, _ = select.select([master], [], [], 600)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(master)
    out = p.stdout.read().decode()
    p.wait(timeout=600)
    return p.returncode, out, raw.decode(errors="replace")


def screen(raw):
    """The lines a terminal shows (scrollback included) after raw: text, \\r, \\n, ESC[nA (up),
    ESC[J (clear to the end). Also returns every frame's running region for inspection."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(raw):
        m = re.match(r"\x1b\[(\d*)([AJ])", raw[i:])
        if m:
            if m.group(2) == "A":
                row = max(0, row - int(m.group(1) or 1))
            else:
                lines[row] = lines[row][:col]
                del lines[row + 1:]
            i += m.end()
            continue
        ch = raw[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append("")
        else:
            ln = lines[row]
            lines[row] = ln[:col] + ch + ln[col + 1:]
            col += 1
    return "\n".join(lines)


def frames(raw):
    """The text drawn between two erasures: each frame of the live view."""
    return re.split(r"\r?\x1b\[\d+A\x1b\[J", raw)


ctx = os.path.join(T.tmp, "ctx")
os.makedirs(ctx)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("""ARG BASE
FROM ${BASE} AS a
RUN echo from-a-1 && sleep 3 && echo from-a-2
FROM ${BASE} AS b
RUN for i in 1 2 3 4 5 6 7 8 9; do echo b-line-$i; done; printf '\\033]0;PWNED\\007\\033[2Jafter-escapes\\n'; sleep 3
FROM a
COPY --from=b /etc/passwd /b-passwd
RUN echo final-step
""")
args = ["build", "--root", ROOT, "--build-arg", f"BASE={BASE}", ctx]
rc, out, raw = on_tty(*args)
scr = screen(raw)
digest = out.strip()
T.check("tty: the build succeeds and prints the digest on stdout",
        rc == 0 and digest.startswith("sha256:"), scr[-3000:])
T.check("tty: the header and each finished step with its time",
        "[+] Building" in scr and re.search(r" => \[a 2/2\] RUN echo from-a-1 .* +\d+\.\ds", scr)
        and re.search(r" => \[stage-2 3/3\] RUN echo final-step +\d+\.\ds", scr), scr[-3000:])
T.check("tty: lines fit the terminal's width",
        all(len(ln) < COLS for ln in scr.splitlines()), max(scr.splitlines(), key=len))
both = [fr for fr in frames(raw) if "[a 2/2] RUN" in fr and "[b 2/2] RUN" in fr
        and "[+] Building" in fr]
T.check("tty: the parallel stages run at once, each its own line in the live view", both,
        raw[-3000:])
live = [fr for fr in frames(raw) if " => => # after-escapes" in fr]
T.check("tty: the running step's last output lines are shown under it (the last 6)",
        live and " => => # b-line-5" in live[-1] and " => => # b-line-4" not in live[-1],
        raw[-3000:])
T.check("tty: the summary: steps run and cached, the slowest, the image's digest and size",
        "FINISHED" in scr and " => 7 steps, 0 cached" in scr and " => slowest:" in scr
        and f" => image {digest}\n => size " in scr and "compressed" in scr, scr[-2000:])
T.check("tty: a step's escape sequences never reach the terminal",
        "\x1b]0;" not in raw and "\x1b[2J" not in raw and "PWNED" in raw, repr(raw[-2000:]))
T.check("tty: finished steps' output is not left on the screen", "b-line-1" not in scr, scr)

rc, out2, raw2 = on_tty(*args)
scr2 = screen(raw2)
T.check("tty: the second build marks its steps CACHED",
        rc == 0 and out2 == out and " => CACHED [a 2/2] RUN echo from-a-1" in scr2
        and " => 7 steps, 4 cached" in scr2, scr2[-2000:])

# --- a failing RUN: its output once, with the instruction and FILE:LINE ---
bad = os.path.join(T.tmp, "bad")
os.makedirs(bad)
with open(os.path.join(bad, "Dockerfile"), "w") as f:
    f.write(f"FROM {BASE}\nRUN echo ok\n\n"
            "RUN printf 'OUT-%s\\n' first-line && printf 'OUT-%s\\n' last-line >&2 && exit 7\n")
rc, _, raw3 = on_tty("build", "--root", ROOT, bad)
scr3 = screen(raw3)
T.check("tty failure: exit 1, the step marked ERROR with its time",
        rc == 1 and re.search(r" => ERROR \[stage-0 3/3\] RUN printf .* +\d+\.\ds", scr3),
        scr3)
T.check("tty failure: the instruction with the Dockerfile's FILE:LINE, then its output",
        " > [stage-0 3/3] RUN printf 'OUT-%s\\n' first-line && printf 'OUT-%s\\n' last-line >&2 "
        f"&& exit 7 ({bad}/Dockerfile:4):\nOUT-first-line\nOUT-last-line\n------" in scr3, scr3)
T.check("tty failure: each output line on the screen exactly once",
        scr3.count("OUT-first-line") == 1 and scr3.count("OUT-last-line") == 1, scr3)
T.check("tty failure: the error names the file and line once, with the exit code",
        scr3.count(f"ERROR: {bad}/Dockerfile:4: process ") == 1
        and "did not complete successfully: exit code: 7" in scr3, scr3)

# plain (as piped to a log): the output streams once as "#N line"; the end names the
# instruction and FILE:LINE and the error without the output again
r = kiln("build", "--root", ROOT, "--progress=plain", bad)
T.check("plain failure: each output line printed once, as the step ran",
        r.returncode == 1 and r.stderr.count("OUT-first-line") == 1 and r.stderr.count("OUT-last-line") == 1
        and re.search(r"^#(\d+) OUT-first-line\n#\1 OUT-last-line\n#\1 ERROR\n", r.stderr, re.M),
        r.stderr[-2000:])
T.check("plain failure: the instruction with FILE:LINE, then the error once, word for word",
        r.stderr.endswith(
            "------\n > [stage-0 3/3] RUN printf 'OUT-%s\\n' first-line && printf 'OUT-%s\\n' last-line >&2 "
            f"&& exit 7 ({bad}/Dockerfile:4): its output is above (#3)\n------\n"
            f"ERROR: {bad}/Dockerfile:4: process \"RUN /bin/sh -c printf 'OUT-%s\\n' first-line && "
            "printf 'OUT-%s\\n' last-line >&2 && exit 7 # buildkit\" did not complete successfully: "
            "exit code: 7\n"), r.stderr[-2000:])

# --- json and quiet ---
r = kiln("build", "--root", ROOT, "--progress=json", "--build-arg", f"BASE={BASE}", ctx)
lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
parsed = []
for ln in lines:
    try:
        parsed.append(json.loads(ln))
    except ValueError:
        parsed.append(None)
T.check("--progress=json: every line of stderr is a JSON object", r.returncode == 0 and lines
        and all(isinstance(p, dict) for p in parsed), r.stderr[-2000:])
starts = [p for p in parsed if p and p.get("event") == "start"]
T.check("--progress=json: step starts carry the instruction's Dockerfile line",
        len(starts) == 7 and [p.get("line") for p in starts if "final-step" in p["text"]] == [8],
        starts)
T.check("--progress=json: the last line is the result with the digest",
        parsed and parsed[-1].get("event") == "result" and parsed[-1].get("status") == "succeeded"
        and parsed[-1].get("digest") == r.stdout.strip(), parsed[-1:])
json_digest = r.stdout.strip()
r = kiln("build", "--root", ROOT, "--progress=json", bad)
last = r.stderr.strip().splitlines()[-1:] or [""]
try:
    res = json.loads(last[0])
except ValueError:
    res = {}
T.check("--progress=json failure: every line parses, the last is the failed result with the error",
        r.returncode == 1 and all(json.loads(ln) is not None for ln in r.stderr.splitlines() if ln)
        and res.get("status") == "failed" and "exit code: 7" in res.get("error", ""), r.stderr[-2000:])
q = kiln("build", "--root", ROOT, "--progress=quiet", "--build-arg", f"BASE={BASE}", ctx)
T.check("--progress=quiet: nothing on stderr, the digest on stdout",
        q.returncode == 0 and q.stderr == "" and q.stdout.strip() == json_digest, q.stderr)
rc, _, rawp = on_tty("build", "--root", ROOT, "--progress=plain", "--build-arg", f"BASE={BASE}",
                     ctx)
T.check("--progress=plain on a terminal: the log lines, no cursor movement",
        rc == 0 and re.search(r"#\d+ \[a 1/2\] FROM", rawp) and "\x1b[" not in rawp, rawp[-2000:])
shutil.rmtree(ROOT, ignore_errors=True)
T.done()
