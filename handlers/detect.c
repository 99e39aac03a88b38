/* kiln — detection: the providers in their documented order (see detect.h). */
#include "handlers/detect.h"

#include <ctype.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/kiln_json.h"
#include "handlers/node_lambda.h"
#include "handlers/procfile.h"
#include "handlers/render.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/mem.h"

/* Most names listed in a "nothing matched" message. */
#define SEEN_MAX 40

const char *kiln_detect_getenv(const kiln_detect_ctx_t *ctx, const char *key)
{
    return kiln_env_get(ctx->env, key);
}

char *kiln_detect_default_image_prefix(char *const *env)
{
    const char *dir = kiln_env_get(env, "KILN_IMAGES_DIR");
    return kiln_xasprintf("oci:%s", dir ? dir : KILN_DEFAULT_IMAGES_DIR);
}

char *kiln_detect_image(const kiln_detect_ctx_t *ctx, const char *name)
{
    return kiln_xasprintf("%s/%s", ctx->image_prefix, name);
}

char *kiln_detect_project_name(const char *name)
{
    char *s = kiln_xstrndup(name, 64);
    size_t n = 0;

    for (char *p = s; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        if (!isalnum((unsigned char)c))
            c = '-';
        if (c == '-' && (n == 0 || s[n - 1] == '-'))
            continue;
        s[n++] = c;
    }
    while (n > 0 && s[n - 1] == '-')
        n--;
    s[n] = '\0';
    if (n == 0) {
        free(s);
        s = kiln_xstrdup("app");
    }
    return s;
}

typedef int (*provider_fn)(const kiln_detect_ctx_t *, kiln_plan_t *, kiln_error_t *);

static int dockerfile_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    (void)err;
    if (!kiln_tree_is_file(ctx->tree, "Dockerfile"))
        return 0;
    kiln_plan_set(&plan->provider, "dockerfile");
    kiln_plan_set(&plan->dockerfile, "Dockerfile");
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    return 1;
}

/* The documented order, what made each one match, and the files it looks for (the
 * no-match error lists them: a new provider is one line here and its own file). */
static const struct {
    const char *name;
    provider_fn fn;
    const char *why;
    const char *files;
} providers[] = {
    {"dockerfile", dockerfile_detect, "a Dockerfile is at the top of the source: it is used as is",
     "a Dockerfile"},
    {"deno", kiln_deno_detect,
     "deno.json or deno.jsonc is there (before package.json: a Deno "
     "project may have one too)",
     "deno.json"},
    {"ruby", kiln_ruby_detect, "a Gemfile is there (before package.json: Rails apps have one too)",
     "a Gemfile"},
    {"php", kiln_php_detect,
     "composer.json or index.php is there (before package.json: Laravel apps have one too)",
     "composer.json"},
    {"node", kiln_node_detect, "package.json is there (no Dockerfile)", "a package.json"},
    {"python", kiln_python_detect,
     "a Python lockfile or manifest is there (uv.lock, poetry.lock, pdm.lock, Pipfile(.lock), "
     "requirements*.txt, pyproject.toml or setup.py)",
     "requirements.txt or pyproject.toml"},
    {"go", kiln_go_detect, "go.mod is there", "go.mod"},
    {"java", kiln_jvm_detect, "a JVM build file is there (pom.xml, else build.gradle[.kts])",
     "pom.xml or build.gradle"},
    {"rust", kiln_rust_detect, "Cargo.toml is there", "Cargo.toml"},
    {"static", kiln_static_detect, "an index.html is there and no language manifest",
     "an index.html"},
    {"procfile", kiln_procfile_detect, "a Procfile is there and nothing else matched",
     "a Procfile"},
};

bool kiln_detect_provider_known(const char *name)
{
    for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
        if (strcmp(name, providers[i].name) == 0)
            return true;
    return false;
}

char *kiln_detect_provider_names(void)
{
    kiln_buf_t b;
    kiln_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
        kiln_buf_appendf(&b, NULL, "%s%s", i ? ", " : "", providers[i].name);
    return kiln_buf_steal(&b, NULL);
}

/* The "nothing matched" error: what was seen and how to configure a build. */
static int no_match(const kiln_detect_ctx_t *ctx, kiln_error_t *err)
{
    kiln_error_t lerr = {0};
    _cleanup_strv_ char **names = kiln_tree_list(ctx->tree, ".", SEEN_MAX, &lerr);
    kiln_buf_t b;
    _cleanup_free_ char *seen = NULL, *files = NULL;

    kiln_buf_init(&b, 4096);
    for (size_t i = 0; names && names[i]; i++)
        kiln_buf_appendf(&b, NULL, "%s%s", i ? ", " : "", names[i]);
    seen = kiln_buf_steal(&b, NULL);
    kiln_buf_init(&b, 4096);
    for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
        kiln_buf_appendf(&b, NULL, "%s, ", providers[i].files);
    files = kiln_buf_steal(&b, NULL);
    return kiln_error_set(err, 0,
                          "cannot detect how to build %s: saw %s; add %sor a kiln.json naming "
                          "the \"provider\" and its \"install\"/\"build\"/\"start\" commands",
                          ctx->tree->path, seen[0] ? seen : "no files", files ? files : "");
}

