/* kiln — the Python provider's web app and function detection (see python_app.h). */
#include "handlers/python_app.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define VENV_BIN "/opt/venv/bin/"

/* The modules searched for an app object, in order (a path without ".py"). */
static const char *const app_modules[] = {
    "app",      "main",    "wsgi",         "asgi",     "server",  "application",  "api",
    "app/main", "app/app", "app/__init__", "src/main", "src/app", "src/__init__",
};

/* The dotted module of a path ("app/main" → "app.main", "app/__init__" → "app"). */
static char *module_of(const char *path)
{
    char *m = kiln_xstrdup(path);
    char *init = strstr(m, "/__init__");
    if (init)
        *init = '\0';
    for (char *p = m; *p; p++)
        if (*p == '/')
            *p = '.';
    return m;
}

static bool ident_char(int c)
{
    return isalnum(c) || c == '_';
}

/* The variable a top-level line assigns a call of `ctor` to ("app = Flask(__name__)",
 * "api: FastAPI = fastapi.FastAPI()"); NULL when no line does. */
static char *assigned(const char *text, const char *ctor)
{
    size_t cl = strlen(ctor);

    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *p = l, *eq;
        size_t n = 0;
        while (ident_char((unsigned char)p[n]))
            n++;
        if (n == 0 || isdigit((unsigned char)p[0]))
            continue;
        eq = p + n;
        while (*eq == ' ' || *eq == '\t')
            eq++;
        if (*eq == ':') /* an annotation */
            eq += strcspn(eq, "=\n");
        if (*eq != '=' || eq[1] == '=')
            continue;
        /* no constructor asked: any top-level `app = ...` */
        if (cl == 0) {
            if (n == 3 && strncmp(p, "app", 3) == 0)
                return kiln_xstrdup("app");
            continue;
        }
        eq++;
        while (*eq == ' ' || *eq == '\t')
            eq++;
        /* "Flask(" or "flask.Flask(" */
        {
            const char *dot = eq;
            while (ident_char((unsigned char)*dot) || *dot == '.')
                dot++;
            if (*dot != '(' || (size_t)(dot - eq) < cl || strncmp(dot - cl, ctor, cl) != 0 ||
                (dot - cl > eq && dot[-(long)cl - 1] != '.'))
                continue;
        }
        return kiln_xstrndup(p, n);
    }
    return NULL;
}

/* True when a top-level `def name(` is in text. */
static bool defines(const char *text, const char *name)
{
    _cleanup_free_ char *a = kiln_xasprintf("def %s(", name);
    _cleanup_free_ char *b = kiln_xasprintf("\ndef %s(", name);
    return strncmp(text, a, strlen(a)) == 0 || strstr(text, b) != NULL;
}

typedef struct found {
    char *module; /* "app.main" */
    char *object; /* "app", "create_app()" */
    const char *path;
} found_t;

static void found_free(found_t *f)
{
    free(f->module);
    free(f->object);
}

/* The first module assigning `ctor(...)` (or, with `factory`, defining create_app). */
static int find_app(const kiln_detect_ctx_t *ctx, const char *ctor, bool factory, found_t *out,
                    kiln_error_t *err)
{
    for (size_t i = 0; i < sizeof(app_modules) / sizeof(app_modules[0]); i++) {
        _cleanup_free_ char *path = kiln_xasprintf("%s.py", app_modules[i]);
        _cleanup_free_ char *text = NULL;
        char *obj;
        int r = kiln_tree_read(ctx->tree, path, &text, err);
        if (r < 0)
            return -1;
        if (r == 0)
            continue;
        obj = assigned(text, ctor);
        if (obj == NULL && factory && defines(text, "create_app"))
            obj = kiln_xstrdup("create_app()");
        if (obj != NULL) {
            out->module = module_of(app_modules[i]);
            out->object = obj;
            out->path = app_modules[i];
            return 1;
        }
    }
    return 0;
}

/* Django: the settings module named in manage.py ("mysite.settings"): the first quoted
 * dotted name after a DJANGO_SETTINGS_MODULE on the same line (a mention in a comment or
 * docstring without one is skipped). */
static char *django_settings(const char *manage)
{
    static const char key[] = "DJANGO_SETTINGS_MODULE";

    for (const char *p = strstr(manage, key); p != NULL; p = strstr(p, key)) {
        const char *q;
        size_t n;
        p += sizeof(key) - 1;
        /* skip the key's own closing quote, then find the value's opening one */
        q = p + (*p == '"' || *p == '\'');
        q += strcspn(q, "\"'\n");
        if (*q != '"' && *q != '\'')
            continue;
        q++;
        n = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.");
        if (n > 0 && (q[n] == '"' || q[n] == '\''))
            return kiln_xstrndup(q, n);
    }
    return NULL;
}

/* Django: start with gunicorn on the project's WSGI module, collectstatic when the settings
 * set STATIC_ROOT. Returns 1 when the source is a Django project. */
