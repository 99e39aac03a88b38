/* kiln — the Python provider: the project's own tool and lockfile (uv.lock → uv,
 * poetry.lock → poetry, pdm.lock → pdm, Pipfile(.lock) → pipenv, requirements*.txt /
 * pyproject.toml / setup.py → pip) installing the runtime dependencies only into a venv at
 * /opt/venv (the run image gets that venv and the app, no compiler and no cache); the
 * Python version checked against Debian 12's CPython 3.11; the web app and its start
 * command from python_app.c; a Lambda package of the venv's site-packages and the app. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "handlers/kiln_json.h"
#include "handlers/pyproject.h"
#include "handlers/pyspec.h"
#include "handlers/python_app.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Debian 12's python3, the interpreter of kiln's python-build and python-run images. */
#define DEBIAN_PYTHON "3.11"
#define DEBIAN_PYTHON_FULL "3.11.2"
#define VENV "/opt/venv"
#define MKVENV "python3 -m venv " VENV
/* The last part of every build step: what the run image and a function zip must not carry.
 * The files pip, setuptools and wheel installed (the venv's own, and whatever a build
 * backend pulled in) leave the venv unless an installed distribution requires them (outside
 * an extra): each file of their RECORD that resolves inside the venv (never a directory
 * whole: a RECORD is the package's word, not kiln's), then the directories left empty;
 * build/ and *.egg-info that the build made in the app dir go ($KILN_PRE lists those the
 * source had). */
#define PRUNE_PRE "KILN_PRE=\"$(ls -d build *.egg-info 2>/dev/null)\"; "
#define PRUNE                                                                                      \
    VENV "/bin/python -c 'import importlib.metadata as m, os, re, shutil, sys; "                   \
         "pre = set(sys.argv[1].split()); "                                                        \
         "[shutil.rmtree(n) for n in os.listdir(\".\") if (n == \"build\" or "                     \
         "n.endswith(\".egg-info\")) and n not in pre and os.path.isdir(n)]; "                     \
         "ds = list(m.distributions()); "                                                          \
         "need = {re.split(\"[^A-Za-z0-9._-]\", r, 1)[0].lower().replace(\"_\", \"-\") "           \
         "for d in ds for r in d.requires or [] if \"extra\" not in r.partition(\";\")[2]}; "      \
         "fs = [p for p in (os.path.realpath(d.locate_file(f)) for d in ds if "                    \
         "(d.metadata[\"Name\"] or \"\").lower() in {\"pip\", \"setuptools\", \"wheel\"} - need "  \
         "for f in d.files or []) if p.startswith(sys.prefix + os.sep)]; "                         \
         "[os.unlink(p) for p in fs if os.path.isfile(p) or os.path.islink(p)]; "                  \
         "dirs = sorted({os.path.dirname(p) for p in fs}, key=len, reverse=True); "                \
         "[shutil.rmtree(os.path.join(d, \"__pycache__\"), ignore_errors=True) for d in dirs]; "   \
         "[os.rmdir(d) for d in dirs if os.path.isdir(d) and not os.listdir(d)]' "                 \
         "\"$KILN_PRE\""
#define SITE_PACKAGES VENV "/lib/python" DEBIAN_PYTHON "/site-packages"
/* the project's own wheel, built in the build stage and installed without its deps */
#define PIP_SELF VENV "/bin/pip install --no-deps ."
/* the uv commands install into the venv kiln copies, not the project's .venv */
#define UV_SYNC "UV_PROJECT_ENVIRONMENT=" VENV " uv sync --locked --no-dev --no-editable"

/* The requirements files tried, in order (runtime ones before a bare requirements.txt
 * only when the bare one is missing). */
static const char *const req_files[] = {
    "requirements.txt",      "requirements/production.txt", "requirements/prod.txt",
    "requirements-prod.txt", "requirements/base.txt",       "requirements/main.txt",
};

typedef enum pm { PM_NONE, PM_UV, PM_POETRY, PM_PDM, PM_PIPENV, PM_PIP_REQ, PM_PIP } pm_t;

typedef struct pyctx {
    const kiln_detect_ctx_t *ctx;
    kiln_pyproject_t pp; /* what the manifests say */
    pm_t pm;
    const char *lock;     /* the file that chose the tool */
    const char *req_file; /* PM_PIP_REQ: the requirements file */
    const char *deps_file;
    bool pyproject, setup_py;
} pyctx_t;