/* Runs the providers (or the forced one). Returns 0 with the plan filled. */
static int run_providers(const kiln_detect_ctx_t *ctx, const char *forced, kiln_plan_t *plan,
                         kiln_error_t *err)
{
    for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++) {
        int r;
        if (forced && strcmp(forced, providers[i].name) != 0)
            continue;
        r = providers[i].fn(ctx, plan, err);
        if (r < 0)
            return -1;
        if (r > 0) {
            if (forced)
                kiln_plan_why(plan, KILN_WHY_PROVIDER, "%s asks for it",
                              kiln_detect_getenv(ctx, "KILN_PROVIDER") ? "KILN_PROVIDER"
                                                                       : "kiln.json \"provider\"");
            else
                kiln_plan_why(plan, KILN_WHY_PROVIDER, "%s", providers[i].why);
            return 0;
        }
        if (forced)
            return kiln_error_set(err, 0,
                                  "provider \"%s\" was asked for but %s has none of its files",
                                  forced, ctx->tree->path);
    }
    return no_match(ctx, err);
}

/* The reasons of what kiln.json / KILN_* overrode (the variable wins over the file). */
static void explain_overrides(const kiln_detect_ctx_t *ctx, const kiln_overrides_t *ov,
                              kiln_plan_t *plan)
{
    static const struct {
        kiln_plan_why_t what;
        size_t off;
        const char *var, *key;
    } ovs[] = {
        {KILN_WHY_INSTALL, offsetof(kiln_overrides_t, install), "KILN_INSTALL_CMD", "install"},
        {KILN_WHY_BUILD, offsetof(kiln_overrides_t, build), "KILN_BUILD_CMD", "build"},
        {KILN_WHY_START, offsetof(kiln_overrides_t, start), "KILN_START_CMD", "start"},
    };
    for (size_t i = 0; i < sizeof(ovs) / sizeof(ovs[0]); i++) {
        if (*(char *const *)((const char *)ov + ovs[i].off) == NULL)
            continue;
        if (kiln_detect_getenv(ctx, ovs[i].var))
            kiln_plan_why(plan, ovs[i].what, "%s is set", ovs[i].var);
        else
            kiln_plan_why(plan, ovs[i].what, "kiln.json \"%s\"", ovs[i].key);
    }
    if (ov->outputs || ov->output_dir)
        kiln_plan_why(plan, KILN_WHY_OUTPUT, "%s",
                      kiln_detect_getenv(ctx, "KILN_OUTPUTS") ? "KILN_OUTPUTS is set"
                                                              : "kiln.json outputs / outputDir");
    if (ov->port)
        kiln_plan_why(plan, KILN_WHY_PORT, "%s",
                      kiln_detect_getenv(ctx, "KILN_PORT") ? "KILN_PORT is set" : "kiln.json port");
    if (ov->handler)
        kiln_plan_why(plan, KILN_WHY_HANDLER, "kiln.json function.handler");
}

/* A generic reason for each choice no handler explained. */
static void explain_defaults(kiln_plan_t *plan)
{
    static const struct {
        const char *source, *text;
    } versions[] = {
        {"engines.node", "package.json engines.node"},
        {".nvmrc", ".nvmrc (or .node-version)"},
        {"kiln.json", "kiln.json"},
        {"default", "nothing in the source names a version: the default"},
    };
    if (plan->why[KILN_WHY_VERSION] == NULL && plan->version != NULL) {
        const char *text = plan->version_source;
        for (size_t i = 0; text && i < sizeof(versions) / sizeof(versions[0]); i++)
            if (strcmp(text, versions[i].source) == 0)
                text = versions[i].text;
        kiln_plan_why(plan, KILN_WHY_VERSION, "%s", text ? text : "the build image's");
    }
    if (plan->why[KILN_WHY_INSTALL] == NULL && plan->install != NULL)
        kiln_plan_why(plan, KILN_WHY_INSTALL, "the %s provider's install step", plan->provider);
    if (plan->why[KILN_WHY_BUILD] == NULL && plan->build != NULL)
        kiln_plan_why(plan, KILN_WHY_BUILD, "the %s provider's build step", plan->provider);
    if (plan->why[KILN_WHY_START] == NULL && plan->start != NULL)
        kiln_plan_why(plan, KILN_WHY_START, "the %s provider's way to start it", plan->provider);
    if (plan->why[KILN_WHY_OUTPUT] == NULL && plan->outputs != 0)
        kiln_plan_why(plan, KILN_WHY_OUTPUT, "%s",
                      plan->outputs & KILN_PLAN_OUT_STATIC
                          ? "the files are a static site, served as they are"
                      : plan->outputs & KILN_PLAN_OUT_FUNCTION
                          ? "kiln.json \"outputs\" asks for a function package"
                          : "a server: an image runs it with its start command (kiln.json "
                            "\"outputs\" or -o asks for another kind)");
    if (plan->why[KILN_WHY_BUILD] == NULL && plan->build == NULL &&
        strcmp(plan->provider, "dockerfile") != 0)
        kiln_plan_why(plan, KILN_WHY_BUILD, "no build step: nothing asks for one%s",
                      strcmp(plan->provider, "node") == 0 ? " (package.json has no scripts.build)"
                                                          : "");
}

