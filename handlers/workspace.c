/* kiln — monorepos: the app of a Node workspace built from the repository root (see
 * workspace.h). */
#include "handlers/workspace.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Most workspace packages looked at; most entries read from one pattern's directory. */
#define MAX_PACKAGES 256

typedef struct ws_pkg {
    char *path; /* "packages/lib" */
    char *name; /* package.json name, or NULL */
    json_t *pkg;
    bool needed;
    bool visiting;
} ws_pkg_t;

typedef struct ws {
    ws_pkg_t p[MAX_PACKAGES];
    size_t n;
    size_t order[MAX_PACKAGES]; /* needed packages, dependencies first */
    size_t n_order;
} ws_t;

static void ws_free(ws_t *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->p[i].path);
        free(w->p[i].name);
        json_decref(w->p[i].pkg);
    }
}

/* A workspace path or package name as a shell word: [A-Za-z0-9@/._-] only, no "..". */
static bool shell_safe(const char *s)
{
    if (s[0] == '\0' || s[0] == '-' || strstr(s, "..") != NULL)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("@/._-", *p))
            return false;
    return true;
}

/* Adds the package at `path` when it holds a package.json. */
static int add_package(const kiln_tree_t *t, ws_t *w, const char *path, kiln_error_t *err)
{
    _cleanup_free_ char *file = kiln_xasprintf("%s/package.json", path), *text = NULL;
    json_error_t jerr;
    json_t *pkg, *name;
    int r;

    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->p[i].path, path) == 0)
            return 0;
    if ((r = kiln_tree_read(t, file, &text, err)) <= 0)
        return r;
    if (w->n == MAX_PACKAGES)
        return kiln_error_set(err, ENOBUFS, "more than %d workspace packages", MAX_PACKAGES);
    pkg = json_loads(text, 0, &jerr);
    if (pkg == NULL || !json_is_object(pkg)) {
        json_decref(pkg);
        return kiln_error_set(err, 0, "%s line %d: not a JSON object", file, jerr.line);
    }
    name = json_object_get(pkg, "name");
    w->p[w->n].path = kiln_xstrdup(path);
    w->p[w->n].name = json_is_string(name) ? kiln_xstrdup(json_string_value(name)) : NULL;
    w->p[w->n].pkg = pkg;
    w->n++;
    return 0;
}

/* Expands one workspace pattern: "dir", "dir/" + "*" (each subdirectory); "!x" and
 * deeper globs are skipped. */
static int expand_pattern(const kiln_tree_t *t, ws_t *w, const char *pat, kiln_error_t *err)
{
    _cleanup_free_ char *p = NULL;
    size_t n;

    while (pat[0] == '.' && pat[1] == '/')
        pat += 2;
    p = kiln_xstrdup(pat);
    n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        p[--n] = '\0';
    if (n == 0 || p[0] == '!' || p[0] == '/' || strstr(p, "..") != NULL)
        return 0;
    if (n > 2 && strcmp(p + n - 2, "/*") == 0) {
        char **names;
        p[n - 2] = '\0';
        if (strchr(p, '*') != NULL || !kiln_tree_is_dir(t, p))
            return 0;
        names = kiln_tree_list(t, p, MAX_PACKAGES, err);
        if (names == NULL)
            return -1;
        int r = 0;
        for (size_t i = 0; names[i]; i++) {
            _cleanup_free_ char *sub = kiln_xasprintf("%s/%s", p, names[i]);
            if (r == 0 && kiln_tree_is_dir(t, sub))
                r = add_package(t, w, sub, err);
            free(names[i]);
        }
        free(names);
        return r;
    }
    if (strchr(p, '*') != NULL)
        return 0;
    return add_package(t, w, p, err);
}

