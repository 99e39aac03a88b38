/* kiln — the commands of a monorepo build (see workspace_int.h): the app's build through
 * Turborepo, Nx or the package manager, and the production install that keeps only what
 * the app needs. Every name and path reaching a command was checked by workspace.c to
 * hold only [A-Za-z0-9@/._-] and no "..". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/workspace_int.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Where the tools keep their task caches: cache mounts, never in the image. */
#define TURBO_CACHE "/root/.cache/turbo"
#define NX_CACHE "/root/.cache/nx"

static bool has_dep(json_t *pkg, const char *name)
{
    return json_object_get(json_object_get(pkg, "dependencies"), name) != NULL ||
           json_object_get(json_object_get(pkg, "devDependencies"), name) != NULL;
}

/* A cache mount of the tool, with the project's id as detection gives the others. */
static int add_cache(kiln_plan_t *plan, const char *name, const char *target, kiln_error_t *err)
{
    if (kiln_plan_add_cache(plan, name, target, err) < 0)
        return -1;
    free(plan->caches[plan->n_caches - 1].id);
    plan->caches[plan->n_caches - 1].id =
        kiln_xasprintf("%s-%s", plan->project ? plan->project : "app", name);
    return 0;
}

static bool has_build(const kiln_ws_pkg_t *p)
{
    return json_is_string(json_object_get(json_object_get(p->pkg, "scripts"), "build"));
}

/* Appends a command, after " && " when b already holds one. */
__attribute__((format(printf, 2, 3))) static void then(kiln_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    kiln_buf_appendf(b, NULL, "%s%s", b->len > 0 ? " && " : "", s);
    free(s);
}

/* Turborepo: `turbo run build --filter=NAME...` builds the app and the workspace packages
 * it depends on (the trailing ... selects them), in the order turbo.json's dependsOn
 * gives. turbo is the root's own (a devDependency, installed with the rest) or, when the
 * root does not list it, fetched from the npm registry by npx. */
static int turbo_command(kiln_buf_t *b, const kiln_ws_t *w, const kiln_ws_pkg_t *app,
                         kiln_plan_t *plan, kiln_error_t *err)
{
    const char *bin = has_dep(w->root_pkg, "turbo") ? "npx --no-install turbo"
                      : w->turbo_v1                 ? "npx --yes turbo@1"
                                                    : "npx --yes turbo@2";
    /* Turborepo 2 wants packageManager at the root to find the workspaces; the lockfile
     * already told kiln which manager it is */
    bool no_pm = !json_is_string(json_object_get(w->root_pkg, "packageManager")) && !w->turbo_v1;

    kiln_buf_appendf(b, NULL, "%s run build --filter=%s... --cache-dir=%s%s", bin, app->name,
                     TURBO_CACHE, no_pm ? " --dangerously-disable-package-manager-check" : "");
    if (kiln_plan_setenv(plan, "TURBO_TELEMETRY_DISABLED", "1", err) < 0 ||
        add_cache(plan, "turbo", TURBO_CACHE, err) < 0)
        return -1;
    /* turbo's own state and each package's task logs stay out of the image */
    then(b, "rm -rf .turbo");
    for (size_t k = 0; k < w->n_order; k++)
        then(b, "rm -rf %s/.turbo", w->p[w->order[k]].path);
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "turbo.json at the workspace root: Turborepo builds %s and the workspace "
                  "packages it depends on (--filter=%s...)",
                  app->path, app->name);
    return 0;
}

/* Nx: `nx run PROJECT:build` (nx.json's targetDefaults decide whether the dependencies'
 * builds run first, as they do for the user). The project is the package's nx.name, else
 * its package.json name. */
static int nx_command(kiln_buf_t *b, const kiln_ws_t *w, const kiln_ws_pkg_t *app,
                      kiln_plan_t *plan, kiln_error_t *err)
{
    const char *project =
        json_string_value(json_object_get(json_object_get(app->pkg, "nx"), "name"));

    if (project == NULL ||
        strspn(project, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789@/._-") != strlen(project) ||
        strstr(project, "..") != NULL)
        project = app->name;
    kiln_buf_appendf(b, NULL, "npx --no-install nx run %s:build --outputStyle=static", project);
    (void)w;
    if (kiln_plan_setenv(plan, "NX_DAEMON", "false", err) < 0 ||
        kiln_plan_setenv(plan, "NX_NO_CLOUD", "true", err) < 0 ||
        kiln_plan_setenv(plan, "NX_CACHE_DIRECTORY", NX_CACHE, err) < 0 ||
        add_cache(plan, "nx", NX_CACHE, err) < 0)
        return -1;
    then(b, "rm -rf .nx");
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "nx.json at the workspace root: nx run %s:build (its targetDefaults decide "
                  "which dependencies build first)",
                  project);
    return 0;
}

