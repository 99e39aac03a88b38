#!/usr/bin/env python3
"""The --network none steps of one build reuse empty network namespaces (sandbox/netns): a
step that tries to reconfigure its loopback, leaves a listener, a process or a TIME_WAIT
connection behind, or writes a network sysctl, changes nothing the next step sees; two
steps running at once never share one; and a clean namespace is reused."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import build_none, make_base, step_out  # noqa: E402
from kilntest import T  # noqa: E402

root = os.path.join(T.tmp, "root")
base = make_base(root)
MARKER = os.path.join(T.tmp, "host-marker")
with open(MARKER, "w") as f:
    f.write("host\n")
MARKER_STAT = os.stat(MARKER)
BB = "/bin/busybox"


def build(ctx, dockerfile, *extra):
    return build_none(root, ctx, dockerfile, *extra)


# One build; each step's output is read from the plain progress log (#2 = the first RUN).
df = f"""FROM {base}
RUN echo "NS $(readlink /proc/self/ns/net)"
RUN echo "NS $(readlink /proc/self/ns/net)"
RUN {BB} ip link set lo down; {BB} ip addr add 10.9.9.9/32 dev lo; \\
    echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start; \\
    echo 1 > /proc/sys/net/ipv4/tcp_no_metrics_save; cat {MARKER}; echo x > {MARKER}; true
RUN {BB} ip addr show lo; cat /proc/sys/net/ipv4/ping_group_range
RUN ({BB} nc -l -p 7777 >/dev/null &); (sleep 1000 &); sleep 0.3; {BB} netstat -ltn
RUN {BB} nc 127.0.0.1 7777 </dev/null && echo OLD-LISTENER-"REACHED" || echo NO-OLD-"LISTENER"; \\
    {BB} ps | grep -c "sleep 100[0]" || true; {BB} netstat -ltn
RUN ({BB} nc -l -p 80 >/dev/null &); sleep 0.3; echo hi | {BB} nc 127.0.0.1 80; \\
    {BB} netstat -tn | grep -c TIME_WAIT
RUN echo "TW $({BB} netstat -tn | grep -c TIME_WAIT)"; {BB} netstat -tn
"""
r = build(os.path.join(T.tmp, "ctx1"), df)
T.check("a --network none build whose steps try to leave network state behind succeeds",
        r.returncode == 0, r.stderr)
log = r.stderr
ns = re.findall(r"^#[23] NS (net:\[\d+\])$", log, re.M)
T.check("two clean steps in a row run in the same (reused) network namespace",
        len(ns) == 2 and ns[0] == ns[1], log)
s4 = step_out(log, 4)
T.check("a step cannot take its loopback down (no capability over the namespace)",
        "ip: SIOCSIFFLAGS: Operation not permitted" in s4, s4)
T.check("a step cannot add an address to it", "RTNETLINK answers: Operation not permitted" in s4, s4)
T.check("a step cannot write the namespace's sysctls",
        "can't create /proc/sys/net/ipv4/ip_unprivileged_port_start: Read-only file system" in s4,
        s4)
T.check("the host marker is not there for the step to read or write",
        f"cat: can't open '{MARKER}': No such file or directory" in s4, s4)
s5 = step_out(log, 5)
T.check("the next step has loopback up with only 127.0.0.1 and ::1",
        "LOOPBACK,UP" in s5 and "inet 127.0.0.1/8" in s5 and "10.9.9.9" not in s5, s5)
T.check("ping sockets are open to every id of the step (0..65535 inside)", "0\t65535" in s5, s5)
s6, s7 = step_out(log, 6), step_out(log, 7)
T.check("a step's background listener is up while the step runs", ":7777" in s6, s6)
T.check("the next step finds no listener left by it (connection refused)",
        "NO-OLD-LISTENER" in s7 and "OLD-LISTENER-REACHED" not in s7 and ":7777" not in s7, s7)
T.check("no process of the last step is left in the next", re.search(r"^0$", s7, re.M), s7)
s8, s9 = step_out(log, 8), step_out(log, 9)
T.check("a step's closed connection is in TIME_WAIT when it ends", re.search(r"^[1-9]$", s8, re.M),
        s8)
T.check("the next step gets a namespace without it (TW 0)", "TW 0" in s9, s9)

# Steps of stages running at once never share a namespace: one listens while the other
# keeps trying to reach it (whether they overlap is up to the scheduler; they can never meet).
df = f"""FROM {base} AS a
RUN ({BB} nc -l -p 7100 >/dev/null &); for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.1; done; \\
    {BB} netstat -ltn | grep -c :7100
FROM {base} AS b
RUN for i in 1 2 3 4 5 6 7 8 9 10; do {BB} nc 127.0.0.1 7100 </dev/null && echo MET-OTHER-"STAGE"; \\
    sleep 0.1; done; true
FROM {base}
COPY --from=a /bin/sh /a
COPY --from=b /bin/sh /b
"""
r = build(os.path.join(T.tmp, "ctx2"), df)
T.check("a build with two stages using loopback at once succeeds", r.returncode == 0, r.stderr)
T.check("the stage that listened saw its own listener", re.search(r"^#\d+ 1$", r.stderr, re.M),
        r.stderr)
T.check("a step of one stage never reaches a listener of another stage's step",
        "MET-OTHER-STAGE" not in r.stderr, r.stderr)

# RUN --security=insecure (every capability) gets a namespace of its own: what it changes
# there is gone for the next step.
df = f"""FROM {base}
RUN --security=insecure {BB} ip addr add 10.9.9.9/32 dev lo && {BB} ip addr show lo
RUN {BB} ip addr show lo
"""
r = build(os.path.join(T.tmp, "ctx3"), df, "--allow", "security.insecure")
T.check("an insecure step may configure its own namespace", r.returncode == 0
        and "10.9.9.9" in step_out(r.stderr, 2), r.stderr)
T.check("the next step does not see what it configured",
        r.returncode == 0 and "inet 127.0.0.1/8" in step_out(r.stderr, 3)
        and "10.9.9.9" not in step_out(r.stderr, 3), r.stderr)

st = os.stat(MARKER)
with open(MARKER) as f:
    T.check("the host marker is unchanged", f.read() == "host\n" and st.st_mtime == MARKER_STAT.st_mtime
            and st.st_ctime == MARKER_STAT.st_ctime)
T.done()
