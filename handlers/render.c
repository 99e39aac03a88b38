/* kiln — a plan rendered as the multi-stage Dockerfile the engine builds (see render.h). */
#include "handlers/render.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Largest rendered Dockerfile. */
#define DOCKERFILE_CAP (256 * 1024)

const char *kiln_render_target(kiln_plan_output_t kind)
{
    switch (kind) {
    case KILN_PLAN_OUT_STATIC:
        return "site";
    case KILN_PLAN_OUT_FUNCTION:
        return "function";
    default:
        return "run";
    }
}

/* Rejects control characters (a newline would start a new instruction). */
static int check_text(const char *what, const char *s, kiln_error_t *err)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return kiln_error_set(err, 0, "plan: %s holds a control character", what);
    return 0;
}

/* A path or image name: no whitespace or control characters. */
static int check_word(const char *what, const char *s, kiln_error_t *err)
{
    if (s == NULL || s[0] == '\0')
        return kiln_error_set(err, 0, "plan: %s is empty", what);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '"' || *p == '\\')
            return kiln_error_set(err, 0,
                                  "plan: %s \"%.64s\" holds a space, quote or control "
                                  "character",
                                  what, s);
    return 0;
}

/* A directory of the source the plan names (the output or function dir): a word (above) that
 * is a relative path without a ".." component, so `COPY --from=build WORKDIR/DIR` takes only
 * files of the source's build, never the build image's whole root. */
static int check_subdir(const char *what, const char *s, kiln_error_t *err)
{
    if (check_word(what, s, err) < 0)
        return -1;
    for (const char *p = s; *p; p += strcspn(p, "/"), p += *p == '/') {
        size_t n = strcspn(p, "/");
        if (s[0] == '/' || (n == 2 && p[0] == '.' && p[1] == '.'))
            return kiln_error_set(err, 0,
                                  "plan: %s \"%.64s\" must be a relative path inside the source "
                                  "(no leading / or ..)",
                                  what, s);
    }
    return 0;
}

/* Appends `cmd` as a JSON exec form running /bin/sh -c. */
static int append_shell(kiln_buf_t *b, const char *cmd, kiln_error_t *err)
{
    json_t *a = json_pack("[s,s,s]", "/bin/sh", "-c", cmd);
    char *s = a ? json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    int r;

    json_decref(a);
    if (s == NULL)
        return kiln_error_set(err, EINVAL, "plan: command is not valid UTF-8");
    r = kiln_buf_appendf(b, err, "%s\n", s);
    free(s);
    return r;
}

/* True when cmd is a program's absolute path and plain words (no quoting,
 * expansion or operator a shell would interpret): it runs without a shell, as
 * it must on a run image that has none (a static Go binary's). */
bool kiln_render_is_exec(const char *cmd)
{
    if (cmd[0] != '/')
        return false;
    for (const char *p = cmd; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(" _./:=,@%+-", *p) != NULL))
            return false;
    return true;
}

/* Appends a plain command (kiln_render_is_exec) as a JSON exec form of its words. */
static int append_exec(kiln_buf_t *b, const char *cmd, kiln_error_t *err)
{
    json_t *a = json_array();
    _cleanup_free_ char *copy = kiln_xstrdup(cmd);
    char *save = NULL, *s;
    int r;

    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(a, json_string(w));
    s = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(a);
    r = kiln_buf_appendf(b, err, "%s\n", s);
    free(s);
    return r;
}

/* The --mount flags for the caches and build secrets. */
static int append_mounts(kiln_buf_t *b, const kiln_plan_t *p, const kiln_render_opts_t *o,
                         bool secrets, kiln_error_t *err)
{
    for (size_t i = 0; i < p->n_caches; i++) {
        if (check_word("cache id", p->caches[i].id, err) < 0 ||
            check_word("cache target", p->caches[i].target, err) < 0 ||
            strchr(p->caches[i].id, ',') || strchr(p->caches[i].target, ','))
            return kiln_error_is_set(err) ? -1
                                          : kiln_error_set(err, 0, "plan: a cache holds a comma");
        if (kiln_buf_appendf(b, err, "--mount=type=cache,id=%s,target=%s ", p->caches[i].id,
                             p->caches[i].target) < 0)
            return -1;
    }
    for (size_t i = 0; secrets && o && i < o->n_secrets; i++) {
        const char *id = o->secret_ids[i], *target;
        _cleanup_free_ char *other = NULL;
        if (check_word("secret id", id, err) < 0)
            return -1;
        if (strcmp(id, "npmrc") == 0)
            target = "/root/.npmrc";
        else if (strcmp(id, "pipconf") == 0 || strcmp(id, "pip.conf") == 0)
            target = "/etc/pip.conf";
        else if (strcmp(id, "netrc") == 0)
            target = "/root/.netrc";
        else
            target = other = kiln_xasprintf("/run/secrets/%s", id);
        if (kiln_buf_appendf(b, err, "--mount=type=secret,id=%s,target=%s ", id, target) < 0)
            return -1;
    }
    return 0;
}

