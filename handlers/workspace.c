/* kiln — monorepos: the app of a Node workspace built from the repository root (see
 * workspace.h). */
#include "handlers/workspace.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "handlers/detect.h"
#include "handlers/kiln_json.h"
#include "handlers/words.h"
#include "handlers/workspace_int.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/pathres.h"

/* Most directories read expanding a root's workspace patterns ("**" included), how deep
 * a "**" goes, and the wildcards one pattern component may hold (fnmatch stays linear). */
#define MAX_WALKED 16384
#define MAX_GLOBSTAR_DEPTH 6
#define MAX_STARS 4

typedef struct walk {
    const kiln_tree_t *t;
    kiln_ws_t *w;
    kiln_plan_t *plan;
    const char *pattern; /* as written, for messages */
} walk_t;

static void ws_free(kiln_ws_t *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->p[i].path);
        free(w->p[i].name);
        json_decref(w->p[i].pkg);
    }
    json_decref(w->root_pkg);
    free(w);
}

static void ws_freep(kiln_ws_t **w)
{
    ws_free(*w);
}

/* A workspace path as a shell word: [A-Za-z0-9@/._-] only, no "..", no leading '-'. */
static bool shell_safe(const char *s)
{
    if (s[0] == '\0' || s[0] == '-' || strstr(s, "..") != NULL)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("@/._-", *p))
            return false;
    return true;
}

/* A package name kiln puts in a command: npm's form, "name" or "@scope/name" (one slash,
 * only after a scope), of shell-safe characters, not starting with '.'. */
static bool name_safe(const char *s)
{
    const char *slash = strchr(s, '/');

    if (!shell_safe(s) || s[0] == '.' || strlen(s) > 214)
        return false;
    if (slash == NULL)
        return s[0] != '@';
    return s[0] == '@' && slash > s + 1 && slash[1] != '\0' && slash[1] != '.' &&
           strchr(slash + 1, '/') == NULL;
}

/* A plan note, when the plan still has room for one (the notes explain; they never fail). */
#define note(plan, ...) ((void)kiln_plan_add((plan)->notes, &(plan)->n_notes, NULL, __VA_ARGS__))

/* 1 when `path` is a real directory of the tree (itself no symlink: the walk checks each
 * component as it descends), 0 when not, -1 (with a note) when it is a symlink. */
static int real_dir(const walk_t *k, const char *path)
{
    _cleanup_close_ int fd = kiln_pathres_openat(k->t->fd, path, O_PATH | O_NOFOLLOW);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0)
        return 0;
    if (S_ISLNK(st.st_mode)) {
        note(k->plan,
             "workspace pattern \"%.80s\": %.120s ignored, a symlink (workspace packages are "
             "directories of the repository)",
             k->pattern, path);
        return -1;
    }
    return S_ISDIR(st.st_mode) ? 1 : 0;
}

/* Adds the package at `path` when it holds a package.json. */
static int add_package(const walk_t *k, const char *path, kiln_error_t *err)
{
    _cleanup_free_ char *file = kiln_xasprintf("%s/package.json", path), *text = NULL;
    kiln_ws_t *w = k->w;
    json_error_t jerr;
    json_t *pkg, *name;
    int r;

    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->p[i].path, path) == 0)
            return 0;
    if ((r = kiln_tree_read(k->t, file, &text, err)) <= 0)
        return r;
    if (w->n == KILN_WS_MAX_PACKAGES)
        return kiln_error_set(err, ENOBUFS,
                              "the workspace at the repository root has more than %d packages "
                              "(pattern \"%.80s\"): kiln copies at most %d workspace manifests "
                              "before the install; narrow the workspace patterns or build with "
                              "a Dockerfile",
                              KILN_WS_MAX_PACKAGES, k->pattern, KILN_WS_MAX_PACKAGES);
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

/* The sorted subdirectories of `dir` ("" for the root) a wildcard may match: neither
 * node_modules nor hidden ones. NULL (err set) when the walk is over its bound. */
