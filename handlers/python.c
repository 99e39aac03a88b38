/* kiln — the Python provider: requirements.txt / pyproject.toml / setup.py /
 * Pipfile → a venv at /opt/venv, pip install with a pip cache, start from the
 * Procfile (applied by detect), gunicorn / uvicorn when the app is found, else
 * main.py / app.py. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "handlers/kiln_json.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Debian 12's python3. */
#define DEBIAN_PYTHON_MAJOR 3
#define DEBIAN_PYTHON_MINOR 11
#define VENV "/opt/venv"

/* True when a requirement line names the package `name` (case-insensitive,
 * followed by a version specifier, extra, marker or end of line). */
static bool requires(const char *reqs, const char *name)
{
    size_t n = strlen(name);
    const char *p = reqs;

    while (p != NULL && *p) {
        while (*p == ' ' || *p == '\t' || *p == '"' || *p == '\'')
            p++;
        if (strncasecmp(p, name, n) == 0 && !isalnum((unsigned char)p[n]) && p[n] != '-' &&
            p[n] != '_')
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

/* Version: KILN_PYTHON_VERSION, kiln.json pythonVersion, .python-version,
 * runtime.txt ("python-3.11.4"). Only the image's 3.11 or older 3.x are
 * accepted (older code runs on 3.11); newer is an error naming both. */
static int plan_version(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    const char *spec = NULL, *src = "default";
    long major = 0, minor = 0;
    char *end;
    int r;

    if ((spec = kiln_detect_getenv(ctx, "KILN_PYTHON_VERSION")) != NULL) {
        src = "KILN_PYTHON_VERSION";
    } else if (ctx->overrides && ctx->overrides->python_version) {
        spec = ctx->overrides->python_version;
        src = "kiln.json";
    } else {
        r = kiln_tree_read(ctx->tree, ".python-version", &text, err);
        if (r > 0)
            src = ".python-version";
        if (r == 0) {
            r = kiln_tree_read(ctx->tree, "runtime.txt", &text, err);
            if (r > 0)
                src = "runtime.txt";
        }
        if (r < 0)
            return -1;
        spec = text;
    }
    kiln_plan_set(&plan->language, "python");
    kiln_plan_set(&plan->version_source, src);
    free(plan->version);
    plan->version = kiln_xasprintf("%d.%d", DEBIAN_PYTHON_MAJOR, DEBIAN_PYTHON_MINOR);
    if (spec == NULL)
        return 0;
    while (isspace((unsigned char)*spec))
        spec++;
    if (strncmp(spec, "python-", 7) == 0)
        spec += 7;
    major = strtol(spec, &end, 10);
    if (end == spec || major <= 0)
        return kiln_error_set(err, 0, "%s: cannot read a Python version from \"%.64s\"", src, spec);
    if (*end == '.')
        minor = strtol(end + 1, &end, 10);
    if (major != DEBIAN_PYTHON_MAJOR || minor > DEBIAN_PYTHON_MINOR)
        return kiln_error_set(err, 0,
                              "%s asks for Python %ld.%ld but the build image has Python %d.%d "
                              "(Debian 12); use %d.%d or older, or build with a Dockerfile",
                              src, major, minor, DEBIAN_PYTHON_MAJOR, DEBIAN_PYTHON_MINOR,
                              DEBIAN_PYTHON_MAJOR, DEBIAN_PYTHON_MINOR);
    return 0;
}

/* The module holding a WSGI/ASGI `app` object: app.py, main.py, wsgi.py, asgi.py. */
static int app_module(const kiln_detect_ctx_t *ctx, char **module, kiln_error_t *err)
{
    static const char *const mods[] = {"app", "main", "wsgi", "asgi", "server"};
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        _cleanup_free_ char *path = kiln_xasprintf("%s.py", mods[i]);
        _cleanup_free_ char *text = NULL;
        int r = kiln_tree_read(ctx->tree, path, &text, err);
        if (r < 0)
            return -1;
        if (r > 0 &&
            (strstr(text, "\napp =") || strstr(text, "\napp=") || strncmp(text, "app =", 5) == 0)) {
            *module = kiln_xstrdup(mods[i]);
            return 1;
        }
    }
    return 0;
}

/* Start command: gunicorn / uvicorn with the app module, else main.py / app.py. */
static int plan_start(const kiln_detect_ctx_t *ctx, const char *reqs, kiln_plan_t *plan,
                      kiln_error_t *err)
{
    _cleanup_free_ char *mod = NULL;
    int r = app_module(ctx, &mod, err);

    if (r < 0)
        return -1;
    if (r > 0 && reqs && requires(reqs, "gunicorn")) {
        kiln_plan_set(&plan->framework, "gunicorn");
        plan->start = kiln_xasprintf(VENV "/bin/gunicorn --bind 0.0.0.0:$PORT %s:app", mod);
    } else if (r > 0 && reqs && requires(reqs, "uvicorn")) {
        kiln_plan_set(&plan->framework, "uvicorn");
        plan->start = kiln_xasprintf(VENV "/bin/uvicorn --host 0.0.0.0 --port $PORT %s:app", mod);
    } else if (kiln_tree_is_file(ctx->tree, "main.py")) {
        plan->start = kiln_xstrdup("python3 main.py");
    } else if (kiln_tree_is_file(ctx->tree, "app.py")) {
        plan->start = kiln_xstrdup("python3 app.py");
    }
    return 0;
}

int kiln_python_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    const kiln_tree_t *t = ctx->tree;
    _cleanup_free_ char *reqs = NULL, *pyproject = NULL;
    int r;

    r = kiln_tree_read(t, "requirements.txt", &reqs, err);
    if (r < 0)
        return -1;
    if (r == 0 && kiln_tree_read(t, "pyproject.toml", &pyproject, err) < 0)
        return -1;
    if (reqs == NULL && pyproject == NULL && !kiln_tree_is_file(t, "setup.py") &&
        !kiln_tree_is_file(t, "Pipfile"))
        return 0;
    kiln_plan_set(&plan->provider, "python");
    kiln_plan_set(&plan->package_manager, "pip");
    if (plan_version(ctx, plan, err) < 0)
        return -1;
    if (reqs != NULL) {
        if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "requirements.txt") < 0)
            return -1;
        kiln_plan_set(&plan->install,
                      "python3 -m venv " VENV " && " VENV "/bin/pip install -r requirements.txt");
    } else if (pyproject != NULL || kiln_tree_is_file(t, "setup.py")) {
        /* The project itself is the package: it installs after the app is copied. */
        kiln_plan_set(&plan->install, "python3 -m venv " VENV);
        kiln_plan_set(&plan->build, VENV "/bin/pip install --no-build-isolation .");
    } else {
        kiln_plan_set(&plan->install, "python3 -m venv " VENV);
        kiln_plan_add(plan->notes, &plan->n_notes, err,
                      "Pipfile: pipenv is not in the build image; list the packages in "
                      "requirements.txt");
    }
    if (plan_start(ctx, reqs ? reqs : pyproject, plan, err) < 0)
        return -1;
    if (kiln_plan_add_cache(plan, "pip", "/root/.cache/pip", err) < 0 ||
        kiln_plan_add(plan->deps, &plan->n_deps, err, VENV) < 0 ||
        kiln_plan_setenv(plan, "PYTHONUNBUFFERED", "1", err) < 0 ||
        kiln_plan_setenv(plan, "VIRTUAL_ENV", VENV, err) < 0 ||
        kiln_plan_setenv(plan, "PATH",
                         VENV "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         err) < 0)
        return -1;
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "python-build");
    plan->run_image = kiln_detect_image(ctx, "python-run");
    return 1;
}