char *kiln_ws_build_command(const kiln_ws_t *w, const kiln_ws_pkg_t *app, const char *pm,
                            kiln_plan_t *plan, kiln_error_t *err)
{
    kiln_buf_t b;
    bool any = false;

    kiln_buf_init(&b, 0);
    for (size_t k = 0; k < w->n_order; k++)
        any |= has_build(&w->p[w->order[k]]);
    if (any && w->tool == KILN_WS_TOOL_TURBO && app->name) {
        if (turbo_command(&b, w, app, plan, err) < 0)
            goto fail;
    } else if (any && w->tool == KILN_WS_TOOL_NX && app->name && has_dep(w->root_pkg, "nx")) {
        if (nx_command(&b, w, app, plan, err) < 0)
            goto fail;
    } else if (any && strcmp(pm, "pnpm") == 0 && app->name) {
        kiln_buf_appendf(&b, NULL, "pnpm --filter %s... run build", app->name);
    } else {
        for (size_t k = 0; k < w->n_order; k++) {
            const kiln_ws_pkg_t *p = &w->p[w->order[k]];
            if (!has_build(p))
                continue;
            if (strcmp(pm, "npm") == 0)
                then(&b, "npm run build -w %s", p->path);
            else if (strncmp(pm, "yarn", 4) == 0 && p->name)
                then(&b, "yarn workspace %s run build", p->name);
            else
                then(&b, "(cd %s && %s run build)", p->path,
                     strcmp(pm, "bun") == 0 ? "bun" : "npm");
        }
    }
    for (size_t i = 0; i < w->n; i++)
        if (!w->p[i].needed)
            then(&b, "rm -rf %s", w->p[i].path);
    if (b.len == 0) {
        kiln_buf_free(&b);
        return NULL;
    }
    return kiln_buf_steal(&b, NULL);
fail:
    kiln_buf_free(&b);
    return NULL;
}

/* Appends the node one-liner that narrows the root package.json's workspaces to the
 * needed packages (an array, or the packages of a {packages, nohoist} object), so that
 * yarn 1, which has no focus command, installs the production dependencies of the app
 * and its workspace packages only. */
static void narrow_workspaces(kiln_buf_t *b, const kiln_ws_t *w)
{
    kiln_buf_appendf(
        b, NULL,
        "node -e 'const f=require(\"fs\"),p=JSON.parse(f.readFileSync(\"package.json\"))"
        ",w=[");
    for (size_t i = 0, n = 0; i < w->n; i++)
        if (w->p[i].needed)
            kiln_buf_appendf(b, NULL, "%s\"%s\"", n++ ? "," : "", w->p[i].path);
    kiln_buf_appendf(b, NULL,
                     "];p.workspaces=Array.isArray(p.workspaces)?w:Object.assign(p.workspaces,"
                     "{packages:w});f.writeFileSync(\"package.json\",JSON.stringify(p))' && ");
}

char *kiln_ws_prune_command(const kiln_ws_t *w, const kiln_ws_pkg_t *app, const char *pm,
                            const kiln_plan_t *plan)
{
    kiln_buf_t b;
    bool frozen = plan->install &&
                  (strstr(plan->install, "--frozen-lockfile") || strstr(plan->install, "npm ci"));
    bool narrow = strcmp(pm, "yarn") == 0;

    if (!(strcmp(pm, "npm") == 0 || narrow || strcmp(pm, "bun") == 0 ||
          (strcmp(pm, "pnpm") == 0 && app->name) || (strcmp(pm, "yarn-berry") == 0 && app->name)))
        return NULL;
    kiln_buf_init(&b, 0);
    /* yarn's focus rewrites node_modules in place; npm, pnpm, yarn 1 and bun install
     * afresh, so the dev deps of the full install go first */
    if (strcmp(pm, "yarn-berry") != 0) {
        kiln_buf_appendf(&b, NULL, "rm -rf");
        for (size_t i = 0; i < plan->n_deps; i++)
            if (plan->deps[i][0] != '/')
                kiln_buf_appendf(&b, NULL, " %s", plan->deps[i]);
        kiln_buf_appendf(&b, NULL, " && ");
    }
    /* yarn 1 has no focus: the workspace is narrowed to the needed packages (the
     * lockfile then holds more than they need: it is not frozen for this install) */
    if (narrow)
        narrow_workspaces(&b, w);
    if (strcmp(pm, "npm") == 0)
        kiln_buf_appendf(&b, NULL,
                         "npm %s --omit=dev --include-workspace-root --no-audit --no-fund "
                         "--prefer-offline -w %s",
                         frozen ? "ci" : "install", app->path);
    else if (strcmp(pm, "pnpm") == 0) {
        kiln_buf_appendf(&b, NULL, "pnpm install --prod%s --prefer-offline --filter %s...",
                         frozen ? " --frozen-lockfile" : "", app->name);
        /* pnpm links every workspace package into its hoisted .pnpm/node_modules: the
         * links to the packages left out would dangle in the image */
        for (size_t i = 0; i < w->n; i++)
            if (!w->p[i].needed && w->p[i].name)
                kiln_buf_appendf(&b, NULL, " && rm -f node_modules/.pnpm/node_modules/%s",
                                 w->p[i].name);
    } else if (strcmp(pm, "yarn") == 0)
        kiln_buf_appendf(&b, NULL,
                         "yarn install --production --ignore-scripts --prefer-offline "
                         "--non-interactive");
    else if (strcmp(pm, "bun") == 0) {
        /* bun installs the packages its filters select (the root and the needed ones),
         * from the unchanged lockfile */
        kiln_buf_appendf(&b, NULL, "bun install --production --ignore-scripts --filter ./");
        for (size_t i = 0; i < w->n; i++)
            if (w->p[i].needed)
                kiln_buf_appendf(&b, NULL, " --filter ./%s", w->p[i].path);
    } else
        kiln_buf_appendf(&b, NULL, "yarn workspaces focus --production %s", app->name);
    return kiln_buf_steal(&b, NULL);
}