/* The `packages:` list of pnpm-workspace.yaml (block items, quoted or bare). */
static int pnpm_patterns(const kiln_tree_t *t, ws_t *w, const char *text, kiln_error_t *err)
{
    bool in = false;

    for (const char *l = text; *l; l += strcspn(l, "\n"), l += *l == '\n') {
        size_t len = strcspn(l, "\n");
        _cleanup_free_ char *line = kiln_xstrndup(l, len);
        char *s = line, *e;
        if (!isspace((unsigned char)s[0]) && s[0] != '-' && s[0] != '#' && s[0] != '\0') {
            in = strncmp(s, "packages:", 9) == 0;
            continue;
        }
        while (isspace((unsigned char)*s))
            s++;
        if (!in || *s != '-')
            continue;
        s++;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\'' || *s == '"') {
            e = strchr(s + 1, *s);
            if (e == NULL)
                continue;
            *e = '\0';
            s++;
        } else {
            s[strcspn(s, " \t#")] = '\0';
        }
        if (expand_pattern(t, w, s, err) < 0)
            return -1;
    }
    return 0;
}

/* Reads the workspace patterns of the root: package.json "workspaces" (a list, or
 * {"packages": [...]}) and pnpm-workspace.yaml. Returns 1 when the root has any. */
static int read_workspaces(const kiln_tree_t *t, ws_t *w, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL, *yaml = NULL;
    json_auto_t *pkg = NULL;
    json_t *ws, *v;
    size_t i;
    int r, found = 0;

    if ((r = kiln_tree_read(t, "package.json", &text, err)) < 0)
        return -1;
    if (r > 0 && (pkg = json_loads(text, 0, NULL)) != NULL) {
        ws = json_object_get(pkg, "workspaces");
        if (json_is_object(ws))
            ws = json_object_get(ws, "packages");
        json_array_foreach(ws, i, v)
        {
            found = 1;
            if (json_is_string(v) && expand_pattern(t, w, json_string_value(v), err) < 0)
                return -1;
        }
    }
    if ((r = kiln_tree_read(t, "pnpm-workspace.yaml", &yaml, err)) < 0)
        return -1;
    if (r > 0) {
        found = 1;
        if (pnpm_patterns(t, w, yaml, err) < 0)
            return -1;
    }
    return found;
}

/* Marks package i and the workspace packages it depends on (dependencies,
 * devDependencies), appending them to the build order after their own dependencies. */
static void need(ws_t *w, size_t i)
{
    static const char *const kinds[] = {"dependencies", "devDependencies", "peerDependencies",
                                        "optionalDependencies"};
    if (w->p[i].needed || w->p[i].visiting)
        return;
    w->p[i].visiting = true;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        const char *dep;
        json_t *v;
        json_object_foreach(json_object_get(w->p[i].pkg, kinds[k]), dep, v)
        {
            for (size_t j = 0; j < w->n; j++)
                if (w->p[j].name && strcmp(w->p[j].name, dep) == 0)
                    need(w, j);
        }
    }
    w->p[i].visiting = false;
    w->p[i].needed = true;
    w->order[w->n_order++] = i;
}

static bool has_build(const ws_pkg_t *p)
{
    return json_is_string(json_object_get(json_object_get(p->pkg, "scripts"), "build"));
}

/* The build command: the needed packages' build scripts, dependencies first (pnpm:
 * its own --filter NAME... does that), then the other workspace packages removed so
 * that the run image holds only what the app needs. NULL when there is nothing to do. */
static char *build_command(const ws_t *w, const ws_pkg_t *app, const char *pm, kiln_error_t *err)
{
    kiln_buf_t b;
    const char *sep = "";

    kiln_buf_init(&b, 0);
    if (strcmp(pm, "pnpm") == 0 && app->name) {
        bool any = false;
        for (size_t k = 0; k < w->n_order; k++)
            any |= has_build(&w->p[w->order[k]]);
        if (any) {
            kiln_buf_appendf(&b, NULL, "pnpm --filter %s... run build", app->name);
            sep = " && ";
        }
    } else {
        for (size_t k = 0; k < w->n_order; k++) {
            const ws_pkg_t *p = &w->p[w->order[k]];
            if (!has_build(p))
                continue;
            if (strcmp(pm, "npm") == 0)
                kiln_buf_appendf(&b, NULL, "%snpm run build -w %s", sep, p->path);
            else if (strncmp(pm, "yarn", 4) == 0 && p->name)
                kiln_buf_appendf(&b, NULL, "%syarn workspace %s run build", sep, p->name);
            else
                kiln_buf_appendf(&b, NULL, "%s(cd %s && %s run build)", sep, p->path,
                                 strcmp(pm, "bun") == 0 ? "bun" : "npm");
            sep = " && ";
        }
    }
    for (size_t i = 0; i < w->n; i++) {
        if (w->p[i].needed)
            continue;
        kiln_buf_appendf(&b, NULL, "%srm -rf %s", sep, w->p[i].path);
        sep = " && ";
    }
    (void)err;
    if (b.len == 0) {
        kiln_buf_free(&b);
        return NULL;
    }
    return kiln_buf_steal(&b, NULL);
}