/* Reads a manifest into pp (pyproject.toml, Pipfile or a requirements file). */
static int read_manifest(pyctx_t *c, const char *file, int kind, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    int r = kiln_tree_read(c->ctx->tree, file, &text, err);

    if (r <= 0)
        return r;
    if (kind == 0)
        r = kiln_pyproject_read(&c->pp, file, text, strlen(text), err);
    else if (kind == 1)
        r = kiln_pyproject_read_pipfile(&c->pp, file, text, strlen(text), err);
    else
        r = kiln_pyproject_read_requirements(&c->pp, file, text, err);
    return r < 0 ? -1 : 1;
}

/* The tool: the lockfile decides, then the manifests. */
static int choose_tool(pyctx_t *c, kiln_error_t *err)
{
    const kiln_tree_t *t = c->ctx->tree;
    static const struct {
        const char *lock;
        pm_t pm;
    } locks[] = {{"uv.lock", PM_UV},
                 {"poetry.lock", PM_POETRY},
                 {"pdm.lock", PM_PDM},
                 {"Pipfile.lock", PM_PIPENV}};

    c->pyproject = kiln_tree_is_file(t, "pyproject.toml");
    c->setup_py = kiln_tree_is_file(t, "setup.py");
    if (c->pyproject && read_manifest(c, "pyproject.toml", 0, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]) && c->pm == PM_NONE; i++)
        if (kiln_tree_is_file(t, locks[i].lock)) {
            c->pm = locks[i].pm;
            c->lock = locks[i].lock;
        }
    if (c->pm == PM_NONE && kiln_tree_is_file(t, "Pipfile")) {
        c->pm = PM_PIPENV;
        c->lock = "Pipfile";
    }
    for (size_t i = 0; i < sizeof(req_files) / sizeof(req_files[0]) && c->pm == PM_NONE; i++)
        if (kiln_tree_is_file(t, req_files[i])) {
            c->pm = PM_PIP_REQ;
            c->lock = c->req_file = req_files[i];
        }
    if (c->pm == PM_NONE && c->pyproject && c->pp.poetry) {
        c->pm = PM_POETRY;
        c->lock = "pyproject.toml";
    }
    if (c->pm == PM_NONE && (c->pyproject || c->setup_py)) {
        c->pm = PM_PIP;
        c->lock = c->pyproject ? "pyproject.toml" : "setup.py";
    }
    if ((c->pm == PM_UV || c->pm == PM_POETRY || c->pm == PM_PDM) && !c->pyproject)
        return kiln_error_set(err, 0,
                              "%s is there but pyproject.toml is not a file inside the source "
                              "(%s needs both; a link out of the source is not followed)",
                              c->lock,
                              c->pm == PM_UV    ? "uv"
                              : c->pm == PM_PDM ? "pdm"
                                                : "poetry");
    if (c->pm == PM_PIPENV && read_manifest(c, "Pipfile", 1, err) < 0)
        return -1;
    if (c->pm == PM_PIP_REQ && read_manifest(c, c->req_file, 2, err) < 0)
        return -1;
    c->deps_file = c->pm == PM_PIPENV ? "Pipfile" : c->req_file ? c->req_file : "pyproject.toml";
    return 0;
}

/* The first line of a version file that is not a comment ("3.11", "cpython-3.12.1",
 * "python-3.11.4", "pypy3.10"), NUL-terminated in place. */