static char **subdirs(const walk_t *k, const char *dir, kiln_error_t *err)
{
    char **names;

    if (++k->w->dirs_walked > MAX_WALKED) {
        kiln_error_set(err, 0,
                       "workspace pattern \"%.80s\": more than %d directories to look through; "
                       "name the package directories (\"apps/*\") instead",
                       k->pattern, MAX_WALKED);
        return NULL;
    }
    names = kiln_tree_list(k->t, dir[0] ? dir : ".", KILN_WS_MAX_PACKAGES * 4, err);
    if (names == NULL)
        return NULL;
    for (size_t i = 0; names[i]; i++)
        if (names[i][0] == '.' || strcmp(names[i], "node_modules") == 0)
            names[i][0] = '\0';
    return names;
}

static void free_names(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

/* Expands the pattern components `rest` ("*" + "/lib", "**", "apps") below `dir`. */
static int walk(const walk_t *k, const char *dir, const char *rest, int depth, kiln_error_t *err)
{
    _cleanup_free_ char *seg = NULL;
    const char *next;
    char **names;
    int r = 0;

    while (*rest == '/')
        rest++;
    if (*rest == '\0')
        return dir[0] ? add_package(k, dir, err) : 0;
    seg = kiln_xstrndup(rest, strcspn(rest, "/"));
    next = rest + strlen(seg);
    if (strcmp(seg, ".") == 0)
        return walk(k, dir, next, depth, err);
    if (strpbrk(seg, "*?[") == NULL) {
        _cleanup_free_ char *sub = dir[0] ? kiln_xasprintf("%s/%s", dir, seg) : kiln_xstrdup(seg);
        return real_dir(k, sub) == 1 ? walk(k, sub, next, depth, err) : 0;
    }
    /* "**" + "/" + "**" is one "**" (else each would multiply the walk) */
    while (strcmp(seg, "**") == 0 && strncmp(next, "/**", 3) == 0 && (next[3] == '/' || !next[3]))
        next += 3;
    if (strcmp(seg, "**") == 0 && (r = walk(k, dir, next, depth, err)) < 0)
        return -1;
    if (strcmp(seg, "**") == 0 && depth >= MAX_GLOBSTAR_DEPTH)
        return 0;
    if ((names = subdirs(k, dir, err)) == NULL)
        return -1;
    for (size_t i = 0; r == 0 && names[i]; i++) {
        _cleanup_free_ char *sub = NULL;
        if (names[i][0] == '\0' ||
            (strcmp(seg, "**") != 0 && fnmatch(seg, names[i], FNM_PERIOD) != 0))
            continue;
        sub = dir[0] ? kiln_xasprintf("%s/%s", dir, names[i]) : kiln_xstrdup(names[i]);
        if (real_dir(k, sub) != 1)
            continue;
        /* "**" stays to match deeper directories too */
        r = strcmp(seg, "**") == 0 ? walk(k, sub, rest, depth + 1, err)
                                   : walk(k, sub, next, depth, err);
    }
    free_names(names);
    return r;
}

/* Expands one workspace pattern: literal directories, "*", "?", "[...]" within a
 * component and "**" across them. A pattern leaving the repository ("..", an absolute
 * path) or too wild is ignored with a note; "!x" exclusions are not applied (the
 * excluded packages are only looked at). */
static int expand_pattern(const kiln_tree_t *t, kiln_ws_t *w, kiln_plan_t *plan, const char *pat,
                          kiln_error_t *err)
{
    walk_t k = {.t = t, .w = w, .plan = plan, .pattern = pat};
    const char *why = NULL;
    size_t stars = 0;

    for (const char *p = pat; *p; p++)
        stars += *p == '*';
    if (pat[0] == '!')
        return 0;
    if (pat[0] == '/')
        why = "an absolute path";
    else if (strcmp(pat, "..") == 0 || strncmp(pat, "../", 3) == 0 || strstr(pat, "/../") ||
             (strlen(pat) >= 3 && strcmp(pat + strlen(pat) - 3, "/..") == 0))
        why = "it leaves the repository (\"..\")";
    else if (strlen(pat) > 256 || stars > MAX_STARS * 2 || strpbrk(pat, "{}\\") != NULL)
        why = "too long, too many wildcards, or braces/backslashes kiln does not expand";
    if (why != NULL) {
        note(plan, "workspace pattern \"%.80s\" ignored: %s", pat, why);
        return 0;
    }
    return walk(&k, "", pat, 0, err);
}

/* The `packages:` list of pnpm-workspace.yaml (block items, quoted or bare). */
static int pnpm_patterns(const kiln_tree_t *t, kiln_ws_t *w, kiln_plan_t *plan, const char *text,
                         kiln_error_t *err)
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
        if (*s != '\0' && expand_pattern(t, w, plan, s, err) < 0)
            return -1;
    }
    return 0;
}