/* `value` under the app's directory: "apps/web/dist". */
static void under_app(char **field, const char *sub, const char *dflt)
{
    const char *v = *field ? *field : dflt;
    char *n;

    if (v == NULL)
        return;
    n = strcmp(v, ".") == 0 ? kiln_xstrdup(sub) : kiln_xasprintf("%s/%s", sub, v);
    free(*field);
    *field = n;
}

/* The install half from the root's plan: manager, setup, install, prune, its caches
 * and env, the root's manifests plus the workspace config files and every workspace
 * package's package.json (the lockfile covers them all). */
static int take_root(const kiln_tree_t *t, const ws_t *w, const kiln_plan_t *rp, kiln_plan_t *plan,
                     kiln_error_t *err)
{
    static const char *const extra[] = {
        "pnpm-workspace.yaml", ".pnpmfile.cjs", ".yarnrc.yml", ".yarn/releases",
        ".yarn/plugins",       ".yarn/patches", "patches/",    ".npmrc"};

    kiln_plan_set(&plan->package_manager, rp->package_manager);
    if (rp->why[KILN_WHY_PACKAGE_MANAGER])
        kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "at the workspace root: %s",
                      rp->why[KILN_WHY_PACKAGE_MANAGER]);
    kiln_plan_set(&plan->setup, rp->setup);
    kiln_plan_set(&plan->install, rp->install);
    kiln_plan_set(&plan->prune, rp->prune);
    for (size_t i = 0; i < plan->n_manifests; i++)
        free(plan->manifests[i]);
    plan->n_manifests = 0;
    for (size_t i = 0; i < rp->n_manifests; i++)
        if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", rp->manifests[i]) < 0)
            return -1;
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        bool dup = false;
        for (size_t j = 0; j < plan->n_manifests; j++)
            dup |= strcmp(plan->manifests[j], extra[i]) == 0;
        if (!dup && (kiln_tree_is_file(t, extra[i]) || kiln_tree_is_dir(t, extra[i])) &&
            kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", extra[i]) < 0)
            return -1;
    }
    for (size_t i = 0; i < w->n; i++)
        if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s/package.json",
                          w->p[i].path) < 0)
            return kiln_error_prefix(err, "workspace manifests (at most %d files)",
                                     KILN_PLAN_MAX_ITEMS);
    for (size_t i = 0; i < rp->n_caches; i++) {
        bool dup = false;
        for (size_t j = 0; j < plan->n_caches; j++)
            dup |= strcmp(plan->caches[j].target, rp->caches[i].target) == 0;
        if (!dup && plan->n_caches < KILN_PLAN_MAX_ITEMS) {
            plan->caches[plan->n_caches].id =
                kiln_xasprintf("%s-%s", plan->project ? plan->project : "app", rp->caches[i].id);
            plan->caches[plan->n_caches++].target = kiln_xstrdup(rp->caches[i].target);
        }
    }
    for (size_t i = 0; i < rp->n_env; i++) {
        _cleanup_free_ char *key = kiln_xstrndup(rp->env[i], strcspn(rp->env[i], "="));
        if (kiln_plan_getenv(plan, key) == NULL &&
            kiln_plan_setenv(plan, key, strchr(rp->env[i], '=') + 1, err) < 0)
            return -1;
    }
    return 0;
}