static char *version_line(char *text)
{
    for (char *l = text; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = '\0';
        while (isspace((unsigned char)*l))
            l++;
        for (size_t n = strlen(l); n > 0 && isspace((unsigned char)l[n - 1]); n--)
            l[n - 1] = '\0';
        if (*l && *l != '#')
            return l;
        l = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* asdf / mise's .tool-versions: the first version of its "python" line (NUL-terminated in
 * place), or NULL. */
static char *tool_versions_python(char *text)
{
    for (char *l = text; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = '\0';
        while (*l == ' ' || *l == '\t')
            l++;
        if (strncmp(l, "python", 6) == 0 && (l[6] == ' ' || l[6] == '\t')) {
            char *v = l + 6;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, " \t\r#")] = '\0';
            return *v ? v : NULL;
        }
        l = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* The newest CPython minor (3.10-3.14) a constraint allows, for the message. */
static const char *allowed_minor(const char *spec)
{
    static const char *const minors[] = {"3.14", "3.13", "3.12", "3.10", "3.9", "3.8"};
    static const char *const full[] = {"3.14.0", "3.13.0", "3.12.0", "3.10.0", "3.9.0", "3.8.0"};
    for (size_t i = 0; i < sizeof(minors) / sizeof(minors[0]); i++)
        if (kiln_pyspec_allows(spec, full[i], NULL) == 1)
            return minors[i];
    return NULL;
}

/* Version: a pin (KILN_PYTHON_VERSION, kiln.json pythonVersion, .python-version,
 * runtime.txt, .tool-versions) must name 3.11; a constraint (requires-python, Poetry's python,
 * Pipfile [requires]) must allow 3.11.2. Anything else is an error naming where it came from and
 * what would provide it: no other interpreter is used in its place. */
static int plan_version(pyctx_t *c, kiln_plan_t *plan, kiln_error_t *err)
{
    const kiln_detect_ctx_t *ctx = c->ctx;
    _cleanup_free_ char *text = NULL;
    const char *spec = NULL, *src = NULL;
    int r;

    if ((spec = kiln_detect_getenv(ctx, "KILN_PYTHON_VERSION")) != NULL && spec[0]) {
        src = "KILN_PYTHON_VERSION";
    } else if (ctx->overrides && ctx->overrides->python_version) {
        spec = ctx->overrides->python_version;
        src = "kiln.json pythonVersion";
    } else {
        static const char *const files[] = {".python-version", "runtime.txt", ".tool-versions"};
        spec = NULL;
        for (size_t i = 0; i < 3 && spec == NULL; i++) {
            free(text);
            text = NULL;
            r = kiln_tree_read(ctx->tree, files[i], &text, err);
            if (r < 0)
                return -1;
            if (r > 0 && i == 2)
                spec = tool_versions_python(text);
            else if (r > 0)
                spec = version_line(text);
            if (spec != NULL)
                src = files[i];
        }
    }
    kiln_plan_set(&plan->language, "python");
    kiln_plan_set(&plan->version, DEBIAN_PYTHON);
    if (spec != NULL) {
        const char *v = spec;
        char *end;
        long major, minor = -1;
        if (strncmp(v, "python-", 7) == 0)
            v += 7;
        else if (strncmp(v, "cpython-", 8) == 0)
            v += 8;
        else if (strncmp(v, "cpython", 7) == 0 || strncmp(v, "python", 6) == 0)
            v += v[1] == 'p' ? 7 : 6;
        if (strncmp(v, "pypy", 4) == 0)
            return kiln_error_set(err, 0,
                                  "%s asks for PyPy (\"%.32s\") but these build machines have "
                                  "only Debian 12's CPython %s: PyPy would come from a pypy "
                                  "base image (a Dockerfile FROM pypy:3); kiln does not "
                                  "download interpreters",
                                  src, spec, DEBIAN_PYTHON_FULL);
        major = strtol(v, &end, 10);
        if (end == v)
            return kiln_error_set(err, 0, "%s: cannot read a Python version from \"%.64s\"", src,
                                  spec);
        if (*end == '.')
            minor = strtol(end + 1, &end, 10);
        if (major != 3 || minor != 11)
            return kiln_error_set(
                err, 0,
                "%s asks for Python %ld%s%.0ld but these build machines have only Debian 12's "
                "CPython %s (python3 %s): CPython %ld%s%.0ld would come from a python:%ld%s%.0ld "
                "base image (a Dockerfile FROM python:%ld%s%.0ld-slim) or a Debian release "
                "that ships it; kiln does not download interpreters. Set "
                "KILN_PYTHON_VERSION=%s (or kiln.json \"pythonVersion\") to build it with "
                "%s anyway",
                src, major, minor >= 0 ? "." : "", minor >= 0 ? minor : 0, DEBIAN_PYTHON,
                DEBIAN_PYTHON_FULL, major, minor >= 0 ? "." : "", minor >= 0 ? minor : 0, major,
                minor >= 0 ? "." : "", minor >= 0 ? minor : 0, major, minor >= 0 ? "." : "",
                minor >= 0 ? minor : 0, DEBIAN_PYTHON, DEBIAN_PYTHON);
        kiln_plan_set(&plan->version_source, src);
        kiln_plan_why(plan, KILN_WHY_VERSION, "%s names %s: Debian 12's CPython %s (python3 %s)",
                      src, spec, DEBIAN_PYTHON, DEBIAN_PYTHON_FULL);
    }
    if (c->pp.requires_python != NULL) {
        r = kiln_pyspec_allows(c->pp.requires_python, DEBIAN_PYTHON_FULL, err);
        if (r < 0)
            return kiln_error_prefix(err, "%s", c->pp.python_source);
        if (r == 0 && src == NULL) {
            const char *other = allowed_minor(c->pp.requires_python);
            return kiln_error_set(
                err, 0,
                "%s \"%.128s\" excludes Python %s, the only CPython these build machines have "
                "(Debian 12's python3): %s%s%s%s; kiln does not download interpreters. Widen the "
                "constraint to include %s, or set KILN_PYTHON_VERSION=%s to try anyway",
                c->pp.python_source, c->pp.requires_python, DEBIAN_PYTHON_FULL,
                other ? "CPython " : "no CPython from 3.8 to 3.14 satisfies it", other ? other : "",
                other ? " would come from a python:" : "", other ? other : "", DEBIAN_PYTHON,
                DEBIAN_PYTHON);
        }
        if (src == NULL) {
            kiln_plan_set(&plan->version_source, c->pp.python_source);
            kiln_plan_why(plan, KILN_WHY_VERSION,
                          "%s \"%s\" allows Debian 12's CPython %s (python3 %s), the "
                          "interpreter of kiln's python images",
                          c->pp.python_source, c->pp.requires_python, DEBIAN_PYTHON,
                          DEBIAN_PYTHON_FULL);
        }
    }
    if (plan->version_source == NULL) {
        kiln_plan_set(&plan->version_source, "default");
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "nothing in the source names a version: Debian 12's CPython %s (python3 "
                      "%s), the interpreter of kiln's python images",
                      DEBIAN_PYTHON, DEBIAN_PYTHON_FULL);
    }
    return 0;
}

