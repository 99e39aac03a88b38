/* kiln — auto-build: source resolution and plan → Dockerfile (see auto.h). */
#include "src/build/auto.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/git.h"
#include "utils/mem.h"

#define DEFAULT_ROOT "/var/lib/kiln"
/* Largest rendered Dockerfile. */
#define DOCKERFILE_CAP (256 * 1024)
/* Where relative deps paths wait in the build stage, outside the app dir. */
#define DEPS_STASH "/kiln-deps"

char *kiln_auto_root(const char *root, char *const *env)
{
    const char *r = root ? root : kiln_env_get(env, "KILN_ROOT");
    return kiln_xstrdup(r ? r : DEFAULT_ROOT);
}

/* Applies --subdir: a relative path without "..", naming a directory that
 * (after symlinks) is still inside the tree. */
static int apply_subdir(const char *top, const char *subdir, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *joined = NULL, *real_top = NULL, *real = NULL;
    size_t tl;

    if (subdir == NULL || subdir[0] == '\0' || strcmp(subdir, ".") == 0) {
        *out = kiln_xstrdup(top);
        return 0;
    }
    if (subdir[0] == '/' || strstr(subdir, "..") != NULL)
        return kiln_error_set(err, 0, "--subdir %s: must be a relative path without '..'", subdir);
    joined = kiln_xasprintf("%s/%s", top, subdir);
    real_top = realpath(top, NULL);
    real = realpath(joined, NULL);
    if (real_top == NULL || real == NULL)
        return kiln_error_set(err, errno, "--subdir %s", subdir);
    tl = strlen(real_top);
    if (strncmp(real, real_top, tl) != 0 || (real[tl] != '/' && real[tl] != '\0'))
        return kiln_error_set(err, 0, "--subdir %s: leaves the source tree", subdir);
    *out = steal_pointer(&joined);
    return 0;
}

int kiln_auto_source_prepare(const char *spec, const kiln_auto_source_opts_t *opts,
                             kiln_auto_source_t *src, kiln_error_t *err)
{
    kiln_auto_source_t s = {0};
    char *const *env = opts ? opts->env : NULL;
    const char *subdir = opts ? opts->subdir : NULL;
    struct stat st;

    if (!kiln_git_is_url(spec) || stat(spec, &st) == 0) {
        if (stat(spec, &st) < 0 || !S_ISDIR(st.st_mode))
            return kiln_error_set(err, stat(spec, &st) < 0 ? errno : ENOTDIR,
                                  "source %s (a directory or a git URL)", spec);
        if (apply_subdir(spec, subdir, &s.dir, err) < 0)
            return -1;
        s.display = kiln_xstrdup(spec);
    } else {
        _cleanup_free_ char *root = kiln_auto_root(opts ? opts->root : NULL, env);
        _cleanup_free_ char *cache = kiln_xasprintf("%s/git", root);
        _cleanup_free_ char *work = kiln_xasprintf("%s/work", root);
        _cleanup_free_ char *url = NULL, *ref = NULL, *creds = NULL, *tree = NULL;
        kiln_git_opts_t g = {.cache_dir = cache, .env = env};
        const char *cf = kiln_env_get(env, "KILN_GIT_CREDENTIALS");

        creds = cf ? kiln_xstrdup(cf) : kiln_xasprintf("%s/git-credentials", root);
        g.credentials_file = creds;
        kiln_git_split_ref(spec, &url, &ref);
        s.display = kiln_git_redact(spec);
        if (kiln_fs_mkdir_p(work, 0700, err) < 0 ||
            kiln_fs_mkdtemp(work, "src-", &s.checkout, err) < 0)
            goto fail;
        tree = kiln_xasprintf("%s/tree", s.checkout);
        if (kiln_git_checkout(url, ref, &g, tree, &s.commit, err) < 0 ||
            apply_subdir(tree, subdir, &s.dir, err) < 0)
            goto fail;
    }
    *src = s;
    return 0;
fail:
    kiln_auto_source_release(&s);
    return -1;
}

void kiln_auto_source_release(kiln_auto_source_t *src)
{
    if (src->checkout)
        kiln_fs_rm_rf(src->checkout, NULL);
    free(src->checkout);
    free(src->dir);
    free(src->commit);
    free(src->display);
    memset(src, 0, sizeof(*src));
}

const char *kiln_auto_target(kiln_plan_output_t kind)
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

