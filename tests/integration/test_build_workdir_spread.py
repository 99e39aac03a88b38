#!/usr/bin/env python3
"""A build's work dir (where its steps' upper and work dirs are made) carries ext4's
top-of-tree flag (`chattr +T`, engine/build.c spread_step_dirs) while the build runs, so the
overlay work dirs' inodes are spread over the block groups instead of the disk's busiest one;
on other filesystems the build runs without it."""
import glob
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilnbuild import make_base  # noqa: E402
from kilntest import KILN, T  # noqa: E402

root = os.path.join(T.tmp, "root")
base = make_base(root)
ctx = os.path.join(T.tmp, "ctx")
os.makedirs(ctx)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(f"FROM {base}\nRUN sleep 3\n")
fstype = subprocess.run(["stat", "-f", "-c", "%T", T.tmp], capture_output=True,
                        text=True).stdout.strip()
p = subprocess.Popen([KILN, "build", "--root", root, "--network", "none", "--no-cache",
                      "--progress", "quiet", ctx], stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
attrs = None
deadline = time.monotonic() + 30
while attrs is None and time.monotonic() < deadline and p.poll() is None:
    for d in glob.glob(os.path.join(root, "build", "tmp", "b-*")):
        if glob.glob(os.path.join(d, "upper-*")):
            r = subprocess.run(["lsattr", "-d", d], capture_output=True, text=True)
            if r.returncode == 0:
                attrs = r.stdout.split()[0]
    time.sleep(0.05)
err = p.communicate(timeout=60)[1]
T.check("the build with a RUN step succeeds", p.returncode == 0, err)
if fstype.startswith("ext"):
    T.check("its work dir has ext4's top-of-tree flag (T) while its steps run",
            attrs is not None and "T" in attrs, f"lsattr: {attrs}")
else:
    T.skip("its work dir has ext4's top-of-tree flag (T)", f"not ext2/3/4 ({fstype})")
T.done()