/* Reads the workspace patterns of the root: package.json "workspaces" (a list, or
 * {"packages": [...]}) and pnpm-workspace.yaml; and which tool (turbo.json, nx.json)
 * runs its tasks. Returns 1 when the root has any. */
static int read_workspaces(const kiln_tree_t *t, kiln_ws_t *w, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL, *yaml = NULL, *turbo = NULL;
    json_t *ws, *v;
    size_t i;
    int r, found = 0;

    if ((r = kiln_tree_read(t, "package.json", &text, err)) < 0)
        return -1;
    if (r > 0 && (w->root_pkg = json_loads(text, 0, NULL)) != NULL) {
        ws = json_object_get(w->root_pkg, "workspaces");
        if (json_is_object(ws))
            ws = json_object_get(ws, "packages");
        json_array_foreach(ws, i, v)
        {
            found = 1;
            if (json_is_string(v) && expand_pattern(t, w, plan, json_string_value(v), err) < 0)
                return -1;
        }
    }
    if ((r = kiln_tree_read(t, "pnpm-workspace.yaml", &yaml, err)) < 0)
        return -1;
    if (r > 0) {
        found = 1;
        if (pnpm_patterns(t, w, plan, yaml, err) < 0)
            return -1;
    }
    if ((r = kiln_tree_read(t, "turbo.json", &turbo, err)) < 0)
        return -1;
    if (r > 0) {
        json_auto_t *tj = json_loads(turbo, JSON_ALLOW_NUL, NULL);
        w->tool = KILN_WS_TOOL_TURBO;
        w->turbo_v1 = json_object_get(tj, "pipeline") != NULL;
    } else if (kiln_tree_is_file(t, "nx.json")) {
        w->tool = KILN_WS_TOOL_NX;
    }
    return found;
}

/* Marks package i and the workspace packages it depends on (dependencies,
 * devDependencies), appending them to the build order after their own dependencies. */
static void need(kiln_ws_t *w, size_t i)
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
static int take_root(const kiln_tree_t *t, const kiln_ws_t *w, const kiln_plan_t *rp,
                     kiln_plan_t *plan, kiln_error_t *err)
{
    /* the package managers' config files came with the root's plan (handlers/node_pm) */
    static const char *const extra[] = {"turbo.json", "nx.json"};

    kiln_plan_set(&plan->package_manager, rp->package_manager);
    if (rp->why[KILN_WHY_PACKAGE_MANAGER])
        kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "at the workspace root: %s",
                      rp->why[KILN_WHY_PACKAGE_MANAGER]);
    kiln_plan_set(&plan->setup, rp->setup);
    /* the root's package manager (bun, pnpm, yarn) joins the toolchain as it would for the
     * root */
    kiln_plan_tool_set(&plan->toolchain.with, &rp->toolchain.with);
    kiln_plan_set(&plan->install, rp->install);
    kiln_plan_set(&plan->prune, rp->prune);
    for (size_t i = 0; i < plan->n_manifests; i++)
        free(plan->manifests[i]);
    plan->n_manifests = 0;
    for (size_t i = 0; i < rp->n_manifests; i++)
        if (kiln_plan_add_path(plan->manifests, &plan->n_manifests, err, "%s", rp->manifests[i]) <
            0)
            return -1;
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        bool dup = false;
        for (size_t j = 0; j < plan->n_manifests; j++)
            dup |= strcmp(plan->manifests[j], extra[i]) == 0;
        if (!dup && (kiln_tree_is_file(t, extra[i]) || kiln_tree_is_dir(t, extra[i])) &&
            kiln_plan_add_path(plan->manifests, &plan->n_manifests, err, "%s", extra[i]) < 0)
            return -1;
    }
    for (size_t i = 0; i < w->n; i++)
        if (kiln_plan_add_path(plan->manifests, &plan->n_manifests, err, "%s/package.json",
                               w->p[i].path) < 0)
            return kiln_error_prefix(err, "workspace manifests (at most %d files)",
                                     KILN_PLAN_MAX_PATHS);
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

/* The app's start command expanded again now that the root's package manager runs it (a
 * bun workspace's app whose start script runs bun keeps bun), with the npm variables of
 * the app's package.json at its directory. */
