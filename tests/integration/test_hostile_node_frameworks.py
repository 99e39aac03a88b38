#!/usr/bin/env python3
"""Hostile Node framework configs: an output dir a framework's config points outside the app
dir (Astro's outDir, SvelteKit adapter-static's pages) is refused before any step, naming it;
nothing is written and the host marker (beside the source) is neither read nor written.
Moved from test_node_frameworks_ssr, which builds the same fixtures for real."""
import os
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
T.done()
