#!/usr/bin/env python3
"""Python auto-builds with each project's own tool, against PyPI: a Flask app locked with
uv, a Django project installed by pip (collectstatic at build, gunicorn added) and a FastAPI
app locked with poetry (uvicorn), whose images answer HTTP over loopback; pdm and pipenv projects; a PEP 621
package built into a wheel and packaged as a Lambda zip (contents, function.json, the
handler imported and called). Each run image holds a venv with the runtime dependencies
only: no dev dependency, no compiler, no pip/uv/poetry cache. A version the machines
cannot provide fails before any step with the message naming it (hostile manifests:
test_hostile_python.py)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import answer, build, ensure_images, layout_files as files, run_http  # noqa: E402
from kilntest import SRC, T, kiln  # noqa: E402

FIX = os.path.join(SRC, "tests", "fixtures", "python")
SITE = "opt/venv/lib/python3.11/site-packages"
COMPILERS = ("usr/bin/gcc", "usr/bin/g++", "usr/bin/cc", "usr/bin/c++", "usr/bin/make", "usr/bin/ld",
             "usr/bin/x86_64-linux-gnu-gcc-12")


def fixture(name, copy=None):
    dst = os.path.join(T.tmp, copy or name)
    shutil.copytree(os.path.join(FIX, name), dst)
    return dst


def top_packages(have):
    return {p.split("/")[5] for p in have if p.startswith(SITE + "/") and p.count("/") >= 5}


def check_run_image(name, have, want, dev):
    pk = top_packages(have)
    T.check(f"{name}: the venv holds {', '.join(want)}", all(w in pk for w in want), sorted(pk))
    T.check(f"{name}: the venv holds no dev dependency ({dev})", dev not in pk, sorted(pk))
    found = [p for p in COMPILERS if p in have]
    T.check(f"{name}: the run image has no compiler or make", not found, found)
    caches = sorted(p for p in have if "/.cache/" in p + "/" and p.split("/")[0] in ("root", "app", "opt", "tmp"))
    T.check(f"{name}: no pip/uv/poetry/pdm/pipenv cache in the run image", not caches, caches[:10])
    T.check(f"{name}: no kiln tool in the run image", not any(p.startswith("opt/kiln-tools") for p in have))
    tools = build_tools([p[len(SITE) + 1:] for p in have if p.startswith(SITE + "/")]
                        + [p for p in have if p.startswith("app/")])
    T.check(f"{name}: no pip, setuptools or wheel in the venv, no build/ or egg-info in app/", not tools, tools[:10])


def build_tools(names):
    """The names (site-packages or zip paths) that are a build tool or what a build left: pip,
    setuptools, wheel and their dist-info, setuptools' import hooks, build/ and *.egg-info."""
    tops = ("pip", "setuptools", "wheel", "_distutils_hack", "pkg_resources", "distutils-precedence.pth",
            "build", "app/build")
    return sorted(n for n in names if n.split("/")[0] in tops or "/".join(n.split("/")[:2]) in tops
                  or re.match(r"(pip|setuptools|wheel)-[^/]*\.dist-info(/|$)", n) or ".egg-info" in n)


ok, log = ensure_images("python-build", "python-run")
if not T.check("kiln's python images are built (images/build.sh)", ok, log[-3000:]):
    T.done()

# uv + Flask: gunicorn serves the app; the dev group stays out of the image.
src = fixture("uv-flask")
r = kiln("plan", src)
plan = json.loads(r.stdout) if r.returncode == 0 else {}
T.check("uv-flask: the plan picks uv, flask and gunicorn, with a reason each",
        plan.get("packageManager") == "uv" and plan.get("framework") == "flask"
        and plan.get("commands", {}).get("start") == "/opt/venv/bin/gunicorn --bind 0.0.0.0:$PORT app:app"
        and all(plan.get("why", {}).get(k) for k in ("packageManager", "framework", "start", "version", "port")),
        r.stdout + r.stderr)