int kiln_workspace_apply(const char *root, const char *subdir, const kiln_detect_opts_t *opts,
                         kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *sub = NULL, *build = NULL, *cache_prefix = NULL;
    _cleanup_plan_ kiln_plan_t *rp = NULL;
    kiln_tree_t t = {.fd = -1};
    ws_t w = {0};
    ws_pkg_t *app = NULL;
    size_t n;
    int r;

    if (subdir == NULL || plan->provider == NULL || strcmp(plan->provider, "node") != 0)
        return 0;
    while (subdir[0] == '/' || (subdir[0] == '.' && subdir[1] == '/'))
        subdir += subdir[0] == '/' ? 1 : 2;
    sub = kiln_xstrdup(subdir);
    n = strlen(sub);
    while (n > 0 && sub[n - 1] == '/')
        sub[--n] = '\0';
    if (n == 0 || strcmp(sub, ".") == 0)
        return 0;
    if (kiln_tree_open(root, &t, err) < 0)
        return -1;
    r = read_workspaces(&t, &w, err);
    if (r <= 0)
        goto out;
    r = 0;
    for (size_t i = 0; i < w.n; i++)
        if (strcmp(w.p[i].path, sub) == 0)
            app = &w.p[i];
    if (app == NULL)
        goto out;
    need(&w, (size_t)(app - w.p));
    for (size_t i = 0; i < w.n; i++)
        if ((w.p[i].name && !shell_safe(w.p[i].name)) || !shell_safe(w.p[i].path)) {
            r = kiln_error_set(err, 0,
                               "workspace package %.80s (%.80s): a name or path with "
                               "characters other than letters, digits, @ / . _ -",
                               w.p[i].name ? w.p[i].name : "", w.p[i].path);
            goto out;
        }
    r = -1;
    /* the root's package manager half only: the root itself is no app (no start) */
    rp = kiln_plan_new();
    kiln_plan_set(&rp->workdir, plan->workdir);
    {
        kiln_detect_ctx_t ctx = {.tree = &t,
                                 .env = opts ? opts->env : NULL,
                                 .image_prefix = opts ? opts->image_prefix : NULL};
        int d = kiln_node_detect(&ctx, rp, err);
        if (d <= 0) {
            if (d == 0)
                kiln_error_set(err, 0, "%s: the workspace root has no package.json", root);
            goto out;
        }
    }
    if (take_root(&t, &w, rp, plan, err) < 0)
        goto out;
    build = build_command(&w, app, plan->package_manager, err);
    kiln_plan_set(&plan->build, build);
    /* the app's own paths move under its directory of the root context */
    under_app(&plan->output_dir, sub, NULL);
    if (plan->outputs & KILN_PLAN_OUT_FUNCTION)
        under_app(&plan->function_dir, sub, ".");
    /* run files (a framework's server output) are the app's: under its directory, but a
     * whole-tree one (Next.js's .next/standalone, traced from the workspace root) keeps
     * the repository's layout at the app dir: <sub>/server.js, started from <sub> below */
    for (size_t i = 0; i < plan->n_run_files; i++) {
        char *f = plan->run_files[i], *colon = strchr(f, ':');
        const char *dest = colon ? colon + 1 : NULL;
        plan->run_files[i] =
            dest && strcmp(dest, ".") == 0
                ? kiln_xasprintf("%s/%.*s:.", sub, (int)(colon - f), f)
                : kiln_xasprintf("%s/%.*s:%s/%s", sub, (int)(colon ? colon - f : (long)strlen(f)),
                                 f, sub, dest ? dest : f);
        free(f);
    }
    if (plan->start) {
        char *s = kiln_xasprintf("cd %s && %s", sub, plan->start);
        free(plan->start);
        plan->start = s;
    }
    cache_prefix = kiln_xasprintf("%s/", plan->workdir);
    for (size_t i = 0; i < plan->n_caches; i++) {
        size_t cl = strlen(cache_prefix);
        if (strncmp(plan->caches[i].target, cache_prefix, cl) == 0) {
            char *nt = kiln_xasprintf("%s%s/%s", cache_prefix, sub, plan->caches[i].target + cl);
            free(plan->caches[i].target);
            plan->caches[i].target = nt;
        }
    }
    kiln_plan_why(plan, KILN_WHY_INSTALL,
                  "%s is a package of the workspace at the repository root: %s installs there "
                  "with the root's lockfile",
                  sub, plan->package_manager);
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "the build scripts of %s and of the %zu workspace package(s) it depends on, "
                  "dependencies first; the %zu other package(s) are left out of the image",
                  sub, w.n_order - 1, w.n - w.n_order);
    kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                  "monorepo: the context is the repository root; %s is the app", sub);
    r = 1;
out:
    ws_free(&w);
    kiln_tree_close(&t);
    return r;
}