/* The --mount flags for the caches and build secrets. */
static int append_mounts(kiln_buf_t *b, const kiln_plan_t *p, const kiln_auto_opts_t *o,
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

/* ENV lines (values double-quoted, with \ " $ escaped). */
static int append_env(kiln_buf_t *b, const kiln_plan_t *p, kiln_error_t *err)
{
    for (size_t i = 0; i < p->n_env; i++) {
        const char *eq = strchr(p->env[i], '=');
        if (check_text("env", p->env[i], err) < 0)
            return -1;
        if (kiln_buf_appendf(b, err, "ENV %.*s=\"", (int)(eq - p->env[i]), p->env[i]) < 0)
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

/* The toolchain copy (from the named context "node"), when the plan has one. */
static int append_toolchain(kiln_buf_t *b, const kiln_plan_t *p, kiln_error_t *err)
{
    if (p->toolchain.name == NULL)
        return 0;
    if (check_word("toolchain", p->toolchain.name, err) < 0 ||
        check_word("toolchain prefix", p->toolchain.prefix, err) < 0)
        return -1;
    return kiln_buf_appendf(b, err, "COPY --from=%s / %s\n", p->toolchain.name,
                            p->toolchain.prefix);
}

static int render_build(kiln_buf_t *b, const kiln_plan_t *p, const kiln_auto_opts_t *o,
                        kiln_error_t *err)
{
    if (check_word("build image", p->build_image, err) < 0 ||
        check_word("workdir", p->workdir, err) < 0)
        return -1;
    if (kiln_buf_appendf(b, err, "FROM %s AS build\nWORKDIR %s\n", p->build_image, p->workdir) <
            0 ||
        append_toolchain(b, p, err) < 0 || append_env(b, p, err) < 0)
        return -1;
    if (p->n_manifests > 0) {
        if (kiln_buf_appendf(b, err, "COPY") < 0)
            return -1;
        for (size_t i = 0; i < p->n_manifests; i++)
            if (check_word("manifest", p->manifests[i], err) < 0 ||
                kiln_buf_appendf(b, err, " %s", p->manifests[i]) < 0)
                return -1;
        if (kiln_buf_appendf(b, err, " ./\n") < 0)
            return -1;
    }
    if (p->install) {
        if (check_text("install command", p->install, err) < 0 ||
            kiln_buf_appendf(b, err, "RUN ") < 0 || append_mounts(b, p, o, true, err) < 0 ||
            append_shell(b, p->install, err) < 0)
            return -1;
    }
    if (kiln_buf_appendf(b, err, "COPY . .\n") < 0)
        return -1;
    if (p->build) {
        if (check_text("build command", p->build, err) < 0 ||
            kiln_buf_appendf(b, err, "RUN ") < 0 || append_mounts(b, p, o, false, err) < 0 ||
            append_shell(b, p->build, err) < 0)
            return -1;
    }
    /* Relative deps move out of the app dir: they become their own layer. */
    for (size_t i = 0; (p->outputs & ~KILN_PLAN_OUT_STATIC) && i < p->n_deps; i++) {
        const char *d = p->deps[i];
        if (check_word("deps path", d, err) < 0 || strstr(d, ".."))
            return kiln_error_is_set(err) ? -1 : kiln_error_set(err, 0, "plan: deps path %s", d);
        if (d[0] != '/' && kiln_buf_appendf(b, err,
                                            "RUN [\"/bin/sh\", \"-c\", \"mkdir -p " DEPS_STASH
                                            " && if [ -e %s ]; then mv %s " DEPS_STASH
                                            "/; else mkdir -p " DEPS_STASH "/%s; fi\"]\n",
                                            d, d, d) < 0)
            return -1;
    }
    return 0;
}

/* The deps layer(s) into a stage: absolute paths as-is, relative under `dest`. */
static int append_deps(kiln_buf_t *b, const kiln_plan_t *p, const char *dest, kiln_error_t *err)
{
    for (size_t i = 0; i < p->n_deps; i++) {
        const char *d = p->deps[i];
        int r = d[0] == '/'
                    ? kiln_buf_appendf(b, err, "COPY --from=build %s %s\n", d, d)
                    : kiln_buf_appendf(b, err, "COPY --from=build " DEPS_STASH "/%s %s/%s\n", d,
                                       dest, d);
        if (r < 0)
            return -1;
    }
    return 0;
}

static int render_run(kiln_buf_t *b, const kiln_plan_t *p, kiln_error_t *err)
{
    bool app_layer = p->provider == NULL || strcmp(p->provider, "go") != 0;

    if (check_word("run image", p->run_image, err) < 0 ||
        kiln_buf_appendf(b, err, "\nFROM %s AS run\nWORKDIR %s\n", p->run_image, p->workdir) < 0 ||
        append_toolchain(b, p, err) < 0 || append_env(b, p, err) < 0 ||
        append_deps(b, p, p->workdir, err) < 0)
        return -1;
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
    if (p->start && (check_text("start command", p->start, err) < 0 ||
                     kiln_buf_appendf(b, err, "CMD ") < 0 || append_shell(b, p->start, err) < 0))
        return -1;
    return 0;
}

int kiln_auto_dockerfile(const kiln_plan_t *p, const kiln_auto_opts_t *o, char **out,
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
    if ((p->outputs & KILN_PLAN_OUT_IMAGE) && render_run(&b, p, err) < 0)
        goto fail;
    if (p->outputs & KILN_PLAN_OUT_STATIC) {
        const char *dir = p->output_dir ? p->output_dir : ".";
        if (check_word("output dir", dir, err) < 0 ||
            kiln_buf_appendf(&b, err, "\nFROM scratch AS site\nCOPY --from=build %s/%s /\n",
                             p->workdir, dir) < 0)
            goto fail;
    }
    if (p->outputs & KILN_PLAN_OUT_FUNCTION) {
        const char *dir = p->function_dir ? p->function_dir : ".";
        if (check_word("function dir", dir, err) < 0 ||
            kiln_buf_appendf(&b, err, "\nFROM scratch AS function\nCOPY --from=build %s/%s /\n",
                             p->workdir, dir) < 0 ||
            append_deps(&b, p, "", err) < 0)
            goto fail;
    }
    *out = kiln_buf_steal(&b, NULL);
    return 0;
fail:
    kiln_buf_free(&b);
    return -1;
}