out = os.path.join(T.tmp, "uv-flask.oci")
r = build(src, "-t", "uvflask:latest", "--output", f"type=oci,dest={out}")
if T.check("uv-flask: the auto build succeeds", r.returncode == 0, r.stderr[-3000:]):
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = repr(e)
    T.check("uv-flask: the image answers over loopback (Flask under gunicorn, Python 3.11, no dev deps)",
            body.startswith("hello from uv-flask") and "python 3.11" in body and "no dev deps" in body, body)
    check_run_image("uv-flask", files(out), ("flask", "gunicorn", "werkzeug"), "iniconfig")
    # the cache mount of uv was used: a second build with a changed app reuses the deps layer
    with open(os.path.join(src, "app.py"), "a") as f:
        f.write("\n# changed\n")
    r = build(src, "--progress", "plain", "-t", "uvflask:latest", "--output", f"type=oci,dest={out}")
    T.check("uv-flask: an app change leaves the uv install step cached",
            r.returncode == 0 and "uv sync --locked" in r.stderr
            and r.stderr.split("uv sync --locked", 1)[1].split("\n", 2)[1].endswith(" CACHED"),
            r.stderr[-2000:])

# Django with pip: collectstatic at build (STATIC_ROOT), gunicorn added by kiln (not listed),
# started on the project's wsgi module; migrate is never run.
src = fixture("django-pip")
out = os.path.join(T.tmp, "django.oci")
r = build(src, "--progress", "plain", "-t", "django:latest", "--output", f"type=oci,dest={out}")
if T.check("django-pip: the auto build succeeds", r.returncode == 0, r.stderr[-3000:]):
    T.check("django-pip: collectstatic ran at build, migrate did not",
            "collectstatic --noinput" in r.stderr and "migrate" not in r.stderr.replace("manage.py migrate` as", ""),
            r.stderr[-2000:])
    try:
        body = run_http(out, "latest")
    except Exception as e:  # noqa: BLE001
        body = repr(e)
    T.check("django-pip: gunicorn mysite.wsgi answers over loopback with the collected static file",
            body == "hello from django 5.2.19, static collected: True\n", body)
    have = files(out)
    T.check("django-pip: the run image holds the collected static files and the added gunicorn",
            "app/staticfiles/hello/hello.txt" in have and "gunicorn" in top_packages(have), sorted(top_packages(have)))

# poetry, pdm, pipenv: each tool installs its lock's main group into the venv.
# poetry-app is a FastAPI app: uvicorn serves it.
for name, tool in (("poetry-app", "poetry"), ("pdm-app", "pdm"), ("pipenv-app", "pipenv")):
    src = fixture(name)
    out = os.path.join(T.tmp, name + ".oci")
    r = build(src, "-t", f"{name}:latest", "--output", f"type=oci,dest={out}")
    if T.check(f"{name}: the auto build with {tool} succeeds", r.returncode == 0, r.stderr[-3000:]):
        check_run_image(name, files(out), ("idna",), "iniconfig")
        if name == "poetry-app":
            try:
                body = run_http(out, "latest")
            except Exception as e:  # noqa: BLE001
                body = repr(e)
            T.check("poetry-app: FastAPI under uvicorn answers over loopback, without the dev group",
                    body == "fastapi idna kiln.example no-dev\n", body)

# A PEP 621 package as a Lambda zip: its wheel built in the build stage, site-packages and the
# handler at the zip's root, function.json naming handler, runtime and the zip's sha256.
src = fixture("pip-function")
dest = os.path.join(T.tmp, "fn")
r = build(src, "--output", f"type=function,dest={dest}/function.zip")
if T.check("pip-function: the function build succeeds", r.returncode == 0, r.stderr[-3000:]):
    meta = json.load(open(os.path.join(dest, "function.json")))
    data = open(os.path.join(dest, "function.zip"), "rb").read()
    T.check("pip-function: function.json names the handler, python3.11 and the zip's sha256",
            meta.get("handler") == "lambda_function.lambda_handler" and meta.get("runtime") == "python3.11"
            and meta.get("sha256") == hashlib.sha256(data).hexdigest() and meta.get("size") == len(data), meta)
    z = zipfile.ZipFile(os.path.join(dest, "function.zip"))
    names = set(z.namelist())
    T.check("pip-function: the handler, the package and its dependency are at the zip's root",
            {"lambda_function.py", "greet/__init__.py", "idna/__init__.py"} <= names, sorted(names)[:40])
    T.check("pip-function: no venv paths, dev extras or caches in the zip",
            not any(n.startswith(("opt/", "bin/", "root/", "iniconfig")) or "/.cache/" in n for n in names),
            sorted(n for n in names if n.startswith(("opt/", "bin/", "root/", "iniconfig"))))
    T.check("pip-function: no pip, setuptools, wheel or their hooks, no build/ or egg-info in the zip",
            not build_tools(names), build_tools(names)[:20])
    ex = os.path.join(T.tmp, "fn-unzipped")
    z.extractall(ex)
    r2 = subprocess.run([sys.executable, "-I", "-c",
                         "import sys; sys.path.insert(0, '.'); import lambda_function; "
                         "print(lambda_function.lambda_handler({'name': 'kiln.example'}, None))"],
                        cwd=ex, capture_output=True, text=True, timeout=60)
    T.check("pip-function: the unzipped package imports and its handler answers",
            r2.returncode == 0 and "'body': 'hello kiln.example'" in r2.stdout, r2.stdout + r2.stderr)

