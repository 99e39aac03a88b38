/* kiln — the Deno provider: deno.json / deno.jsonc → Deno itself from the npm
 * registry's `deno` package (its binary ships in @deno/linux-x64-glibc), `deno
 * install` of the dependencies (npm: specifiers through the npm registry; jsr:
 * and URL imports need hosts builds may not reach), `deno task build` when
 * the config has one, and `deno task start` (else `deno run` of main.ts /
 * main.js / server.ts with net, env and read permissions) on $PORT. The
 * binary and DENO_DIR are copied into kiln's minimal run image. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "handlers/words.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* The npm `deno` major kiln installs (its version is the Deno release). */
#define DENO_MAJOR "2"
/* its own dir (on PATH): npm links /usr/local/bin/deno to the package, which the run
 * image does not have */
#define DENO_HOME "/opt/kiln/deno"
#define DENO_BIN DENO_HOME "/bin/deno"
#define DENO_DIR "/opt/deno"

/* deno.jsonc may hold comments and trailing commas: a copy without // and
 * block comments (strings kept) and without commas before } or ]. */
static char *strip_jsonc(const char *s)
{
    char *out = kiln_xmalloc(strlen(s) + 1), *o = out;
    bool str = false;

    for (const char *p = s; *p; p++) {
        if (str) {
            *o++ = *p;
            if (*p == '\\' && p[1])
                *o++ = *++p;
            else if (*p == '"')
                str = false;
        } else if (*p == '"') {
            str = true;
            *o++ = *p;
        } else if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n')
                p++;
            if (!*p)
                break;
            *o++ = '\n';
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (e == NULL)
                break;
            p = e + 1;
        } else if (*p == ',') {
            const char *q = p + 1;
            while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
                q++;
            if (*q != '}' && *q != ']')
                *o++ = ',';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

int kiln_deno_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    static const char *const files[] = {"deno.json", "deno.jsonc"};
    static const char *const mains[] = {"main.ts", "main.js", "server.ts", "mod.ts"};
    _cleanup_free_ char *text = NULL, *clean = NULL;
    const char *file = NULL;
    json_t *root, *tasks;
    json_error_t jerr;
    int r = 0;

    for (size_t i = 0; file == NULL && i < sizeof(files) / sizeof(files[0]); i++) {
        r = kiln_tree_read(ctx->tree, files[i], &text, err);
        if (r < 0)
            return -1;
        if (r > 0)
            file = files[i];
    }
    if (file == NULL)
        return 0;
    clean = strip_jsonc(text);
    root = json_loads(clean, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return kiln_error_set(err, 0, "%s line %d: %s", file, jerr.line,
                              root ? "not a JSON object" : jerr.text);
    }
    tasks = json_object_get(root, "tasks");
    kiln_plan_set(&plan->provider, "deno");
    kiln_plan_set(&plan->package_manager, "deno");
    kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER,
                  "%s: deno itself (npm: and jsr: imports through its own installer)", file);
    kiln_plan_set(&plan->language, "deno");
    kiln_plan_set(&plan->version, DENO_MAJOR);
    kiln_plan_set(&plan->version_source, "default");
    kiln_plan_why(plan, KILN_WHY_VERSION,
                  "Deno %s from the npm registry's deno package (its Linux binary ships in "
                  "@deno/linux-x64-glibc)",
                  DENO_MAJOR);
    kiln_plan_add(plan->manifests, &plan->n_manifests, err, "%s", file);
    if (kiln_tree_is_file(ctx->tree, "deno.lock"))
        kiln_plan_add(plan->manifests, &plan->n_manifests, err, "deno.lock");
    if (kiln_tree_is_file(ctx->tree, "package.json"))
        kiln_plan_add(plan->manifests, &plan->n_manifests, err, "package.json");
    kiln_plan_set(&plan->setup,
                  "npm install -g --no-audit --no-fund deno@" DENO_MAJOR " && install -D -m 0755 "
                  "\"$(find \"$(npm root -g)/deno\" -path '*linux-x64-glibc*' -name deno -type f | "
                  "head -n 1)\" " DENO_BIN " && deno --version");
    kiln_plan_set(&plan->install, "deno install");
    kiln_plan_why(plan, KILN_WHY_INSTALL,
                  "%s: deno install (npm: dependencies from the npm registry) into DENO_DIR", file);
    if (json_is_object(tasks) && json_object_get(tasks, "build")) {
        kiln_plan_set(&plan->build, "deno task build");
        kiln_plan_why(plan, KILN_WHY_BUILD, "%s tasks.build", file);
    }
    if (json_is_object(tasks) && json_object_get(tasks, "start")) {
        kiln_plan_set(&plan->start, "exec deno task start");
        kiln_plan_why(plan, KILN_WHY_START, "%s tasks.start", file);
    } else {
        for (size_t i = 0; plan->start == NULL && i < sizeof(mains) / sizeof(mains[0]); i++)
            if (kiln_tree_is_file(ctx->tree, mains[i])) {
                plan->start = kiln_xasprintf("exec deno run --allow-net --allow-env --allow-read "
                                             "%s",
                                             mains[i]);
                kiln_plan_why(plan, KILN_WHY_START,
                              "no tasks.start in %s: deno run %s (net, env and read allowed)", file,
                              mains[i]);
            }
    }
    json_decref(root);
    if (kiln_plan_setenv(plan, "DENO_DIR", DENO_DIR, err) < 0 ||
        kiln_plan_setenv(plan, "DENO_NO_UPDATE_CHECK", "1", err) < 0 ||
        kiln_plan_add_cache(plan, "npm", "/root/.npm", err) < 0 ||
        kiln_plan_setenv(plan, "PATH",
                         DENO_HOME
                         "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         err) < 0 ||
        kiln_plan_add(plan->deps, &plan->n_deps, err, DENO_HOME) < 0 ||
        kiln_plan_add(plan->deps, &plan->n_deps, err, DENO_DIR) < 0)
        return -1;
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "node-build");
    plan->run_image = kiln_detect_image(ctx, "base");
    return 1;
}