static int app_start(const kiln_tree_t *t, const char *sub, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/package.json", sub), *text = NULL;
    _cleanup_free_ char *dir = kiln_xasprintf("%s/%s", plan->workdir, sub);
    json_auto_t *pkg = NULL;
    int r = kiln_tree_read(t, path, &text, err);

    if (r <= 0)
        return r;
    pkg = json_loads(text, 0, NULL);
    return kiln_node_start_redo(pkg, dir, plan, err);
}

/* True when `src` (a plan's version_source) is a version manager's pin file. */
static bool pin_file(const char *src)
{
    return src && (strcmp(src, ".nvmrc") == 0 || strcmp(src, ".node-version") == 0 ||
                   strcmp(src, ".tool-versions") == 0);
}

/* The Node version of the root when the app names none of its own: the root's .nvmrc /
 * .node-version / .tool-versions over the app's volta/engines (a pin beats a
 * compatibility range, as it does within one package), and anything the root says
 * over the default. */
static void take_root_version(const kiln_plan_t *rp, kiln_plan_t *plan)
{
    const char *app = plan->version_source, *root = rp->version_source;

    if (root == NULL || strcmp(root, "default") == 0 || pin_file(app) ||
        (app && (strcmp(app, "KILN_NODE_VERSION") == 0 || strcmp(app, "kiln.json") == 0)))
        return;
    if (app != NULL && strcmp(app, "default") != 0 && !pin_file(root))
        return;
    kiln_plan_set(&plan->version, rp->version);
    plan->version_source = kiln_xasprintf("%s at the workspace root", root);
    free((void *)app);
    kiln_plan_set(&plan->toolchain.version, rp->toolchain.version);
    if (rp->why[KILN_WHY_VERSION])
        kiln_plan_why(plan, KILN_WHY_VERSION, "the workspace root's %s", rp->why[KILN_WHY_VERSION]);
    note(plan, "Node %s from the workspace root's %s (the app names no version of its own)",
         rp->version, root);
}

/* The app's node_modules and each needed package's go with the deps (a pnpm workspace
 * links each package's own; npm nests the versions that differ from the root's). */
static int add_package_deps(const kiln_ws_t *w, kiln_plan_t *plan, kiln_error_t *err)
{
    for (size_t k = 0; k < w->n_order; k++)
        if (kiln_plan_add_path(plan->deps, &plan->n_deps, err, "%s/node_modules",
                               w->p[w->order[k]].path) < 0)
            return -1;
    return 0;
}

/* Refuses a package whose path or name cannot go into a command: the paths of all (the
 * build removes the ones not needed), the names of the needed ones; the name of a
 * package not needed is only dropped, with a note. */
static int check_names(kiln_ws_t *w, kiln_plan_t *plan, kiln_error_t *err)
{
    for (size_t i = 0; i < w->n; i++) {
        kiln_ws_pkg_t *p = &w->p[i];
        if (!shell_safe(p->path))
            return kiln_error_set(err, 0,
                                  "workspace package at %.80s: a path with characters other than "
                                  "letters, digits, @ / . _ - (rename the directory)",
                                  p->path);
        if (p->name == NULL || name_safe(p->name))
            continue;
        if (p->needed)
            return kiln_error_set(err, 0,
                                  "workspace package %.80s: package.json name \"%.80s\" is not an "
                                  "npm package name (name or @scope/name of letters, digits, . _ "
                                  "-, without \"..\")",
                                  p->path, p->name);
        note(plan,
             "workspace package %.80s: its name \"%.80s\" is not an npm package name "
             "(ignored)",
             p->path, p->name);
        free(p->name);
        p->name = NULL;
    }
    return 0;
}

/* The app's kiln.json install/build and KILN_INSTALL_CMD / KILN_BUILD_CMD stay the user's
 * choice over the workspace's commands (detection applied them before the workspace was
 * seen); they run at the repository root, where the workspace's own would. */