/* Manifests: the lockfile and manifest of the tool, and the local path dependencies (the
 * install step needs them; they are inside the source: pyproject.c checked). */
static int plan_manifests(pyctx_t *c, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *files[4] = {0};
    size_t n = 0;

    switch (c->pm) {
    case PM_UV:
        files[n++] = "pyproject.toml";
        files[n++] = "uv.lock";
        break;
    case PM_POETRY:
        files[n++] = "pyproject.toml";
        if (kiln_tree_is_file(c->ctx->tree, "poetry.lock"))
            files[n++] = "poetry.lock";
        if (kiln_tree_is_file(c->ctx->tree, "poetry.toml"))
            files[n++] = "poetry.toml";
        break;
    case PM_PDM:
        files[n++] = "pyproject.toml";
        files[n++] = "pdm.lock";
        break;
    case PM_PIPENV:
        files[n++] = "Pipfile";
        if (kiln_tree_is_file(c->ctx->tree, "Pipfile.lock"))
            files[n++] = "Pipfile.lock";
        break;
    case PM_PIP_REQ:
        files[n++] = c->req_file;
        break;
    case PM_PIP:
        if (c->pyproject)
            files[n++] = "pyproject.toml";
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n; i++)
        if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", files[i]) < 0)
            return -1;
    for (size_t i = 0; i < c->pp.n_paths; i++)
        if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", c->pp.paths[i]) < 0)
            return -1;
    return 0;
}

/* The install (deps stage: manifests only) and build (the whole source) commands and the
 * tool's cache. Dev dependencies are never installed. */
