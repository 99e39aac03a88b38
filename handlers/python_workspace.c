/* kiln — a uv workspace member as the app (see python_workspace.h). */
#include "handlers/python_workspace.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/tree.h"
#include "handlers/words.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/toml.h"

#define VENV "/opt/venv"
#define UV "UV_PROJECT_ENVIRONMENT=" VENV " uv sync --no-dev --no-editable"

/* The [tool.uv.workspace] members patterns of the root's pyproject.toml (a borrowed array),
 * or NULL when it declares no workspace. */
static json_t *members_of(json_t *doc)
{
    json_t *m = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "tool"), "uv"), "workspace"),
        "members");
    return json_is_array(m) ? m : NULL;
}

/* Whether the plain relative path `dir` matches one of `patterns` (globs of one level each). */
static bool is_member(json_t *patterns, const char *dir)
{
    size_t i;
    json_t *p;
    json_array_foreach(patterns, i, p)
    {
        if (json_is_string(p) && fnmatch(json_string_value(p), dir, FNM_PATHNAME) == 0)
            return true;
    }
    return false;
}

/* Adds every member's pyproject.toml (the patterns' literal parent directory, one level of
 * names under it) to the plan's manifests: uv reads them all to know the workspace. */
static int member_manifests(const kiln_tree_t *t, json_t *patterns, kiln_plan_t *plan,
                            kiln_error_t *err)
{
    size_t i, n = 0;
    json_t *p;

    json_array_foreach(patterns, i, p)
    {
        const char *pat = json_is_string(p) ? json_string_value(p) : "";
        _cleanup_free_ char *parent = kiln_xstrdup(pat);
        char *slash = strrchr(parent, '/');
        _cleanup_strv_ char **names = NULL;
        if (!kiln_words_relpath(pat) && strpbrk(pat, "*?[") == NULL)
            return kiln_error_set(err, 0,
                                  "pyproject.toml: workspace member \"%.128s\" is not a relative "
                                  "path inside the source",
                                  pat);
        if (slash == NULL) {
            free(parent);
            parent = kiln_xstrdup(".");
        } else {
            *slash = '\0';
        }
        if (strcmp(parent, ".") != 0 && strpbrk(parent, "*?[") == NULL &&
            !kiln_words_relpath(parent))
            return kiln_error_set(err, 0,
                                  "pyproject.toml: workspace member \"%.128s\" is not a relative "
                                  "path inside the source",
                                  pat);
        if (strpbrk(parent, "*?[") != NULL)
            return kiln_error_set(err, 0,
                                  "pyproject.toml: workspace member pattern \"%.128s\": kiln reads "
                                  "patterns with a wildcard in their last part only",
                                  pat);
        if ((names = kiln_tree_list(t, parent, KILN_UV_MAX_MEMBERS, err)) == NULL)
            return -1;
        for (size_t k = 0; names[k]; k++) {
            _cleanup_free_ char *dir = strcmp(parent, ".") == 0
                                           ? kiln_xstrdup(names[k])
                                           : kiln_xasprintf("%s/%s", parent, names[k]);
            _cleanup_free_ char *file = kiln_xasprintf("%s/pyproject.toml", dir);
            if (fnmatch(pat, dir, FNM_PATHNAME) != 0 || !kiln_tree_is_file(t, file))
                continue;
            if (++n > KILN_UV_MAX_MEMBERS)
                return kiln_error_set(err, 0, "pyproject.toml: more than %d workspace members",
                                      KILN_UV_MAX_MEMBERS);
            if (kiln_plan_add_path(plan->manifests, &plan->n_manifests, err, "%s", file) < 0)
                return -1;
        }
    }
    return 0;
}

/* The member's [project] name, a plain word (malloc'ed), or NULL with err. */
static char *member_name(const kiln_tree_t *t, const char *sub, kiln_error_t *err)
{
    _cleanup_free_ char *file = kiln_xasprintf("%s/pyproject.toml", sub), *text = NULL;
    json_t *doc = NULL;
    char *name = NULL;
    int r = kiln_tree_read(t, file, &text, err);

    if (r <= 0) {
        if (r == 0)
            kiln_error_set(err, 0, "%s: no pyproject.toml in the workspace member", sub);
        return NULL;
    }
    if (kiln_toml_load(file, text, strlen(text), &doc, err) < 0)
        return NULL;
    {
        json_t *v = json_object_get(json_object_get(doc, "project"), "name");
        if (json_is_string(v) && kiln_words_plain(json_string_value(v)))
            name = kiln_xstrdup(json_string_value(v));
        else
            kiln_error_set(err, 0, "%s: [project] name is missing or not a plain name", file);
    }
    json_decref(doc);
    return name;
}