static int django(const kiln_detect_ctx_t *ctx, const kiln_pyproject_t *deps, const char *file,
                  kiln_plan_t *plan, const char **add, kiln_error_t *err)
{
    _cleanup_free_ char *manage = NULL, *settings = NULL, *project = NULL, *wsgi = NULL;
    _cleanup_free_ char *spath = NULL, *stext = NULL;
    int r = kiln_tree_read(ctx->tree, "manage.py", &manage, err);

    if (r <= 0)
        return r;
    if (!kiln_pyproject_has(deps, "django") && strstr(manage, "django") == NULL)
        return 0;
    settings = django_settings(manage);
    if (settings == NULL)
        return kiln_error_set(err, 0,
                              "manage.py does not set DJANGO_SETTINGS_MODULE: kiln cannot find "
                              "the Django project's WSGI module (set \"start\" in kiln.json)");
    project = kiln_xstrndup(settings, strcspn(settings, "."));
    wsgi = kiln_xasprintf("%s/wsgi.py", project);
    if (!kiln_tree_is_file(ctx->tree, wsgi))
        return kiln_error_set(err, 0,
                              "manage.py names the settings %s but %s is missing: kiln starts "
                              "Django with gunicorn on the project's wsgi module (set \"start\" "
                              "in kiln.json)",
                              settings, wsgi);
    kiln_plan_set(&plan->framework, "django");
    kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "manage.py sets DJANGO_SETTINGS_MODULE=%s%s%s",
                  settings, kiln_pyproject_has(deps, "django") ? " and django is in " : "",
                  kiln_pyproject_has(deps, "django") ? file : "");
    free(plan->start);
    plan->start = kiln_xasprintf(VENV_BIN "gunicorn --bind 0.0.0.0:$PORT %s.wsgi", project);
    if (!kiln_pyproject_has(deps, "gunicorn"))
        *add = KILN_PY_GUNICORN;
    kiln_plan_why(plan, KILN_WHY_START,
                  "Django's WSGI application %s/wsgi.py served by gunicorn%s; migrations are "
                  "not run by the build or the start command (run `python manage.py migrate` "
                  "as a release step)",
                  project,
                  *add ? " (not among the dependencies: kiln adds " KILN_PY_GUNICORN ")" : "");
    /* the settings module's file: "mysite/settings.py" or a package */
    spath = kiln_xasprintf("%s.py", settings);
    for (char *p = spath; *p && strcmp(p, ".py") != 0; p++)
        if (*p == '.')
            *p = '/';
    r = kiln_tree_read(ctx->tree, spath, &stext, err);
    if (r < 0)
        return -1;
    if (r > 0 && strstr(stext, "STATIC_ROOT") != NULL) {
        kiln_plan_set(&plan->build, "python manage.py collectstatic --noinput");
        kiln_plan_why(plan, KILN_WHY_BUILD,
                      "%s sets STATIC_ROOT: collectstatic gathers the "
                      "static files at build time",
                      spath);
    } else {
        kiln_plan_why(plan, KILN_WHY_BUILD, "no collectstatic: %s sets no STATIC_ROOT", spath);
    }
    return 1;
}

