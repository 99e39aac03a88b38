#!/usr/bin/env python3
"""Hostile Python manifests, refused at plan time before any step runs, each naming the file,
the dependency and the path: path dependencies out of the source (Poetry `path`, uv sources,
PEP 508 file: URLs, requirements -e and -r), a pyproject.toml that is a link out of the
source, a huge one, a deeply nested one, uv workspace member patterns out of the source. A marker beside the source (a setup.py that would
write a file if run) is neither read nor written."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import T, kiln  # noqa: E402

ROOT = os.path.join(T.tmp, "root")


def build(src, *args, env=None):
    e = {"KILN_IMAGE_PREFIX": "oci:" + os.path.join(T.tmp, "no-images")}
    e.update(env or {})
    return kiln("build", "--root", ROOT, *args, src, env=e, timeout=300)


# A marker beside the source must be neither read nor written.
outside = os.path.join(T.tmp, "outside")
os.makedirs(outside)
marker = os.path.join(outside, "setup.py")
secret = "KILN-MARKER-" + os.urandom(6).hex()
open(marker, "w").write(f"# {secret}\nopen('/tmp/kiln-py-marker-written', 'w').write('x')\n")
before = os.stat(marker)


def hostile(name, files, want, env=None, args=()):
    t = os.path.join(T.tmp, "hostile-" + name)
    os.makedirs(t)
    for p, content in files.items():
        full = os.path.join(t, p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if isinstance(content, tuple):
            os.symlink(content[0], full)
        else:
            open(full, "w").write(content)
    r = build(t, *args, "--output", f"type=oci,dest={T.tmp}/h-{name}.oci", env=env)
    after = os.stat(marker)
    T.check(f"hostile {name}: fails with \"{want}\"", r.returncode != 0 and want in r.stderr, r.stderr[-1500:])
    T.check(f"hostile {name}: the marker outside is neither read nor written",
            secret not in r.stdout + r.stderr and after.st_mtime_ns == before.st_mtime_ns
            and not os.path.exists("/tmp/kiln-py-marker-written"))


rel = os.path.relpath(outside, os.path.join(T.tmp, "hostile-x"))
hostile("poetry-path", {"pyproject.toml": f'[tool.poetry]\nname = "x"\n[tool.poetry.dependencies]\n'
                                          f'python = "^3.10"\nlib = {{ path = "{rel}" }}\n',
                        "poetry.lock": "", "main.py": "print(1)\n"},
        f'pyproject.toml: dependency "lib" is the local path {rel}, outside the source')
hostile("uv-source-abs", {"pyproject.toml": f'[project]\nname = "x"\nversion = "1"\n[tool.uv.sources]\n'
                                            f'lib = {{ path = "{outside}" }}\n',
                          "uv.lock": "version = 1\n", "main.py": "print(1)\n"},
        f'dependency "lib" is the local path {outside}, outside the source')
hostile("file-url", {"pyproject.toml": f'[project]\nname = "x"\nversion = "1"\n'
                                       f'dependencies = ["lib @ file://{outside}"]\n', "main.py": "print(1)\n"},
        f'dependency "lib" is the local path {outside}, outside the source')
hostile("requirements-editable", {"requirements.txt": f"-e {rel}\n", "main.py": "print(1)\n"},
        f"requirements.txt: dependency \"{rel}\" is the local path {rel}, outside the source")
hostile("requirements-include", {"requirements.txt": f"-r {rel}/setup.py\n", "main.py": "print(1)\n"},
        "outside the source")
# a symlinked manifest is resolved inside the source: the marker is never read as pyproject.toml
hostile("symlink-pyproject", {"pyproject.toml": (marker,), "uv.lock": "version = 1\n", "main.py": "print(1)\n"},
        "uv.lock is there but pyproject.toml is not a file inside the source")
# a uv workspace whose member patterns leave the source: refused naming the pattern
for pat in (rel, rel + "/*", outside + "/*"):
    hostile("uv-workspace-" + str(len(pat)), {
        "pyproject.toml": f'[tool.uv.workspace]\nmembers = ["packages/*", "{pat}"]\n', "uv.lock": "version = 1\n",
        "packages/web/pyproject.toml": '[project]\nname = "web"\nversion = "1"\n', "packages/web/main.py": "print(1)\n"},
        f'pyproject.toml: workspace member "{pat}" is not a relative path inside the source',
        args=("--subdir", "packages/web"))
hostile("huge-pyproject", {"pyproject.toml": "# " + "x" * (5 * 1024 * 1024) + "\n", "main.py": "print(1)\n"},
        "file larger than 4194304 bytes")
hostile("deep-pyproject", {"pyproject.toml": "a = " + "[" * 100000 + "\n", "main.py": "print(1)\n"},
        "pyproject.toml line 1: arrays or inline tables nested too deep")
T.done()