static int keep_overrides(const char *root, const char *sub, const kiln_detect_opts_t *opts,
                          kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *dir = kiln_xasprintf("%s/%s", root, sub);
    kiln_tree_t at = {.fd = -1};
    kiln_detect_ctx_t ctx = {.tree = &at, .env = opts ? opts->env : NULL};
    kiln_overrides_t o;
    int r;

    if (kiln_tree_open(dir, &at, err) < 0)
        return -1;
    r = kiln_overrides_load(&ctx, &o, err);
    kiln_tree_close(&at);
    if (r < 0)
        return -1;
    if (o.install) {
        kiln_plan_set(&plan->install, o.install);
        kiln_plan_why(plan, KILN_WHY_INSTALL,
                      "set by the user (kiln.json or KILN_INSTALL_CMD), "
                      "run at the workspace root");
    }
    if (o.build) {
        kiln_plan_set(&plan->build, o.build);
        kiln_plan_why(plan, KILN_WHY_BUILD,
                      "set by the user (kiln.json or KILN_BUILD_CMD), run "
                      "at the workspace root");
    }
    kiln_overrides_free(&o);
    return 0;
}

int kiln_workspace_apply(const char *root, const char *subdir, const kiln_detect_opts_t *opts,
                         kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *sub = NULL, *build = NULL, *cache_prefix = NULL, *prune = NULL;
    _cleanup_plan_ kiln_plan_t *rp = NULL;
    kiln_tree_t t = {.fd = -1};
    kiln_ws_t *w __attribute__((cleanup(ws_freep))) = NULL;
    kiln_ws_pkg_t *app = NULL;
    int r;

    if (subdir == NULL || plan->provider == NULL || strcmp(plan->provider, "node") != 0)
        return 0;
    if ((sub = kiln_words_subdir(subdir)) == NULL)
        return 0;
    if (kiln_tree_open(root, &t, err) < 0)
        return -1;
    w = kiln_xzalloc(sizeof(*w));
    r = read_workspaces(&t, w, plan, err);
    if (r <= 0)
        goto out;
    r = 0;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->p[i].path, sub) == 0)
            app = &w->p[i];
    if (app == NULL)
        goto out;
    need(w, (size_t)(app - w->p));
    r = -1;
    if (check_names(w, plan, err) < 0)
        goto out;
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
    if (take_root(&t, w, rp, plan, err) < 0 || add_package_deps(w, plan, err) < 0 ||
        app_start(&t, sub, plan, err) < 0)
        goto out;
    take_root_version(rp, plan);
    /* Turborepo's and Nx's commands give their own reason */
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "the build scripts of %s and of the %zu workspace package(s) it depends on, "
                  "dependencies first; the %zu other package(s) are left out of the image",
                  sub, w->n_order - 1, w->n - w->n_order);
    build = kiln_ws_build_command(w, app, plan->package_manager, plan, err);
    if (build == NULL && kiln_error_is_set(err))
        goto out;
    kiln_plan_set(&plan->build, build);
    prune = kiln_ws_prune_command(w, app, plan->package_manager, plan);
    if (prune != NULL)
        kiln_plan_set(&plan->prune, prune);
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
    /* the app's own executables first on the run image's PATH, then the root's hoisted ones */
    for (size_t i = 0; i < plan->n_run_env; i++)
        if (strncmp(plan->run_env[i], "PATH=", 5) == 0) {
            char *e = kiln_xasprintf("PATH=%s/%s/node_modules/.bin:%s", plan->workdir, sub,
                                     plan->run_env[i] + 5);
            free(plan->run_env[i]);
            plan->run_env[i] = e;
        }
    cache_prefix = kiln_xasprintf("%s/", plan->workdir);
    for (size_t i = 0; i < plan->n_caches; i++) {
        size_t cl = strlen(cache_prefix);
        if (strncmp(plan->caches[i].target, cache_prefix, cl) == 0 &&
            strncmp(plan->caches[i].target + cl, sub, strlen(sub)) != 0) {
            char *nt = kiln_xasprintf("%s%s/%s", cache_prefix, sub, plan->caches[i].target + cl);
            free(plan->caches[i].target);
            plan->caches[i].target = nt;
        }
    }
    kiln_plan_why(plan, KILN_WHY_INSTALL,
                  "%s is a package of the workspace at the repository root: %s installs there "
                  "with the root's lockfile; the image keeps the production dependencies of %s "
                  "and its workspace dependencies only",
                  sub, plan->package_manager, sub);
    if (keep_overrides(root, sub, opts, plan, err) < 0)
        goto out;
    note(plan, "monorepo: the context is the repository root; %s is the app", sub);
    r = 1;
out:
    kiln_tree_close(&t);
    return r;
}