/* Flask, FastAPI, Starlette, then any module-level `app` with gunicorn / uvicorn listed. */
static int web_app(const kiln_detect_ctx_t *ctx, const kiln_pyproject_t *deps, const char *file,
                   kiln_plan_t *plan, const char **add, kiln_error_t *err)
{
    static const struct {
        const char *dep, *ctor, *framework;
        bool asgi, factory;
    } fws[] = {
        {"fastapi", "FastAPI", "fastapi", true, false},
        {"starlette", "Starlette", "starlette", true, false},
        {"flask", "Flask", "flask", false, true},
    };
    found_t f = {0};
    int r;

    for (size_t i = 0; i < sizeof(fws) / sizeof(fws[0]); i++) {
        if (!kiln_pyproject_has(deps, fws[i].dep))
            continue;
        r = find_app(ctx, fws[i].ctor, fws[i].factory, &f, err);
        if (r < 0)
            return -1;
        if (r == 0)
            continue;
        kiln_plan_set(&plan->framework, fws[i].framework);
        if (strcmp(f.object, "create_app()") == 0)
            kiln_plan_why(plan, KILN_WHY_FRAMEWORK,
                          "%s lists %s and %s.py defines the app factory create_app()", file,
                          fws[i].dep, f.path);
        else
            kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "%s lists %s and %s.py makes `%s = %s(...)`",
                          file, fws[i].dep, f.path, f.object, fws[i].ctor);
        free(plan->start);
        if (!fws[i].asgi) {
            plan->start = kiln_xasprintf(VENV_BIN "gunicorn --bind 0.0.0.0:$PORT '%s:%s'", f.module,
                                         f.object);
            if (strchr(f.object, '(') == NULL) {
                free(plan->start);
                plan->start = kiln_xasprintf(VENV_BIN "gunicorn --bind 0.0.0.0:$PORT %s:%s",
                                             f.module, f.object);
            }
            if (!kiln_pyproject_has(deps, "gunicorn"))
                *add = KILN_PY_GUNICORN;
            kiln_plan_why(
                plan, KILN_WHY_START, "a WSGI app (%s) served by gunicorn%s", fws[i].framework,
                *add ? " (not among the dependencies: kiln adds " KILN_PY_GUNICORN ")" : "");
        } else if (!kiln_pyproject_has(deps, "uvicorn") && kiln_pyproject_has(deps, "gunicorn") &&
                   kiln_pyproject_has(deps, "uvicorn-worker")) {
            plan->start = kiln_xasprintf(VENV_BIN "gunicorn --bind 0.0.0.0:$PORT -k "
                                                  "uvicorn_worker.UvicornWorker %s:%s",
                                         f.module, f.object);
            kiln_plan_why(plan, KILN_WHY_START,
                          "an ASGI app (%s): %s lists gunicorn and uvicorn-worker, so gunicorn "
                          "runs it with uvicorn workers",
                          fws[i].framework, file);
        } else {
            plan->start = kiln_xasprintf(VENV_BIN "uvicorn --host 0.0.0.0 --port $PORT %s:%s",
                                         f.module, f.object);
            if (!kiln_pyproject_has(deps, "uvicorn"))
                *add = KILN_PY_UVICORN;
            kiln_plan_why(
                plan, KILN_WHY_START, "an ASGI app (%s) served by uvicorn%s", fws[i].framework,
                *add ? " (not among the dependencies: kiln adds " KILN_PY_UVICORN ")" : "");
        }
        found_free(&f);
        return 1;
    }
    /* no known framework: an `app` object with a server the project lists */
    for (size_t i = 0; i < 2; i++) {
        const char *server = i == 0 ? "gunicorn" : "uvicorn";
        if (!kiln_pyproject_has(deps, server))
            continue;
        r = find_app(ctx, "", false, &f, err);
        if (r <= 0)
            return r;
        kiln_plan_set(&plan->framework, server);
        free(plan->start);
        plan->start = i == 0 ? kiln_xasprintf(VENV_BIN "gunicorn --bind 0.0.0.0:$PORT %s:%s",
                                              f.module, f.object)
                             : kiln_xasprintf(VENV_BIN "uvicorn --host 0.0.0.0 --port $PORT %s:%s",
                                              f.module, f.object);
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "%s lists %s and %s.py makes `%s`", file, server,
                      f.path, f.object);
        kiln_plan_why(plan, KILN_WHY_START, "%s serves %s:%s", server, f.module, f.object);
        found_free(&f);
        return 1;
    }
    return 0;
}

/* The Lambda handler: lambda_function.lambda_handler (AWS's default), or a `handler` /
 * `lambda_handler` function in handler.py, main.py, app.py. */
static int function_handler(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    static const char *const mods[] = {"lambda_function", "handler", "main", "app", "function"};
    static const char *const fns[] = {"lambda_handler", "handler"};

    if (plan->handler != NULL)
        return 0;
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        _cleanup_free_ char *path = kiln_xasprintf("%s.py", mods[i]);
        _cleanup_free_ char *text = NULL;
        int r = kiln_tree_read(ctx->tree, path, &text, err);
        if (r < 0)
            return -1;
        for (size_t j = 0; r > 0 && j < sizeof(fns) / sizeof(fns[0]); j++)
            if (defines(text, fns[j])) {
                plan->handler = kiln_xasprintf("%s.%s", mods[i], fns[j]);
                kiln_plan_why(plan, KILN_WHY_HANDLER, "%s defines %s()", path, fns[j]);
                return 0;
            }
    }
    return 0;
}

int kiln_python_app(const kiln_detect_ctx_t *ctx, const kiln_pyproject_t *deps,
                    const char *deps_file, kiln_plan_t *plan, const char **add, kiln_error_t *err)
{
    int r;

    *add = NULL;
    if (function_handler(ctx, plan, err) < 0)
        return -1;
    r = django(ctx, deps, deps_file, plan, add, err);
    if (r == 0)
        r = web_app(ctx, deps, deps_file, plan, add, err);
    if (r != 0)
        return r < 0 ? -1 : 0;
    for (size_t i = 0; i < 2; i++) {
        const char *script = i == 0 ? "main.py" : "app.py";
        if (kiln_tree_is_file(ctx->tree, script)) {
            free(plan->start);
            plan->start = kiln_xasprintf("python3 %s", script);
            kiln_plan_why(plan, KILN_WHY_START,
                          "%s is there and no web framework was found (Django, Flask, FastAPI, "
                          "Starlette)",
                          script);
            return 0;
        }
    }
    return 0;
}
