/* kiln — Node frameworks: what a package.json's framework builds and how it runs (see
 * node_framework.h). */
#include "handlers/node_framework.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/node_lambda.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Longest config value read (a dir name, a mode, a preset). */
#define CONFIG_VALUE_MAX 128

bool kiln_node_has_dep(json_t *pkg, const char *name)
{
    return json_object_get(json_object_get(pkg, "dependencies"), name) != NULL ||
           json_object_get(json_object_get(pkg, "devDependencies"), name) != NULL;
}

const char *kiln_node_script(json_t *pkg, const char *name)
{
    json_t *s = json_object_get(json_object_get(pkg, "scripts"), name);
    return json_is_string(s) ? json_string_value(s) : NULL;
}

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* When `p` starts `key: VALUE` (the key bare or quoted), the value (malloc'ed): a quoted
 * string's text, or a bare word (true, false, an identifier); else NULL. */
static char *option_at(const char *p, const char *key)
{
    size_t kl = strlen(key), n;
    const char *q = p;

    if (*q == '"' || *q == '\'')
        q++;
    if (strncmp(q, key, kl) != 0)
        return NULL;
    q += kl;
    if (p[0] == '"' || p[0] == '\'') {
        if (*q != p[0])
            return NULL;
        q++;
    } else if (isalnum((unsigned char)*q) || *q == '_' || *q == '$') {
        return NULL;
    }
    while (space(*q))
        q++;
    if (*q++ != ':')
        return NULL;
    while (space(*q))
        q++;
    if (*q == '\'' || *q == '"' || *q == '`') {
        n = strcspn(q + 1, (char[]){*q, '\n', '\\', '\0'});
        if (q[1 + n] != *q || n > CONFIG_VALUE_MAX)
            return NULL;
        return kiln_xstrndup(q + 1, n);
    }
    for (n = 0; isalnum((unsigned char)q[n]) || q[n] == '_' || q[n] == '$'; n++)
        ;
    return n > 0 && n <= CONFIG_VALUE_MAX ? kiln_xstrndup(q, n) : NULL;
}

/* The value of the first `key: VALUE` of a JavaScript/TypeScript config outside comments
 * and strings (a commented-out option is not taken for one), malloc'ed, or NULL. Configs
 * are code: this reads the literal options frameworks document, not computed ones. */
char *kiln_node_config_option(const char *text, const char *key)
{
    char quote = 0;

    for (const char *p = text; p && *p; p++) {
        char *v;
        if (quote) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            else if (*p == quote)
                quote = 0;
        } else if (p[0] == '/' && p[1] == '/') {
            p += strcspn(p, "\n");
            if (*p == '\0')
                break;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (end == NULL)
                break;
            p = end + 1;
        } else if ((p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '$' ||
                                   p[-1] == '.')) &&
                   (v = option_at(p, key)) != NULL) {
            return v;
        } else if (*p == '"' || *p == '\'' || *p == '`') {
            quote = *p;
        }
    }
    return NULL;
}

/* Reads the first of BASE.js/.mjs/.ts/.cjs/.mts in the tree into *text and names it in
 * *name (static storage). Returns 1, 0 when there is none, -1 on a read error. */
static int read_config(const kiln_detect_ctx_t *ctx, const char *base, char **text,
                       const char **name, kiln_error_t *err)
{
    static const char *const exts[] = {"js", "mjs", "ts", "cjs", "mts"};
    static char found[64];

    *text = NULL;
    *name = NULL;
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        int r;
        snprintf(found, sizeof(found), "%s.%s", base, exts[i]);
        r = kiln_tree_read(ctx->tree, found, text, err);
        if (r < 0)
            return -1;
        if (r > 0) {
            *name = found;
            return 1;
        }
    }
    return 0;
}

/* The value of option `key` in the first BASE.* config (malloc'ed) and that config's
 * name in *name; NULL when there is no config or no such literal option. -1 in *rc on a
 * read error. */
static char *config_option(const kiln_detect_ctx_t *ctx, const char *base, const char *key,
                           const char **name, int *rc, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;

    *rc = read_config(ctx, base, &text, name, err);
    return *rc > 0 ? kiln_node_config_option(text, key) : NULL;
}