/* A start command that needs a shell (a Procfile line, kiln.json "start") cannot run on
 * minimal-run, which has none: such a plan runs on the base image instead, and says so. */
static int shell_start(const kiln_detect_ctx_t *ctx, const kiln_overrides_t *ov, kiln_plan_t *plan)
{
    static const char suffix[] = "/minimal-run";
    size_t n = plan->run_image ? strlen(plan->run_image) : 0, m = sizeof(suffix) - 1;

    if (ov->run_image != NULL || plan->start == NULL || kiln_render_is_exec(plan->start) || n < m ||
        strcmp(plan->run_image + n - m, suffix) != 0)
        return 0;
    free(plan->run_image);
    plan->run_image = kiln_detect_image(ctx, "base");
    return kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                         "the start command needs a shell: the image runs on base, not "
                         "minimal-run (start with the binary's absolute path to keep "
                         "minimal-run)");
}

/* A built static site (a Vite, Astro or SvelteKit adapter-static build) asked for as an
 * image is served the way the static provider serves plain files: busybox httpd in kiln's
 * static-run image, holding the site alone (no toolchain, no node_modules). Left alone
 * when the plan already has a start command (Procfile, kiln.json) or a run image of the
 * user's. */
static void serve_site(const kiln_detect_ctx_t *ctx, const kiln_overrides_t *ov, kiln_plan_t *plan)
{
    if (plan->outputs != KILN_PLAN_OUT_STATIC || plan->start != NULL || ov->run_image != NULL ||
        plan->output_dir == NULL || strcmp(plan->provider, "static") == 0 || plan->n_run_files > 0)
        return;
    plan->start =
        kiln_xasprintf("busybox httpd -f -p $PORT -h %s", plan->workdir ? plan->workdir : "/app");
    free(plan->run_image);
    plan->run_image = kiln_detect_image(ctx, "static-run");
    plan->toolchain.build_only = true;
    kiln_plan_add(plan->run_files, &plan->n_run_files, NULL, "%s:.", plan->output_dir);
    kiln_plan_why(plan, KILN_WHY_START,
                  "as an image, busybox httpd (in kiln's static-run image) serves the site, "
                  "%s/ alone",
                  plan->output_dir);
    kiln_plan_why(plan, KILN_WHY_PORT,
                  "httpd listens on $PORT: kiln sets it to 8080, its server port (kiln.json "
                  "\"port\" or KILN_PORT change it)");
}

/* Fills what every plan needs after its provider: start from the Procfile, the
 * overrides and the reasons. What an output kind needs (a start command, a handler) is
 * checked once the kind is known (kiln_plan_select_output). */
static int finish_plan(const kiln_detect_ctx_t *ctx, const kiln_overrides_t *ov, kiln_plan_t *plan,
                       kiln_error_t *err)
{
    _cleanup_free_ char *web = NULL;

    if (strcmp(plan->provider, "dockerfile") == 0)
        return kiln_overrides_apply(ov, plan, err);
    if (strcmp(plan->provider, "procfile") != 0) {
        int r = kiln_procfile_web(ctx, &web, err);
        if (r < 0)
            return -1;
        if (r > 0) {
            kiln_plan_set(&plan->start, web);
            kiln_plan_add(plan->notes, &plan->n_notes, err, "start command from Procfile web");
            kiln_plan_why(plan, KILN_WHY_START, "the Procfile's web line (it wins over %s's)",
                          plan->provider);
        }
    }
    if (kiln_overrides_apply(ov, plan, err) < 0)
        return -1;
    explain_overrides(ctx, ov, plan);
    explain_defaults(plan);
    if (strcmp(plan->provider, "node") == 0 && kiln_node_start_finish(ctx, plan, err) < 0)
        return -1;
    serve_site(ctx, ov, plan);
    return shell_start(ctx, ov, plan);
}