static int plan_commands(pyctx_t *c, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *install = NULL, *build = NULL, *cache = NULL, *cache_dir = NULL;
    const char *why = NULL;
    bool package = c->pp.package || c->setup_py;
    _cleanup_free_ char *owned = NULL;

    switch (c->pm) {
    case PM_UV:
        kiln_plan_set(&plan->package_manager, "uv");
        install = UV_SYNC " --no-install-project";
        build = package ? UV_SYNC : NULL;
        cache = "uv", cache_dir = "/root/.cache/uv";
        why = "uv.lock is there: uv installs exactly the locked versions (--locked fails when "
              "the lock is out of date), without the dev group (--no-dev)";
        break;
    case PM_POETRY:
        kiln_plan_set(&plan->package_manager, "poetry");
        install = MKVENV " && poetry install --only main --no-root --no-interaction";
        build = package ? PIP_SELF : NULL;
        cache = "poetry", cache_dir = "/root/.cache/pypoetry";
        why = strcmp(c->lock, "poetry.lock") == 0
                  ? "poetry.lock is there: poetry installs the locked main group only "
                    "(--only main: no dev groups) into the venv"
                  : "pyproject.toml has [tool.poetry] but no poetry.lock: poetry resolves the "
                    "main group at build time (commit poetry.lock for repeatable builds)";
        break;
    case PM_PDM:
        kiln_plan_set(&plan->package_manager, "pdm");
        install = MKVENV " && pdm use --ignore-remembered -f " VENV
                         " >/dev/null && pdm sync --prod --no-self --no-editable";
        build = package ? PIP_SELF : NULL;
        cache = "pdm", cache_dir = "/root/.cache/pdm";
        why = "pdm.lock is there: pdm installs the locked production dependencies (--prod: no "
              "dev groups) into the venv";
        break;
    case PM_PIPENV:
        kiln_plan_set(&plan->package_manager, "pipenv");
        install = strcmp(c->lock, "Pipfile.lock") == 0 ? MKVENV " && pipenv install --deploy"
                                                       : MKVENV " && pipenv install --skip-lock";
        cache = "pipenv", cache_dir = "/root/.cache/pipenv";
        why = strcmp(c->lock, "Pipfile.lock") == 0
                  ? "Pipfile.lock is there: pipenv installs the locked [packages] (not "
                    "[dev-packages]); --deploy fails when the lock is out of date"
                  : "a Pipfile without Pipfile.lock: pipenv installs [packages] unlocked "
                    "(commit Pipfile.lock for repeatable builds)";
        break;
    case PM_PIP_REQ:
        kiln_plan_set(&plan->package_manager, "pip");
        owned = kiln_xasprintf(MKVENV " && " VENV "/bin/pip install -r %s", c->req_file);
        if (c->pp.self_ref) {
            /* the file installs the project itself: it needs the whole source */
            install = MKVENV;
            build = owned + strlen(MKVENV " && ");
        } else {
            install = owned;
        }
        why = c->pp.self_ref ? "the requirements file installs the project itself (\"-e .\" "
                               "or \".\"), so pip runs after the source is copied"
                             : "a requirements file and no lockfile of another tool: pip "
                               "installs it into the venv";
        break;
    case PM_PIP:
        kiln_plan_set(&plan->package_manager, "pip");
        if (c->pyproject && c->pp.n_deps > 0)
            /* the [project] dependencies alone, so that they are cached until
             * pyproject.toml changes (read by Python's own tomllib) */
            install = MKVENV " && " VENV "/bin/python -c 'import tomllib; print(\"\\n\".join("
                             "tomllib.load(open(\"pyproject.toml\", \"rb\")).get(\"project\", "
                             "{}).get(\"dependencies\", [])))' >/tmp/kiln-requirements.txt && " VENV
                             "/bin/pip install -r /tmp/kiln-requirements.txt";
        else
            install = MKVENV;
        build = package ? VENV "/bin/pip install ." : NULL;
        why = package ? "pyproject.toml / setup.py make the project a package: pip builds its "
                        "wheel in the build stage and installs it with its dependencies"
                      : "pyproject.toml lists [project] dependencies (no lockfile): pip "
                        "installs them";
        break;
    default:
        break;
    }
    kiln_plan_set(&plan->install, install);
    if (build && plan->build == NULL)
        kiln_plan_set(&plan->build, build);
    else if (build) {
        /* Django's collectstatic runs after the project is installed */
        char *both = kiln_xasprintf("%s && %s", build, plan->build);
        free(plan->build);
        plan->build = both;
    }
    kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "%s", why);
    kiln_plan_why(plan, KILN_WHY_INSTALL,
                  "%s into " VENV " from %s only (cached until it changes); the run image gets "
                  "the venv without compilers or caches",
                  plan->package_manager, c->lock);
    if (build && package)
        kiln_plan_why(plan, KILN_WHY_BUILD,
                      "the project is a package ([build-system] or setup.py): its wheel is built "
                      "in the build stage and installed into the venv%s",
                      strstr(plan->build, "collectstatic") ? ", then collectstatic" : "");
    if (cache && kiln_plan_add_cache(plan, cache, cache_dir, err) < 0)
        return -1;
    return kiln_plan_add_cache(plan, "pip", "/root/.cache/pip", err);
}

