#!/usr/bin/env python3
"""A step's init shares kiln's memory until it ends (sandbox/spawn.h: cloned with CLONE_VM
from a spawner thread, not a fork of kiln): a step can neither read that memory through
/proc/1 nor see kiln's descriptors, signal the init into running a handler or ending the
step early, see cgroups above its own, nor make the kernel's OOM killer take kiln with the
init (it kills every process sharing a victim's memory); kiln's environment is untouched
by the step's command (PATH search with the step's own PATH)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import build_none, make_base, step_out  # noqa: E402
from kilntest import T  # noqa: E402

root = os.path.join(T.tmp, "root")
base = make_base(root)


def build(ctx, dockerfile, *extra):
    return build_none(root, ctx, dockerfile, *extra)


df = f"""FROM {base}
RUN for f in maps mem environ; do cat /proc/1/$f >/dev/null 2>&1 && echo READ-$f || echo DENIED-$f; done; \\
    ls /proc/1/fd >/dev/null 2>&1 && echo READ-fd || echo DENIED-fd; \\
    echo "FDS $(ls /proc/self/fd | tr '\\n' ' ')"; cat /proc/self/cgroup | grep '^0::'
RUN for s in TERM INT HUP USR1 USR2 PIPE ALRM CHLD KILL; do kill -$s 1 2>/dev/null; done; \\
    sleep 0.2; echo STILL-RUNNING
RUN mkdir -p /opt/bin && printf '#!/bin/sh\\necho FOUND-IN-STEP-PATH\\n' > /opt/bin/only-here && \\
    chmod 755 /opt/bin/only-here
ENV PATH=/opt/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN only-here
RUN echo after
"""
r = build(os.path.join(T.tmp, "ctx1"), df)
T.check("a build whose steps probe their init succeeds", r.returncode == 0, r.stderr)
log = r.stderr
s2 = step_out(log, 2)
for f in ("maps", "mem", "environ", "fd"):
    T.check(f"a step cannot read /proc/1/{f} of its init (which shares kiln's memory)",
            f"DENIED-{f}" in s2 and f"READ-{f}" not in s2, s2)
fds = re.search(r"^FDS (.*)$", s2, re.M)
T.check("a step's process has only its stdin, stdout, stderr (and ls's own directory fd)",
        fds is not None and fds.group(1).split() == ["0", "1", "2", "3"], s2)
T.check("the step's cgroup namespace is rooted at its own cgroup",
        re.search(r"^0::/$", s2, re.M) is not None, s2)
s3 = step_out(log, 3)
T.check("signals sent to pid 1 neither end the step nor reach a handler of kiln's",
        "STILL-RUNNING" in s3, s3)
T.check("the command is looked up in the step's own PATH (ENV)", "FOUND-IN-STEP-PATH" in
        step_out(log, 6), log)
T.check("the steps after them run (kiln's own state is whole)", "after" in step_out(log, 7), log)

# Many small processes filling a small memory limit: without protection the OOM killer would
# pick the init (it counts kiln's memory as its own) and with it kill kiln.
df2 = f"""FROM {base}
RUN i=0; while [ $i -lt 300 ]; do (x=$(head -c 400000 /dev/zero | tr '\\0' a); sleep 30) & \\
    i=$((i+1)); done; wait
"""
r = build(os.path.join(T.tmp, "ctx2"), df2, "--memory", "48m", "--pids-limit", "2000")
T.check("an OOM inside a step fails the build with kiln's own error (kiln survives)",
        r.returncode != 0 and r.returncode < 128 and "did not complete successfully" in r.stderr,
        f"rc={r.returncode}\n{r.stderr[-2000:]}")
T.done()