/* ENV lines of one env list (values double-quoted, with \ " $ escaped). */
static int append_env_list(kiln_buf_t *b, char *const *env, size_t n, kiln_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(env[i], '=');
        if (check_text("env", env[i], err) < 0)
            return -1;
        if (eq == NULL || eq == env[i] || memchr(env[i], ' ', (size_t)(eq - env[i])) != NULL)
            return kiln_error_set(err, 0, "plan: env \"%.64s\" is not KEY=VALUE", env[i]);
        if (kiln_buf_appendf(b, err, "ENV %.*s=\"", (int)(eq - env[i]), env[i]) < 0)
            return -1;
        for (const char *v = eq + 1; *v; v++) {
            if ((*v == '"' || *v == '\\' || *v == '$') && kiln_buf_append(b, "\\", 1, err) < 0)
                return -1;
            if (kiln_buf_append(b, v, 1, err) < 0)
                return -1;
        }
        if (kiln_buf_append(b, "\"\n", 2, err) < 0)
            return -1;
    }
    return 0;
}

/* The plan's ENV lines; the build stages also get its build-only ones. */
static int append_env(kiln_buf_t *b, const kiln_plan_t *p, bool build, kiln_error_t *err)
{
    if (append_env_list(b, p->env, p->n_env, err) < 0)
        return -1;
    return build ? append_env_list(b, p->build_env, p->n_build_env, err) : 0;
}

/* The toolchain copy (from the named context "node"), when the plan has one; a
 * build-only toolchain (a compiler) is copied into the build stages only. */
static int append_toolchain(kiln_buf_t *b, const kiln_plan_t *p, bool build, kiln_error_t *err)
{
    if (p->toolchain.name == NULL || (!build && p->toolchain.build_only))
        return 0;
    if (check_word("toolchain", p->toolchain.name, err) < 0 ||
        check_word("toolchain prefix", p->toolchain.prefix, err) < 0)
        return -1;
    /* the run image takes only what runs the app (Node's binary, not its 67 MB of headers) */
    if (!build && p->toolchain.run_path != NULL)
        return check_subdir("toolchain run path", p->toolchain.run_path, err) < 0
                   ? -1
                   : kiln_buf_appendf(b, err, "COPY --from=%s /%s %s/%s\n", p->toolchain.name,
                                      p->toolchain.run_path, p->toolchain.prefix,
                                      p->toolchain.run_path);
    return kiln_buf_appendf(b, err, "COPY --from=%s / %s\n", p->toolchain.name,
                            p->toolchain.prefix);
}

/* Checks the deps paths: relative or absolute, without "..". */
static int check_deps(const kiln_plan_t *p, kiln_error_t *err)
{
    for (size_t i = 0; i < p->n_deps; i++) {
        if (check_word("deps path", p->deps[i], err) < 0)
            return -1;
        if (strstr(p->deps[i], "..") != NULL)
            return kiln_error_set(err, 0, "plan: deps path %s holds ..", p->deps[i]);
    }
    return 0;
}

/* `cmd` followed by a mkdir of each relative deps dir, so that they always
 * exist afterwards: later stages copy them. */
static char *with_deps_dirs(const kiln_plan_t *p, const char *cmd)
{
    kiln_buf_t b;

    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "%s", cmd);
    for (size_t i = 0; i < p->n_deps; i++)
        if (p->deps[i][0] != '/')
            kiln_buf_appendf(&b, NULL, " && mkdir -p %s", p->deps[i]);
    return kiln_buf_steal(&b, NULL);
}