/* A static site in `dir`, and why. */
static void as_static(kiln_plan_t *plan, const char *dir, const char *why)
{
    plan->outputs = KILN_PLAN_OUT_STATIC;
    kiln_plan_set(&plan->output_dir, dir);
    kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                  "%s static build: the site is the %s/ directory", plan->framework, dir);
    kiln_plan_why(plan, KILN_WHY_OUTPUT, "%s", why);
}

/* A server image started by `start`, and why (NULL start: no way to start it, and why not). */
static void as_server(kiln_plan_t *plan, const char *start, const char *why)
{
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    kiln_plan_set(&plan->start, start);
    kiln_plan_why(plan, KILN_WHY_START, "%s", why);
    kiln_plan_why(plan, KILN_WHY_OUTPUT, "%s builds a server: an image runs it",
                  plan->framework ? plan->framework : "the app");
}

/* The run image of a server build that imports its production dependencies from
 * node_modules: the build's output directory `dir` (and `more`, when the tree has it),
 * package.json (its "type": "module" and name) and the pruned node_modules, nothing else
 * of the app dir (no source, no lockfile, no build cache). Returns 0 or -1. */
static int output_and_deps(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, const char *dir,
                           const char *more, kiln_error_t *err)
{
    if (kiln_plan_add(plan->run_files, &plan->n_run_files, err, "%s", dir) < 0 ||
        (more != NULL && kiln_tree_is_dir(ctx->tree, more) &&
         kiln_plan_add(plan->run_files, &plan->n_run_files, err, "%s", more) < 0) ||
        kiln_plan_add(plan->run_files, &plan->n_run_files, err, "package.json") < 0)
        return -1;
    plan->run_deps = true;
    return 0;
}

/* The port's reason for a server `what` that reads $PORT (NULL: an app that should), and
 * the host variable `host`, set to 0.0.0.0 so that it answers from outside the container. */
static int listens_on_port(kiln_plan_t *plan, const char *what, const char *host, kiln_error_t *err)
{
    if (host != NULL && kiln_plan_setenv(plan, host, "0.0.0.0", err) < 0)
        return -1;
    if (what == NULL)
        kiln_plan_why(plan, KILN_WHY_PORT,
                      "kiln sets $PORT to 8080, its server port, for the app to listen on "
                      "(kiln.json \"port\" or KILN_PORT change it)");
    else
        kiln_plan_why(plan, KILN_WHY_PORT,
                      "%s listens on $PORT%s%s%s: kiln sets it to 8080, its server port "
                      "(kiln.json \"port\" or KILN_PORT change it)",
                      what, host ? " (and $" : "", host ? host : "", host ? "=0.0.0.0)" : "");
    return 0;
}

/* The build command when package.json has none: the framework's own. */
static void default_build(kiln_plan_t *plan, const char *cli)
{
    if (plan->build != NULL)
        return;
    plan->build = kiln_xasprintf("node_modules/.bin/%s", cli);
    kiln_plan_why(plan, KILN_WHY_BUILD, "package.json has no scripts.build: %s, %s's own", cli,
                  plan->framework);
}

/* "npm start" when package.json has a start script (npm runs it in the run image, which
 * has no pnpm, yarn or bun), with its reason. Returns true when it had one. */
static bool start_script(json_t *pkg, kiln_plan_t *plan)
{
    const char *s = kiln_node_script(pkg, "start");

    if (s == NULL)
        return false;
    as_server(plan, "npm start", "");
    kiln_plan_why(plan, KILN_WHY_START, "package.json scripts.start: %.200s", s);
    return true;
}

/* package.json main without "./" (NULL when absent or unfit for a shell word). */
static const char *main_of(json_t *pkg)
{
    const char *m = json_string_value(json_object_get(pkg, "main"));

    if (m == NULL || m[0] == '\0' || m[0] == '/' || strstr(m, "..") != NULL)
        return NULL;
    for (const char *c = m; *c; c++)
        if (!isalnum((unsigned char)*c) && strchr("./_-@", *c) == NULL)
            return NULL;
    return strncmp(m, "./", 2) == 0 ? m + 2 : m;
}

/* A server without a framework that says how to start it (Express, Fastify, Koa, a
 * plain http server): scripts.start, then package.json main, then server.js, then
 * index.js (npm's default main). */