# A uv workspace built with --subdir of its member: the root is the context, uv installs the
# member's locked dependencies and the workspace package it uses (greeting), not the other one.
src = fixture("uv-workspace")
r = kiln("plan", "--subdir", "packages/web", src)
plan = json.loads(r.stdout) if r.returncode == 0 else {}
T.check("uv-workspace: the plan installs the member from the root's uv.lock with all member manifests",
        plan.get("packageManager") == "uv" and "--package web --no-install-workspace" in plan["commands"]["install"]
        and plan.get("manifests", [])[:2] == ["uv.lock", "pyproject.toml"]
        and "packages/greeting/pyproject.toml" in plan.get("manifests", [])
        and plan["commands"]["start"].startswith("cd packages/web && ")
        and "uv workspace: the context is the repository root; packages/web (package web) is the app"
        in plan.get("notes", []), r.stdout + r.stderr)
out = os.path.join(T.tmp, "uv-workspace.oci")
r = build(src, "--subdir", "packages/web", "-t", "uvws:latest", "--output", f"type=oci,dest={out}")
if T.check("uv-workspace: the --subdir build of the member succeeds", r.returncode == 0, r.stderr[-3000:]):
    body = answer(out)
    T.check("uv-workspace: the member answers over loopback with the workspace package's text",
            body == "uv workspace ok\n", body)
    have = files(out)
    pk = top_packages(have)
    T.check("uv-workspace: the venv holds flask and the workspace package, not the other member or its deps",
            {"flask", "greeting"} <= pk and "other" not in pk and "idna" not in pk, sorted(pk))
    check_run_image("uv-workspace", have, ("flask", "gunicorn"), "iniconfig")

# A version these machines cannot provide: named before any step runs.
src = fixture("uv-flask", "uv-flask-312")
with open(os.path.join(src, "pyproject.toml")) as f:
    text = f.read().replace('requires-python = ">=3.10"', 'requires-python = ">=3.12"')
open(os.path.join(src, "pyproject.toml"), "w").write(text)
r = build(src, "--progress", "plain", "--output", f"type=oci,dest={T.tmp}/never.oci")
T.check("requires-python >=3.12: the build fails naming the constraint, 3.11 and what would provide it",
        r.returncode != 0 and 'pyproject.toml requires-python ">=3.12" excludes Python 3.11.2' in r.stderr
        and "would come from a python:3.14" in r.stderr and "kiln does not download interpreters" in r.stderr,
        r.stderr[-2000:])
T.check("requires-python >=3.12: no step ran", "#1 " not in r.stderr and not os.path.exists(f"{T.tmp}/never.oci"),
        r.stderr[-2000:])

# A path dependency inside the source that is a link out of it: the plan accepts the path, the
# engine resolves it inside the context (not found), and the marker outside is never read.
src = os.path.join(T.tmp, "link-dep")
outside = os.path.join(T.tmp, "link-dep-outside")
os.makedirs(os.path.join(src, "vendor"))
os.makedirs(outside)
secret = "KILN-MARKER-" + os.urandom(6).hex()
open(os.path.join(outside, "setup.py"), "w").write(f"# {secret}\n")
os.symlink(outside, os.path.join(src, "vendor", "lib"))
open(os.path.join(src, "pyproject.toml"), "w").write(
    '[tool.poetry]\nname = "x"\npackage-mode = false\n[tool.poetry.dependencies]\n'
    'python = "^3.10"\nlib = { path = "vendor/lib" }\n')
open(os.path.join(src, "poetry.lock"), "w").write("")
open(os.path.join(src, "main.py"), "w").write("print(1)\n")
r = build(src, "--progress", "plain", "--output", f"type=oci,dest={T.tmp}/link-dep.oci")
T.check("hostile link-dep: the link out of the source is not followed (COPY finds nothing)",
        r.returncode != 0 and '"/vendor/lib/": not found' in r.stderr and secret not in r.stdout + r.stderr,
        r.stderr[-1500:])
T.done()