/* The "deps" stage (manifests + install: cached until a manifest changes) and
 * the "build" stage on top of it (the app + the build command). */
static int render_build(kiln_buf_t *b, const kiln_plan_t *p, const kiln_render_opts_t *o,
                        kiln_error_t *err)
{
    if (check_word("build image", p->build_image, err) < 0 ||
        check_word("workdir", p->workdir, err) < 0 || check_deps(p, err) < 0)
        return -1;
    /* HOME as Docker sets it for root: the caches (npm, pip, go) live under it. */
    if (kiln_buf_appendf(b, err, "FROM %s AS deps\nWORKDIR %s\nENV HOME=/root\n", p->build_image,
                         p->workdir) < 0 ||
        append_toolchain(b, p, true, err) < 0 || append_env(b, p, true, err) < 0)
        return -1;
    if (p->n_manifests > 0) {
        bool top = false;
        /* top-level files in one COPY; a path below (a workspace package's
         * package.json, .yarn/releases) keeps its place in the tree */
        for (size_t i = 0; i < p->n_manifests; i++) {
            if (check_word("manifest", p->manifests[i], err) < 0)
                return -1;
            if (strchr(p->manifests[i], '/') == NULL &&
                kiln_buf_appendf(b, err, "%s %s", top ? "" : "COPY", p->manifests[i]) < 0)
                return -1;
            top |= strchr(p->manifests[i], '/') == NULL;
        }
        if (top && kiln_buf_appendf(b, err, " ./\n") < 0)
            return -1;
        for (size_t i = 0; i < p->n_manifests; i++)
            if (strchr(p->manifests[i], '/') != NULL &&
                (strstr(p->manifests[i], "..") != NULL || p->manifests[i][0] == '/'))
                return kiln_error_set(err, 0, "plan: manifest %s leaves the context",
                                      p->manifests[i]);
            else if (strchr(p->manifests[i], '/') != NULL &&
                     kiln_buf_appendf(b, err, "COPY %s %s\n", p->manifests[i], p->manifests[i]) < 0)
                return -1;
    }
    if (p->install || p->setup) {
        /* the package manager's setup stays in the install step when install is overridden */
        _cleanup_free_ char *cmd = p->setup && p->install
                                       ? kiln_xasprintf("%s && %s", p->setup, p->install)
                                       : kiln_xstrdup(p->install ? p->install : p->setup);
        _cleanup_free_ char *text = with_deps_dirs(p, cmd);
        int r;
        r = (p->setup && check_text("setup command", p->setup, err) < 0) ||
                    (p->install && check_text("install command", p->install, err) < 0) ||
                    kiln_buf_appendf(b, err, "RUN ") < 0 || append_mounts(b, p, o, true, err) < 0 ||
                    append_shell(b, text, err) < 0
                ? -1
                : 0;
        if (r < 0)
            return -1;
    }
    if (kiln_buf_appendf(b, err, "\nFROM deps AS build\nCOPY . .\n") < 0)
        return -1;
    if (p->build) {
        if (check_text("build command", p->build, err) < 0 ||
            kiln_buf_appendf(b, err, "RUN ") < 0 || append_mounts(b, p, o, false, err) < 0 ||
            append_shell(b, p->build, err) < 0)
            return -1;
    }
    /* Relative deps leave the app dir (one step for them all: a monorepo has one per
     * package): the run stage takes them from "deps" or "prod-deps", so that an app
     * change does not make a new deps layer and the build's dev deps stay behind. An
     * image of run files or a bundled function dir copies none of the app dir: nothing
     * to remove (removing a large node_modules costs seconds). */
    if (((p->outputs & KILN_PLAN_OUT_FUNCTION) && !p->function_bundled) ||
        ((p->outputs & KILN_PLAN_OUT_IMAGE) && p->n_run_files == 0)) {
        bool any = false;
        for (size_t i = 0; i < p->n_deps; i++) {
            if (p->deps[i][0] == '/')
                continue;
            if (kiln_buf_appendf(b, err, "%s %s", any ? "" : "RUN [\"/bin/sh\", \"-c\", \"rm -rf",
                                 p->deps[i]) < 0)
                return -1;
            any = true;
        }
        if (any && kiln_buf_appendf(b, err, "\"]\n") < 0)
            return -1;
    }
    return 0;
}

