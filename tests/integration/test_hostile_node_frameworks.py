#!/usr/bin/env python3
"""Hostile Node framework configs: an output dir a framework's config points outside the app
dir (Astro's outDir, SvelteKit adapter-static's pages) is refused before any step, naming it;
nothing is written and the host marker (beside the source) is neither read nor written.
Moved from test_node_frameworks_ssr, which builds the same fixtures for real. A source that
ships the output dir itself (adapter-static's build/) as a link to the host marker's directory
builds: the site is what the build wrote, nothing of the host is in it and the host is
untouched."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import build, fixture, need_node_images  # noqa: E402
from kilnbuild import HostMarker  # noqa: E402
from kilntest import T  # noqa: E402

need_node_images()
HM = HostMarker(prefix="NODEFW-MARKER-")

for name, conf, opt, want in (
        ("astro-node", "astro.config.mjs", "export default { outDir: '../../../tmp', adapter: 1 };\n",
         "run file ../../../tmp leaves the app dir"),
        ("sveltekit-static", "vite.config.js", "export default { plugins: [sveltekit({ pages: '../..' })] };\n",
         "output dir \"../..\" must be a relative path inside the source")):
    src = fixture("frameworks", name, copy="-hostile")
    open(os.path.join(src, conf), "w").write(opt)
    dest = os.path.join(T.tmp, "hostile-" + name)
    args = ("--output", f"type=local,dest={dest}") if name == "sveltekit-static" else \
        ("--output", f"type=oci,dest={dest}")
    r = build(src, *args)
    T.check(f"hostile {name}: an output dir outside the source is refused naming it ({want})",
            r.returncode != 0 and want in r.stderr and "#1 [deps" not in r.stderr, r.stderr[-2000:])
    T.check(f"hostile {name}: nothing written, the host marker untouched",
            not os.path.exists(dest) and HM.untouched() and HM.mark not in r.stdout + r.stderr)
# the output dir shipped as a link to a host directory (adapter-static writes build/)
src = fixture("frameworks", "sveltekit-static", copy="-link")
os.symlink(HM.dir, os.path.join(src, "build"))
dest = os.path.join(T.tmp, "hostile-link-site")
r = build(src, "--progress", "plain", "--output", f"type=local,dest={dest}")
names = [n for _, dirs, fs in os.walk(dest) for n in dirs + fs]
index = os.path.join(dest, "index.html")
T.check("hostile sveltekit-static, build/ a link to a host dir: the site is the build's own",
        r.returncode == 0 and os.path.isfile(index)
        and "hello from kiln sveltekit-static" in open(index).read(), r.stderr[-2000:])
g = subprocess.run(["grep", "-rlsF", HM.mark, dest], capture_output=True, text=True)
T.check("hostile sveltekit-static, build/ a link to a host dir: no host file in the site",
        "secret" not in names and not g.stdout, str(sorted(names))[:1500] + g.stdout)
T.check("hostile sveltekit-static, build/ a link to a host dir: the host marker untouched",
        HM.untouched() and HM.mark not in r.stdout + r.stderr, str(HM.state()))
T.done()