int kiln_plan_select_output(kiln_plan_t *plan, unsigned kinds, const char *where, kiln_error_t *err)
{
    char port[16];

    if (plan->provider == NULL || strcmp(plan->provider, "dockerfile") == 0)
        return 0;
    /* what detection found for the other kinds is no choice of this build */
    if (!(kinds & KILN_PLAN_OUT_FUNCTION)) {
        kiln_plan_set(&plan->why[KILN_WHY_HANDLER], NULL);
        kiln_plan_set(&plan->why[KILN_WHY_RUNTIME], NULL);
    }
    if (!(kinds & KILN_PLAN_OUT_IMAGE)) {
        kiln_plan_set(&plan->why[KILN_WHY_PORT], NULL);
        if (plan->start == NULL)
            kiln_plan_set(&plan->why[KILN_WHY_START], NULL);
    }
    if (kinds & KILN_PLAN_OUT_FUNCTION) {
        if (plan->language && strcmp(plan->language, "node") == 0) {
            if (kiln_node_function_plan(plan, err) < 0)
                return -1;
        } else {
            if (plan->function_dir == NULL)
                plan->function_dir = kiln_xstrdup(".");
            if (plan->handler == NULL)
                plan->handler = kiln_xstrdup("index.handler");
            if (plan->runtime == NULL && plan->language && strcmp(plan->language, "python") == 0)
                plan->runtime = kiln_xasprintf("python%s", plan->version);
        }
    }
    if ((kinds & KILN_PLAN_OUT_STATIC) && plan->output_dir == NULL)
        plan->output_dir = kiln_xstrdup(".");
    if (kinds & KILN_PLAN_OUT_IMAGE) {
        const char *why = plan->why[KILN_WHY_START];
        if (plan->start == NULL)
            return kiln_error_set(err, 0,
                                  "%s project in %s has no start command for its image%s%s%s: "
                                  "add one (package.json scripts.start, a Procfile web line, or "
                                  "\"start\" in kiln.json)",
                                  plan->provider, where ? where : "the source", why ? " (" : "",
                                  why ? why : "", why ? ")" : "");
        if (plan->port == 0) {
            plan->port = 8080;
            if (plan->why[KILN_WHY_PORT] == NULL)
                kiln_plan_why(plan, KILN_WHY_PORT,
                              "8080, the default of a server (set \"port\" in kiln.json or "
                              "KILN_PORT)");
        } else if (plan->why[KILN_WHY_PORT] == NULL) {
            kiln_plan_why(plan, KILN_WHY_PORT, "the %s provider's", plan->provider);
        }
        snprintf(port, sizeof(port), "%d", plan->port);
        if (kiln_plan_setenv(plan, "PORT", port, err) < 0)
            return -1;
    }
    plan->outputs = kinds;
    return 0;
}

int kiln_plan_detect(const char *dir, const kiln_detect_opts_t *opts, kiln_plan_t **out,
                     kiln_error_t *err)
{
    kiln_tree_t tree = {.fd = -1};
    kiln_overrides_t ov = {0};
    kiln_detect_ctx_t ctx = {.tree = &tree};
    _cleanup_plan_ kiln_plan_t *plan = kiln_plan_new();
    _cleanup_free_ char *default_prefix = NULL;
    int ret = -1;

    if (kiln_tree_open(dir, &tree, err) < 0)
        return -1;
    ctx.env = opts ? opts->env : NULL;
    ctx.image_prefix = opts && opts->image_prefix ? opts->image_prefix : NULL;
    if (ctx.image_prefix == NULL)
        ctx.image_prefix = kiln_detect_getenv(&ctx, "KILN_IMAGE_PREFIX");
    if (ctx.image_prefix == NULL)
        ctx.image_prefix = default_prefix = kiln_detect_default_image_prefix(ctx.env);
    if (opts && opts->project)
        plan->project = kiln_detect_project_name(opts->project);
    if (kiln_overrides_load(&ctx, &ov, err) < 0)
        goto out;
    ctx.overrides = &ov;
    if (run_providers(&ctx, ov.provider, plan, err) < 0)
        goto out;
    if (plan->project == NULL) {
        _cleanup_free_ char *real = realpath(dir, NULL);
        _cleanup_free_ char *copy = kiln_xstrdup(real ? real : dir);
        plan->project = kiln_detect_project_name(basename(copy));
    }
    for (size_t i = 0; i < plan->n_caches; i++) {
        if (plan->caches[i].shared)
            continue;
        char *id = kiln_xasprintf("%s-%s", plan->project, plan->caches[i].id);
        free(plan->caches[i].id);
        plan->caches[i].id = id;
    }
    if (finish_plan(&ctx, &ov, plan, err) < 0)
        goto out;
    *out = steal_pointer(&plan);
    ret = 0;
out:
    kiln_overrides_free(&ov);
    kiln_tree_close(&tree);
    return ret;
}