int kiln_python_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    pyctx_t c = {.ctx = ctx};
    const char *add = NULL;
    int ret = -1;

    if (choose_tool(&c, err) < 0)
        goto out;
    if (c.pm == PM_NONE) {
        ret = 0;
        goto out;
    }
    kiln_plan_set(&plan->provider, "python");
    if (plan_version(&c, plan, err) < 0 || plan_manifests(&c, plan, err) < 0 ||
        kiln_python_app(ctx, &c.pp, c.deps_file, plan, &add, err) < 0 ||
        plan_commands(&c, plan, err) < 0)
        goto out;
    if (add != NULL) {
        /* the server the framework needs, pinned, into the venv (uv is in the build image;
         * a uv venv has no pip) */
        char *both = kiln_xasprintf("%s && uv pip install --quiet --python " VENV "/bin/python %s",
                                    plan->install, add);
        free(plan->install);
        plan->install = both;
        if (c.pm != PM_UV && kiln_plan_add_cache(plan, "uv", "/root/.cache/uv", err) < 0)
            goto out;
    }
    if (plan->build != NULL) {
        /* a build step: it ends by removing what the run image must not carry */
        char *b = kiln_xasprintf(PRUNE_PRE "%s && " PRUNE, plan->build);
        free(plan->build);
        plan->build = b;
    } else {
        /* no build step: the install step does it (the deps stage stays cached across
         * changes of the app, so a warm build runs nothing) */
        char *i = kiln_xasprintf("%s && " PRUNE, plan->install ? plan->install : "true");
        free(plan->install);
        plan->install = i;
        if (plan->why[KILN_WHY_INSTALL])
            kiln_plan_why(plan, KILN_WHY_INSTALL,
                          "%s; pip, setuptools and wheel then leave the venv (unless a dependency "
                          "needs them)",
                          plan->why[KILN_WHY_INSTALL]);
    }
    if (kiln_plan_add(plan->deps, &plan->n_deps, err, VENV) < 0 ||
        kiln_plan_setenv(plan, "PYTHONUNBUFFERED", "1", err) < 0 ||
        kiln_plan_setenv(plan, "PYTHONDONTWRITEBYTECODE", "1", err) < 0 ||
        kiln_plan_setenv(plan, "VIRTUAL_ENV", VENV, err) < 0 ||
        kiln_plan_setenv(plan, "PATH",
                         VENV "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         err) < 0)
        goto out;
    /* a Lambda handler and no web app (nor a Procfile): a function package by default */
    plan->outputs =
        plan->start == NULL && plan->handler != NULL && !kiln_tree_is_file(ctx->tree, "Procfile")
            ? KILN_PLAN_OUT_FUNCTION
            : KILN_PLAN_OUT_IMAGE;
    if (plan->outputs == KILN_PLAN_OUT_FUNCTION)
        kiln_plan_why(plan, KILN_WHY_OUTPUT,
                      "%s is a Lambda handler and no web app or Procfile is there: a function "
                      "package (the app and the venv's site-packages at its root)",
                      plan->handler);
    if (plan->handler == NULL) {
        /* AWS's default name for a Python function's handler */
        plan->handler = kiln_xstrdup("lambda_function.lambda_handler");
        kiln_plan_why(plan, KILN_WHY_HANDLER,
                      "AWS's default for Python: no lambda_function.py, handler.py, main.py, "
                      "app.py or function.py defines lambda_handler() or handler()");
    }
    /* a function package: the venv's site-packages at the zip's root, with the app */
    kiln_plan_set(&plan->function_deps, SITE_PACKAGES);
    if (plan->runtime == NULL) {
        plan->runtime = kiln_xstrdup("python" DEBIAN_PYTHON);
        kiln_plan_why(plan, KILN_WHY_RUNTIME,
                      "the venv is built with Debian 12's CPython " DEBIAN_PYTHON
                      ": AWS Lambda runs it as python" DEBIAN_PYTHON);
    }
    plan->build_image = kiln_detect_image(ctx, "python-build");
    plan->run_image = kiln_detect_image(ctx, "python-run");
    ret = 1;
out:
    kiln_pyproject_free(&c.pp);
    return ret;
}