int kiln_python_workspace_apply(const char *root, const char *subdir,
                                const kiln_detect_opts_t *opts, kiln_plan_t *plan,
                                kiln_error_t *err)
{
    kiln_tree_t t = {.fd = -1};
    _cleanup_free_ char *sub = NULL, *text = NULL, *name = NULL;
    json_t *doc = NULL, *patterns;
    int r = 0;

    (void)opts;
    if (subdir == NULL || plan->provider == NULL || strcmp(plan->provider, "python") != 0)
        return 0;
    if ((sub = kiln_words_subdir(subdir)) == NULL || !kiln_words_relpath(sub))
        return 0;
    if (kiln_tree_open(root, &t, err) < 0)
        return -1;
    if (!kiln_tree_is_file(&t, "uv.lock") || kiln_tree_read(&t, "pyproject.toml", &text, err) <= 0)
        goto out; /* not a uv workspace (an error reading it is one still: r stays 0) */
    r = -1;
    if (kiln_toml_load("pyproject.toml", text, strlen(text), &doc, err) < 0)
        goto out;
    r = 0;
    if ((patterns = members_of(doc)) == NULL || !is_member(patterns, sub))
        goto out;
    r = -1;
    if ((name = member_name(&t, sub, err)) == NULL)
        goto out;
    /* the deps stage: the lock and every pyproject.toml of the workspace */
    for (size_t i = 0; i < plan->n_manifests; i++)
        free(plan->manifests[i]);
    plan->n_manifests = 0;
    if (kiln_plan_add_path(plan->manifests, &plan->n_manifests, err, "uv.lock") < 0 ||
        kiln_plan_add_path(plan->manifests, &plan->n_manifests, err, "pyproject.toml") < 0 ||
        member_manifests(&t, patterns, plan, err) < 0)
        goto out;
    kiln_plan_set(&plan->package_manager, "uv");
    {
        /* a server the framework needs, added by the provider, and the provider's closing
         * step (what the venv must not keep) stay */
        const char *add = plan->install ? strstr(plan->install, " && uv pip install ") : NULL;
        if (add == NULL && plan->install)
            add = strstr(plan->install, " && " VENV "/bin/python -c ");
        char *i = kiln_xasprintf(UV " --frozen --package %s --no-install-workspace%s", name,
                                 add ? add : "");
        bool uv_cache = false;
        free(plan->install);
        plan->install = i;
        for (size_t k = 0; k < plan->n_caches; k++)
            uv_cache |= strcmp(plan->caches[k].target, "/root/.cache/uv") == 0;
        if (!uv_cache && kiln_plan_add_cache(plan, "uv", "/root/.cache/uv", err) < 0)
            goto out;
    }
    {
        /* the member and the workspace packages it uses, from the whole source (--inexact:
         * the server the install step added stays); the provider's closing step (what the
         * venv must not keep) stays */
        const char *tail = plan->build ? strstr(plan->build, VENV "/bin/python -c") : NULL;
        char *b = kiln_xasprintf("KILN_PRE=\"$(ls -d build *.egg-info 2>/dev/null)\"; " UV
                                 " --locked --inexact --package %s%s%s",
                                 name, tail ? " && " : "", tail ? tail : "");
        free(plan->build);
        plan->build = b;
    }
    if (plan->start) {
        char *s = kiln_xasprintf("cd %s && %s", sub, plan->start);
        free(plan->start);
        plan->start = s;
    }
    kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER,
                  "%s is a member of the uv workspace at the repository root (pyproject.toml "
                  "[tool.uv.workspace] members, uv.lock): uv installs it from the root's lock",
                  sub);
    kiln_plan_why(plan, KILN_WHY_INSTALL,
                  "uv sync --package %s --no-install-workspace from uv.lock and the workspace's "
                  "pyproject.toml files only: the locked third-party dependencies of %s, cached "
                  "until they change",
                  name, name);
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "uv sync --package %s: the member and the workspace packages it depends on, "
                  "built from the whole source (not editable); pip, setuptools and wheel then "
                  "leave the venv",
                  name);
    kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                  "uv workspace: the context is the repository root; %s (package %s) is the app",
                  sub, name);
    r = 1;
out:
    json_decref(doc);
    kiln_tree_close(&t);
    return r;
}