/* The deps layer(s) into a stage: absolute paths from "build" (a Go binary,
 * a venv) as-is, relative ones from `stage` ("deps" or "prod-deps") under `dest`. */
static int append_deps(kiln_buf_t *b, const kiln_plan_t *p, const char *stage, const char *dest,
                       kiln_error_t *err)
{
    for (size_t i = 0; i < p->n_deps; i++) {
        const char *d = p->deps[i];
        int r = d[0] == '/' ? kiln_buf_appendf(b, err, "COPY --from=build %s %s\n", d, d)
                            : kiln_buf_appendf(b, err, "COPY --from=%s %s/%s %s/%s\n", stage,
                                               p->workdir, d, dest, d);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* The plan's layers: each build-stage directory's contents into the app dir,
 * one COPY (one layer) each, so that an unchanged one (a jar's dependencies)
 * keeps its digest when only the application changed. */
static int append_layers(kiln_buf_t *b, const kiln_plan_t *p, kiln_error_t *err)
{
    for (size_t i = 0; i < p->n_layers; i++) {
        if (check_word("layer", p->layers[i], err) < 0)
            return -1;
        if (p->layers[i][0] != '/' || strstr(p->layers[i], "..") != NULL)
            return kiln_error_set(err, 0, "plan: layer %s is not an absolute path without ..",
                                  p->layers[i]);
        if (kiln_buf_appendf(b, err, "COPY --from=build %s/ %s/\n", p->layers[i], p->workdir) < 0)
            return -1;
    }
    return 0;
}

/* The run files (a framework's self-contained server output): each "SRC[:DEST]" of the
 * build's app dir copied to DEST (default SRC) of the run image's, nothing else of it. */
static int append_run_files(kiln_buf_t *b, const kiln_plan_t *p, kiln_error_t *err)
{
    for (size_t i = 0; i < p->n_run_files; i++) {
        const char *f = p->run_files[i], *colon = strchr(f, ':');
        _cleanup_free_ char *src = kiln_xstrndup(f, colon ? (size_t)(colon - f) : strlen(f));
        const char *dest = colon ? colon + 1 : src;
        if (check_word("run file", f, err) < 0)
            return -1;
        if (src[0] == '\0' || dest[0] == '\0' || src[0] == '/' || dest[0] == '/' ||
            strstr(f, "..") != NULL)
            return kiln_error_set(err, 0, "plan: run file %s leaves the app dir", f);
        if (kiln_buf_appendf(b, err, "COPY --from=build %s/%s %s%s%s\n", p->workdir, src,
                             p->workdir, strcmp(dest, ".") == 0 ? "" : "/",
                             strcmp(dest, ".") == 0 ? "" : dest) < 0)
            return -1;
    }
    return 0;
}

static int render_run(kiln_buf_t *b, const kiln_plan_t *p, kiln_error_t *err)
{
    /* a Go binary, or layers, are the whole app: the source tree stays out */
    bool app_layer = (p->provider == NULL || strcmp(p->provider, "go") != 0) && p->n_layers == 0;

    if (check_word("run image", p->run_image, err) < 0 ||
        kiln_buf_appendf(b, err, "\nFROM %s AS run\nWORKDIR %s\n", p->run_image, p->workdir) < 0 ||
        append_toolchain(b, p, false, err) < 0 || append_env(b, p, false, err) < 0 ||
        append_env_list(b, p->run_env, p->n_run_env, err) < 0)
        return -1;
    if (p->n_run_files > 0) {
        /* the framework's server output carries what it needs (its own node_modules), or
         * takes the production deps beside it (run_deps) */
        if ((p->run_deps &&
             append_deps(b, p, p->prune ? "prod-deps" : "deps", p->workdir, err) < 0) ||
            append_run_files(b, p, err) < 0)
            return -1;
        app_layer = false;
    } else if (append_deps(b, p, p->prune ? "prod-deps" : "deps", p->workdir, err) < 0 ||
               append_layers(b, p, err) < 0) {
        return -1;
    }
    if (app_layer) {
        const char *src = ".";
        if (p->provider && strcmp(p->provider, "static") == 0 && p->output_dir)
            src = p->output_dir;
        if (check_word("output dir", src, err) < 0 ||
            kiln_buf_appendf(b, err, "COPY --from=build %s/%s %s\n", p->workdir, src, p->workdir) <
                0)
            return -1;
    }
    if (p->port > 0 && kiln_buf_appendf(b, err, "EXPOSE %d\n", p->port) < 0)
        return -1;
    if (p->start &&
        (check_text("start command", p->start, err) < 0 || kiln_buf_appendf(b, err, "CMD ") < 0 ||
         (kiln_render_is_exec(p->start) ? append_exec(b, p->start, err)
                                        : append_shell(b, p->start, err)) < 0))
        return -1;
    return 0;
}

/* A run image and a function package hold production deps only: "prod-deps" is
 * the deps stage after the plan's prune command (the build stage keeps the dev
 * deps it may need). Nothing is rendered when the plan has no prune command. */
static int render_prod_deps(kiln_buf_t *b, const kiln_plan_t *p, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;

    if (p->prune == NULL)
        return 0;
    if (check_text("prune command", p->prune, err) < 0)
        return -1;
    text = with_deps_dirs(p, p->prune);
    if (kiln_buf_appendf(b, err, "\nFROM deps AS prod-deps\nRUN ") < 0 ||
        append_mounts(b, p, NULL, false, err) < 0 || append_shell(b, text, err) < 0)
        return -1;
    return 0;
}

int kiln_render_dockerfile(const kiln_plan_t *p, const kiln_render_opts_t *o, char **out,
                           kiln_error_t *err)
{
    kiln_buf_t b;

    if (p->provider && strcmp(p->provider, "dockerfile") == 0)
        return kiln_error_set(err, 0,
                              "plan: the source has its own %s; build it with the "
                              "Dockerfile builder",
                              p->dockerfile ? p->dockerfile : "Dockerfile");
    kiln_buf_init(&b, DOCKERFILE_CAP);
    if (kiln_buf_appendf(&b, err, "# kiln auto-build: provider %s%s%s\n",
                         p->provider ? p->provider : "?", p->framework ? ", framework " : "",
                         p->framework ? p->framework : "") < 0 ||
        render_build(&b, p, o, err) < 0)
        goto fail;
    /* production deps only, for the run image and the function alike (not for a
     * framework's self-contained server output or a bundled function dir) */
    if ((((p->outputs & KILN_PLAN_OUT_IMAGE) && (p->n_run_files == 0 || p->run_deps)) ||
         ((p->outputs & KILN_PLAN_OUT_FUNCTION) && !p->function_bundled &&
          p->function_deps == NULL)) &&
        render_prod_deps(&b, p, err) < 0)
        goto fail;
    if ((p->outputs & KILN_PLAN_OUT_IMAGE) && render_run(&b, p, err) < 0)
        goto fail;
    if (p->outputs & KILN_PLAN_OUT_STATIC) {
        const char *dir = p->output_dir ? p->output_dir : ".";
        if (check_subdir("output dir", dir, err) < 0 ||
            kiln_buf_appendf(&b, err, "\nFROM scratch AS site\nCOPY --from=build %s/%s /\n",
                             p->workdir, dir) < 0)
            goto fail;
    }
    if (p->outputs & KILN_PLAN_OUT_FUNCTION) {
        const char *dir = p->function_dir ? p->function_dir : ".";
        /* a bundled function dir (Nitro's .output/server) carries its own node_modules */
        if (check_subdir("function dir", dir, err) < 0 ||
            kiln_buf_appendf(&b, err, "\nFROM scratch AS function\nCOPY --from=build %s/%s /\n",
                             p->workdir, dir) < 0)
            goto fail;
        /* the plan's package deps dir (a venv's site-packages) goes to the root as is */
        if (p->function_deps != NULL) {
            if (check_word("function deps", p->function_deps, err) < 0 ||
                strstr(p->function_deps, "..") != NULL ||
                kiln_buf_appendf(&b, err, "COPY --from=build %s/ /\n", p->function_deps) < 0)
                goto fail;
        } else if (!p->function_bundled &&
                   append_deps(&b, p, p->prune ? "prod-deps" : "deps", "", err) < 0) {
            goto fail;
        }
    }
    *out = kiln_buf_steal(&b, NULL);
    return 0;
fail:
    kiln_buf_free(&b);
    return -1;
}