static void generic_start(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan)
{
    const char *m = main_of(pkg);
    _cleanup_free_ char *cmd = NULL;

    if (start_script(pkg, plan))
        return;
    if (m != NULL && (kiln_tree_is_file(ctx->tree, m) || plan->build != NULL)) {
        cmd = kiln_xasprintf("node %s", m);
        as_server(plan, cmd, "");
        kiln_plan_why(plan, KILN_WHY_START, "no scripts.start; package.json main is %s%s", m,
                      kiln_tree_is_file(ctx->tree, m) ? "" : " (made by the build)");
    } else if (kiln_tree_is_file(ctx->tree, "server.js")) {
        as_server(plan, "node server.js", "no scripts.start and no main; server.js is there");
    } else if (kiln_tree_is_file(ctx->tree, "index.js")) {
        as_server(plan, "node index.js",
                  "no scripts.start, no main, no server.js; index.js is there (npm's default "
                  "main)");
    } else {
        as_server(plan, NULL,
                  "package.json has no scripts.start and no main, and there is no server.js or "
                  "index.js");
    }
}

/* The handler a function output would use: package.json main, else index.* or handler.*
 * (Lambda calls its `handler` export). Left unset when there is none. */
static void function_handler(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan)
{
    static const char *const files[] = {"index.mjs",   "index.js",   "index.cjs",
                                        "handler.mjs", "handler.js", "handler.cjs"};
    const char *m = main_of(pkg), *dot;

    if (m != NULL && (kiln_tree_is_file(ctx->tree, m) || plan->build != NULL) &&
        (dot = strrchr(m, '.')) != NULL && strchr(dot, '/') == NULL) {
        plan->handler = kiln_xasprintf("%.*s.handler", (int)(dot - m), m);
        kiln_plan_why(plan, KILN_WHY_HANDLER, "package.json main %s: its handler export", m);
        return;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (kiln_tree_is_file(ctx->tree, files[i])) {
            plan->handler = kiln_xasprintf("%.*s.handler", (int)strcspn(files[i], "."), files[i]);
            kiln_plan_why(plan, KILN_WHY_HANDLER,
                          "no package.json main; %s is there: its handler export", files[i]);
            return;
        }
}

/* Next.js: output 'export' (a site), 'standalone' (a self-contained server) or neither
 * (next start). */
static int fw_next(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *conf = NULL;
    int rc;
    _cleanup_free_ char *out = config_option(ctx, "next.config", "output", &conf, &rc, err);
    _cleanup_free_ char *next_cache = kiln_xasprintf("%s/.next/cache", plan->workdir);

    if (rc < 0)
        return -1;
    /* next build would otherwise announce (and try to send) telemetry; its own cache
     * makes a rebuild after an app change fast and stays out of the image and the site */
    if (kiln_plan_setenv(plan, "NEXT_TELEMETRY_DISABLED", "1", err) < 0 ||
        kiln_plan_add_cache(plan, "next", next_cache, err) < 0)
        return -1;
    default_build(plan, "next build");
    if (out && strcmp(out, "export") == 0) {
        _cleanup_free_ char *why = kiln_xasprintf(
            "%s sets output: 'export': next build writes a static site to out/", conf);
        as_static(plan, "out", why);
        return 0;
    }
    if (out && strcmp(out, "standalone") == 0) {
        _cleanup_free_ char *why = kiln_xasprintf(
            "%s sets output: 'standalone': next build writes a self-contained server "
            "(.next/standalone/server.js and the node_modules it traced); the image holds it, "
            ".next/static%s beside it, nothing else",
            conf, kiln_tree_is_dir(ctx->tree, "public") ? " and public/" : "");
        as_server(plan, "node server.js", why);
        if (kiln_plan_add(plan->run_files, &plan->n_run_files, err, ".next/standalone:.") < 0 ||
            kiln_plan_add(plan->run_files, &plan->n_run_files, err, ".next/static:.next/static") <
                0 ||
            (kiln_tree_is_dir(ctx->tree, "public") &&
             kiln_plan_add(plan->run_files, &plan->n_run_files, err, "public:public") < 0))
            return -1;
        return listens_on_port(plan, "server.js", "HOSTNAME", err);
    }
    if (!start_script(pkg, plan)) {
        as_server(plan, "node_modules/.bin/next start", "");
        kiln_plan_why(plan, KILN_WHY_START,
                      "no scripts.start: next start serves the .next build (%s sets no output: "
                      "'standalone', which would make a smaller image)",
                      conf ? conf : "no next.config");
    }
    return listens_on_port(plan, "next start", NULL, err);
}

/* Nuxt (and Nitro on its own): .output/server/index.mjs, a server bundling its deps;
 * `nuxt generate` makes a site. */
static int fw_nuxt(json_t *pkg, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *b = kiln_node_script(pkg, "build");
    bool nuxt = strcmp(plan->framework, "nuxt") == 0;

    if (nuxt && b != NULL && strstr(b, "nuxt generate") != NULL) {
        as_static(plan, ".output/public",
                  "package.json scripts.build runs nuxt generate: a static site in "
                  ".output/public/");
        return 0;
    }
    default_build(plan, nuxt ? "nuxt build" : "nitro build");
    as_server(plan, "node .output/server/index.mjs",
              nuxt ? "nuxt build writes a Nitro server to .output/ with the node_modules it "
                     "needs: the image holds .output only and runs .output/server/index.mjs"
                   : "nitro build writes a server to .output/ with the node_modules it needs: "
                     "the image holds .output only and runs .output/server/index.mjs");
    if (kiln_plan_add(plan->run_files, &plan->n_run_files, err, ".output:.output") < 0)
        return -1;
    return listens_on_port(plan, "the Nitro server", NULL, err);
}

/* React Router 7 (framework mode) and Remix: their serve CLI on the server build;
 * React Router with ssr: false builds a site. */
static int fw_remix(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan, kiln_error_t *err)
{
    bool rr = strcmp(plan->framework, "react-router") == 0;
    const char *conf = NULL, *serve = rr ? "@react-router/serve" : "@remix-run/serve", *start;
    const char *entry =
        rr || kiln_node_has_dep(pkg, "vite") ? "build/server/index.js" : "build/index.js";
    int rc = 0;
    _cleanup_free_ char *ssr =
        rr ? config_option(ctx, "react-router.config", "ssr", &conf, &rc, err) : NULL;
    _cleanup_free_ char *cmd = NULL, *why = NULL;

    if (rc < 0)
        return -1;
    if (ssr && strcmp(ssr, "false") == 0) {
        why = kiln_xasprintf("%s sets ssr: false: react-router build writes a single-page "
                             "app to build/client/",
                             conf);
        as_static(plan, "build/client", why);
        return 0;
    }
    if (!start_script(pkg, plan)) {
        if (kiln_node_has_dep(pkg, serve)) {
            cmd = kiln_xasprintf("node_modules/.bin/%s %s",
                                 rr ? "react-router-serve" : "remix-serve", entry);
            why = kiln_xasprintf("no scripts.start: %s (package.json depends on %s) serves the "
                                 "server build %s",
                                 rr ? "react-router-serve" : "remix-serve", serve, entry);
        } else {
            why = kiln_xasprintf("no scripts.start and no %s to serve %s: add one of them", serve,
                                 entry);
        }
        as_server(plan, cmd, why);
    }
    /* the serve CLI needs the build, package.json and the production deps (Remix's classic
     * compiler also serves public/build); a start script of the app's own (a custom
     * server.js) may need any of its files: the app dir stays whole */
    start = kiln_node_script(pkg, "start");
    if (plan->start != NULL &&
        (start == NULL ||
         strncmp(start, rr ? "react-router-serve " : "remix-serve ", rr ? 19 : 12) == 0) &&
        output_and_deps(ctx, plan, "build", rr ? NULL : "public", err) < 0)
        return -1;
    return listens_on_port(plan, rr ? "react-router-serve" : "remix-serve", "HOST", err);
}

/* The adapter option `key` of a SvelteKit project: svelte.config.* (SvelteKit 2), else
 * vite.config.* (SvelteKit 3 takes its options in the sveltekit() Vite plugin). */
static char *svelte_option(const kiln_detect_ctx_t *ctx, const char *key, int *rc,
                           kiln_error_t *err)
{
    const char *conf = NULL;
    char *v = config_option(ctx, "svelte.config", key, &conf, rc, err);

    if (v != NULL || *rc < 0)
        return v;
    v = config_option(ctx, "vite.config", key, &conf, rc, err);
    if (v != NULL && strncmp(v, "./", 2) == 0)
        memmove(v, v + 2, strlen(v + 2) + 1);
    return v;
}

/* SvelteKit: adapter-node (a server in build/ or its `out`), adapter-static (a site). */
static int fw_sveltekit(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan,
                        kiln_error_t *err)
{
    int rc = 0;
    _cleanup_free_ char *why = NULL, *cmd = NULL, *dir = NULL;

    default_build(plan, "vite build");
    if (kiln_node_has_dep(pkg, "@sveltejs/adapter-static")) {
        dir = svelte_option(ctx, "pages", &rc, err);
        if (rc < 0)
            return -1;
        why = kiln_xasprintf("package.json depends on @sveltejs/adapter-static: a static site in "
                             "%s/%s",
                             dir ? dir : "build", dir ? " (its pages option)" : "");
        as_static(plan, dir ? dir : "build", why);
        return 0;
    }
    if (kiln_node_has_dep(pkg, "@sveltejs/adapter-node")) {
        dir = svelte_option(ctx, "out", &rc, err);
        if (rc < 0)
            return -1;
        cmd = kiln_xasprintf("node %s", dir ? dir : "build");
        why = kiln_xasprintf("package.json depends on @sveltejs/adapter-node: vite build writes "
                             "a server to %s/%s; the image holds it, package.json and the "
                             "production dependencies it imports",
                             dir ? dir : "build", dir ? " (its out option)" : "");
        as_server(plan, cmd, why);
        if (output_and_deps(ctx, plan, dir ? dir : "build", NULL, err) < 0)
            return -1;
        return listens_on_port(plan, "adapter-node's server", "HOST", err);
    }
    if (!start_script(pkg, plan))
        as_server(plan, NULL,
                  "SvelteKit without @sveltejs/adapter-node or adapter-static (adapter-auto) "
                  "builds no server kiln can run: add adapter-node for an image, adapter-static "
                  "for a site");
    return listens_on_port(plan, NULL, NULL, err);
}

/* Astro: a static site in dist/ (or its outDir), or with @astrojs/node a server. */
static int fw_astro(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *conf = NULL, *out;
    int rc = 0;
    _cleanup_free_ char *why = NULL, *v = NULL, *mode = NULL, *cmd = NULL;

    default_build(plan, "astro build");
    v = config_option(ctx, "astro.config", "outDir", &conf, &rc, err);
    if (rc < 0)
        return -1;
    if (v != NULL && (strncmp(v, "./", 2) == 0))
        memmove(v, v + 2, strlen(v + 2) + 1);
    out = v ? v : "dist";
    if (!kiln_node_has_dep(pkg, "@astrojs/node")) {
        why = kiln_xasprintf("no server adapter (@astrojs/node): astro build writes a static "
                             "site to %s/",
                             out);
        as_static(plan, out, why);
        return 0;
    }
    mode = config_option(ctx, "astro.config", "mode", &conf, &rc, err);
    if (rc < 0)
        return -1;
    if (mode && strcmp(mode, "middleware") == 0) {
        if (!start_script(pkg, plan))
            as_server(plan, NULL,
                      "@astrojs/node in middleware mode makes a handler for your own server, "
                      "and package.json has no scripts.start to run that server");
        return listens_on_port(plan, NULL, NULL, err);
    }
    cmd = kiln_xasprintf("node %s/server/entry.mjs", out);
    why = kiln_xasprintf("package.json depends on @astrojs/node (standalone): astro build writes "
                         "a server to %s/server/entry.mjs, serving %s/client; the image holds "
                         "%s/, package.json and the production dependencies",
                         out, out, out);
    as_server(plan, cmd, why);
    if (output_and_deps(ctx, plan, out, NULL, err) < 0)
        return -1;
    return listens_on_port(plan, "the @astrojs/node server", "HOST", err);
}

/* Nest: its compiled dist/main.js; `nest start` (scripts.start) would compile again at
 * start-up with the dev dependencies. */
static int fw_nest(json_t *pkg, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *prod = kiln_node_script(pkg, "start:prod");
    _cleanup_free_ char *why = NULL;

    if (prod != NULL) {
        why = kiln_xasprintf("package.json scripts.start:prod: %.200s (scripts.start runs nest "
                             "start, which compiles at start-up)",
                             prod);
        as_server(plan, "npm run start:prod", why);
    } else {
        as_server(plan, "node dist/main.js",
                  "nest build compiles to dist/main.js (no scripts.start:prod; scripts.start "
                  "runs nest start, which compiles at start-up)");
    }
    return listens_on_port(plan, NULL, NULL, err);
}

/* Vite or Create React App: a static site, unless a start script (not Vite's own dev or
 * preview server) says it is an app with its own server (Vite SSR). */
static int fw_spa(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *s = kiln_node_script(pkg, "start"), *conf = NULL;
    bool vite = strcmp(plan->framework, "vite") == 0;
    int rc = 0;
    _cleanup_free_ char *dir = NULL, *why = NULL;

    if (vite && s != NULL && strncmp(s, "vite", 4) != 0) {
        generic_start(ctx, pkg, plan);
        return listens_on_port(plan, NULL, NULL, err);
    }
    if (vite) {
        dir = config_option(ctx, "vite.config", "outDir", &conf, &rc, err);
        if (rc < 0)
            return -1;
        if (dir != NULL && strncmp(dir, "./", 2) == 0)
            memmove(dir, dir + 2, strlen(dir + 2) + 1);
    }
    why = kiln_xasprintf("%s builds a static site into %s/%s (no server to run)",
                         vite ? "vite build" : "react-scripts build",
                         dir ? dir : (vite ? "dist" : "build"), dir ? " (its outDir)" : "");
    as_static(plan, dir ? dir : (vite ? "dist" : "build"), why);
    return 0;
}

bool kiln_node_framework_generic(const char *fw)
{
    return fw == NULL || strcmp(fw, "express") == 0 || strcmp(fw, "fastify") == 0 ||
           strcmp(fw, "koa") == 0 || strcmp(fw, "hono") == 0;
}

/* The frameworks in the order they are tried (a Next.js app may list vite too). */
static const struct {
    const char *name;
    const char *const deps[3]; /* any of them */
} frameworks[] = {
    {"next", {"next"}},
    {"nuxt", {"nuxt"}},
    {"nitro", {"nitropack", "nitro"}},
    {"react-router", {"@react-router/dev", "@react-router/serve"}},
    {"remix", {"@remix-run/dev", "@remix-run/serve"}},
    {"sveltekit", {"@sveltejs/kit"}},
    {"astro", {"astro"}},
    {"nest", {"@nestjs/core"}},
    {"cra", {"react-scripts"}},
    {"vite", {"vite"}},
    {"express", {"express"}},
    {"fastify", {"fastify"}},
    {"koa", {"koa"}},
    {"hono", {"@hono/node-server"}},
};

int kiln_node_framework_plan(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan,
                             kiln_error_t *err)
{
    const char *fw = NULL, *dep = NULL;
    int r = 0;

    for (size_t i = 0; fw == NULL && i < sizeof(frameworks) / sizeof(frameworks[0]); i++)
        for (size_t j = 0; j < 3 && frameworks[i].deps[j]; j++)
            if (kiln_node_has_dep(pkg, frameworks[i].deps[j])) {
                fw = frameworks[i].name;
                dep = frameworks[i].deps[j];
                break;
            }
    kiln_plan_set(&plan->framework, fw);
    kiln_plan_set(&plan->function_adapter, kiln_node_lambda_adapter(fw, pkg));
    if (fw != NULL)
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "package.json depends on %s", dep);
    else
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK,
                      "package.json depends on none of the frameworks kiln knows (Next.js, "
                      "Nuxt, Remix, React Router, SvelteKit, Astro, Nest, Vite, CRA, Express, "
                      "Fastify, Koa, Hono)");
    if (kiln_node_framework_generic(fw)) {
        generic_start(ctx, pkg, plan);
        if (plan->start != NULL)
            r = listens_on_port(plan, NULL, NULL, err);
    } else if (strcmp(fw, "next") == 0) {
        r = fw_next(ctx, pkg, plan, err);
    } else if (strcmp(fw, "nuxt") == 0 || strcmp(fw, "nitro") == 0) {
        r = fw_nuxt(pkg, plan, err);
    } else if (strcmp(fw, "react-router") == 0 || strcmp(fw, "remix") == 0) {
        r = fw_remix(ctx, pkg, plan, err);
    } else if (strcmp(fw, "sveltekit") == 0) {
        r = fw_sveltekit(ctx, pkg, plan, err);
    } else if (strcmp(fw, "astro") == 0) {
        r = fw_astro(ctx, pkg, plan, err);
    } else if (strcmp(fw, "nest") == 0) {
        r = fw_nest(pkg, plan, err);
    } else {
        r = fw_spa(ctx, pkg, plan, err);
    }
    if (r < 0)
        return -1;
    /* the handler a function output would take (only a function plan shows it) */
    if (kiln_node_framework_generic(fw))
        function_handler(ctx, pkg, plan);
    return 0;
}
