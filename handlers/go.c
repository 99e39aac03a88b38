/* kiln — the Go provider: go.mod → the Go release it builds with (fetched from
 * the Go module proxy, handlers/go_release), `go mod download` through the
 * module proxy with the module and build caches as cache mounts, one main
 * package built as a static, reproducible binary (CGO_ENABLED=0, -trimpath,
 * no VCS stamp, no build id), and that binary alone on a minimal run image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "handlers/go_mod.h"
#include "handlers/go_release.h"
#include "handlers/kiln_json.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Where the toolchain is mounted in the build stages, the caches, the proxy. */
#define GO_ROOT "/usr/local/go"
#define GO_MODCACHE "/root/go/pkg/mod"
#define GO_BUILDCACHE "/root/.cache/go-build"
#define GO_DEFAULT_PROXY "https://proxy.golang.org,direct"
/* Directories under cmd/ and .go files per directory looked at for main packages. */
#define CMD_MAX 64
#define GOFILES_MAX 64

/* True when the directory `rel` holds a main package: a .go file (not a test,
 * not one excluded by `//go:build ignore`) whose package clause is main. */
static bool is_main_dir(const kiln_tree_t *tree, const char *rel)
{
    kiln_error_t e = {0};
    _cleanup_strv_ char **names = kiln_tree_list(tree, rel, GOFILES_MAX, &e);

    for (size_t i = 0; names && names[i]; i++) {
        size_t n = strlen(names[i]);
        _cleanup_free_ char *path = NULL, *text = NULL;
        const char *p;
        if (n < 4 || strcmp(names[i] + n - 3, ".go") != 0 ||
            (n > 8 && strcmp(names[i] + n - 8, "_test.go") == 0))
            continue;
        path =
            strcmp(rel, ".") == 0 ? kiln_xstrdup(names[i]) : kiln_xasprintf("%s/%s", rel, names[i]);
        if (kiln_tree_read(tree, path, &text, &e) <= 0) {
            kiln_error_clear(&e);
            continue;
        }
        if (strstr(text, "//go:build ignore") != NULL)
            continue;
        for (p = text; p; p = strchr(p, '\n')) {
            p += *p == '\n';
            if (strncmp(p, "package ", 8) == 0) {
                p += 8;
                while (*p == ' ' || *p == '\t')
                    p++;
                if (strncmp(p, "main", 4) == 0 && (p[4] == '\0' || p[4] == '\n' || p[4] == '\r' ||
                                                   p[4] == ' ' || p[4] == '\t' || p[4] == '/'))
                    return true;
                break;
            }
        }
    }
    return false;
}

/* The main packages under cmd/ ("cmd/<name>"), NULL-terminated (maybe empty). */
static char **cmd_mains(const kiln_tree_t *tree)
{
    kiln_error_t e = {0};
    _cleanup_strv_ char **names = NULL;
    char **out = kiln_xzalloc((CMD_MAX + 1) * sizeof(*out));
    size_t n = 0;

    if (!kiln_tree_is_dir(tree, "cmd"))
        return out;
    names = kiln_tree_list(tree, "cmd", CMD_MAX, &e);
    for (size_t i = 0; names && names[i]; i++) {
        _cleanup_free_ char *rel = kiln_xasprintf("cmd/%s", names[i]);
        if (names[i][0] != '.' && kiln_tree_is_dir(tree, rel) && is_main_dir(tree, rel))
            out[n++] = steal_pointer(&rel);
    }
    kiln_error_clear(&e);
    return out;
}

/* "./cmd/a, ./cmd/b" for messages (malloc'ed). */
static char *join_mains(char **mains)
{
    kiln_buf_t b;

    kiln_buf_init(&b, 0);
    for (size_t i = 0; mains[i]; i++)
        kiln_buf_appendf(&b, NULL, "%s./%s", i ? ", " : "", mains[i]);
    return kiln_buf_steal(&b, NULL);
}

/* The module path's last element without a /vN suffix: "example.com/x/api/v2" → "api". */
static char *module_name(const char *module)
{
    _cleanup_free_ char *m = kiln_xstrdup(module);
    char *slash = strrchr(m, '/');

    if (slash && slash[1] == 'v' && slash[2] &&
        strspn(slash + 2, "0123456789") == strlen(slash + 2))
        *slash = '\0';
    slash = strrchr(m, '/');
    return kiln_xstrdup(slash ? slash + 1 : m);
}

/* The override's package ("./cmd/api", "cmd/api", "api" for cmd/api, "."): a
 * relative directory of the tree, without "..", that holds a main package. */
static int override_main(const kiln_tree_t *tree, const char *want, const char *src, char **pkg,
                         kiln_error_t *err)
{
    const char *w = want;
    _cleanup_free_ char *rel = NULL;
    size_t n;

    while (strncmp(w, "./", 2) == 0)
        w += 2;
    if (w[0] == '\0' || strcmp(w, ".") == 0)
        rel = kiln_xstrdup(".");
    else if (strchr(w, '/') == NULL && kiln_tree_is_dir(tree, "cmd"))
        rel = kiln_xasprintf("cmd/%s", w);
    else
        rel = kiln_xstrdup(w);
    n = strlen(rel);
    while (n > 1 && rel[n - 1] == '/')
        rel[--n] = '\0';
    if (want[0] == '/' || strstr(want, "..") != NULL ||
        strspn(rel, "abcdefghijklmnopqrstuvwxyz"
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789._/-") != n)
        return kiln_error_set(err, 0,
                              "%s \"%.64s\" must be a package directory of the module (./cmd/NAME, "
                              "NAME for cmd/NAME, or .)",
                              src, want);
    if (!kiln_tree_is_dir(tree, rel) || !is_main_dir(tree, rel))
        return kiln_error_set(err, 0, "%s \"%.64s\": ./%s holds no main package", src, want, rel);
    *pkg = steal_pointer(&rel);
    return 0;
}

/* Picks the main package (*pkg: "." or "cmd/<name>") and says why. */
static int pick_main(const kiln_detect_ctx_t *ctx, const kiln_gomod_t *m, kiln_plan_t *plan,
                     char **pkg, kiln_error_t *err)
{
    const char *want = ctx->overrides ? ctx->overrides->go_main : NULL;
    const char *src = kiln_detect_getenv(ctx, "KILN_GO_MAIN") ? "KILN_GO_MAIN" : "kiln.json goMain";
    _cleanup_strv_ char **mains = cmd_mains(ctx->tree);
    _cleanup_free_ char *name = module_name(m->module), *list = join_mains(mains);
    size_t n = 0;

    while (mains[n])
        n++;
    if (want != NULL) {
        if (override_main(ctx->tree, want, src, pkg, err) < 0)
            return -1;
        kiln_plan_why(plan, KILN_WHY_START, "%s names the main package ./%s", src, *pkg);
        return 0;
    }
    if (is_main_dir(ctx->tree, ".")) {
        *pkg = kiln_xstrdup(".");
        kiln_plan_why(plan, KILN_WHY_START,
                      "the module's top directory is a main package (package main)%s%s%s",
                      n ? "; the others (" : "", n ? list : "",
                      n ? ") are built with goMain in kiln.json or KILN_GO_MAIN" : "");
        return 0;
    }
    if (n == 1) {
        *pkg = kiln_xstrdup(mains[0]);
        kiln_plan_why(plan, KILN_WHY_START, "./%s is the only main package under cmd/", mains[0]);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(mains[i] + 4, name) == 0) {
            *pkg = kiln_xstrdup(mains[i]);
            kiln_plan_why(plan, KILN_WHY_START,
                          "./%s is named like the module (%s) among the main packages %s", mains[i],
                          m->module, list);
            return 0;
        }
    if (n == 0)
        return kiln_error_set(err, 0,
                              "go.mod: module %s has no main package at its top or under cmd/: "
                              "name the package to build with \"goMain\" in kiln.json or "
                              "KILN_GO_MAIN",
                              m->module);
    return kiln_error_set(err, 0,
                          "go.mod: module %s has several main packages (%s) and none is named "
                          "like the module (%s): choose one with \"goMain\" in kiln.json or "
                          "KILN_GO_MAIN",
                          m->module, list, name);
}

/* The Go release (handlers/go_release) and the toolchain that brings it. */
static int plan_version(const kiln_detect_ctx_t *ctx, const kiln_gomod_t *m, kiln_plan_t *plan,
                        kiln_error_t *err)
{
    kiln_go_request_t rq = {.go = m->go,
                            .go_line = m->go_line,
                            .toolchain = m->toolchain,
                            .toolchain_line = m->toolchain_line};
    _cleanup_free_ char *ver = NULL, *why = NULL, *src = NULL;

    if (ctx->overrides && ctx->overrides->go_version) {
        rq.override = ctx->overrides->go_version;
        rq.override_src =
            kiln_detect_getenv(ctx, "KILN_GO_VERSION") ? "KILN_GO_VERSION" : "kiln.json goVersion";
    }
    if (kiln_go_select(&rq, &ver, &why, &src, err) < 0)
        return -1;
    kiln_plan_set(&plan->language, "go");
    kiln_plan_set(&plan->version, ver);
    kiln_plan_set(&plan->version_source, src);
    kiln_plan_why(plan, KILN_WHY_VERSION, "%s", why);
    plan->toolchain.name = kiln_xstrdup("go");
    plan->toolchain.version = kiln_xstrdup(ver);
    plan->toolchain.package = kiln_xstrdup("golang.org/toolchain");
    plan->toolchain.prefix = kiln_xstrdup(GO_ROOT);
    plan->toolchain.build_only = true;
    return 0;
}

/* The build stages' Go settings: the fetched toolchain first on PATH and used as
 * is (GOTOOLCHAIN=local: the build never downloads another Go), modules through
 * the proxy (GOPROXY, or KILN_GOPROXY), the caches where the cache mounts are,
 * static binaries; -mod=mod only when go.sum is missing and there is something
 * to download (go build would refuse the missing sums otherwise). */
static int plan_env(const kiln_detect_ctx_t *ctx, const kiln_gomod_t *m, kiln_plan_t *plan,
                    kiln_error_t *err)
{
    const char *proxy = kiln_detect_getenv(ctx, "KILN_GOPROXY");
    bool sum = kiln_tree_is_file(ctx->tree, "go.sum"),
         vendor = kiln_tree_is_dir(ctx->tree, "vendor");

    if (kiln_plan_setenv_build(plan, "PATH",
                               GO_ROOT "/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:"
                                       "/usr/sbin:/usr/bin:/sbin:/bin",
                               err) < 0 ||
        kiln_plan_setenv_build(plan, "GOTOOLCHAIN", "local", err) < 0 ||
        kiln_plan_setenv_build(plan, "GOPROXY", proxy ? proxy : GO_DEFAULT_PROXY, err) < 0 ||
        kiln_plan_setenv_build(plan, "GOMODCACHE", GO_MODCACHE, err) < 0 ||
        kiln_plan_setenv_build(plan, "GOCACHE", GO_BUILDCACHE, err) < 0 ||
        kiln_plan_setenv_build(plan, "CGO_ENABLED", "0", err) < 0)
        return -1;
    if (!sum && !vendor && m->has_require) {
        kiln_plan_add(plan->notes, &plan->n_notes, err,
                      "go.sum is missing: GOFLAGS=-mod=mod lets the build record the sums of the "
                      "modules it downloads (commit go.sum to pin them)");
        return kiln_plan_setenv_build(plan, "GOFLAGS", "-mod=mod", err);
    }
    return 0;
}

int kiln_go_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL, *pkg = NULL, *bin = NULL, *name = NULL;
    kiln_gomod_t m = {0};
    int r = kiln_tree_read(ctx->tree, "go.mod", &text, err), ret = -1;

    if (r <= 0)
        return r; /* the message names go.mod and the tree */
    if (kiln_gomod_parse(text, strlen(text), &m, err) < 0)
        return -1;
    kiln_plan_set(&plan->provider, "go");
    kiln_plan_set(&plan->package_manager, "go");
    kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "go.mod: Go modules");
    if (plan->project == NULL) {
        _cleanup_free_ char *mn = module_name(m.module);
        plan->project = kiln_detect_project_name(mn);
    }
    if (plan_version(ctx, &m, plan, err) < 0 || plan_env(ctx, &m, plan, err) < 0 ||
        pick_main(ctx, &m, plan, &pkg, err) < 0)
        goto out;
    if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "go.mod") < 0 ||
        (kiln_tree_is_file(ctx->tree, "go.sum") &&
         kiln_plan_add(plan->manifests, &plan->n_manifests, err, "go.sum") < 0))
        goto out;
    if (m.has_require) {
        kiln_plan_set(&plan->install, "go mod download");
        kiln_plan_why(plan, KILN_WHY_INSTALL,
                      "go.mod requires modules: downloaded through the Go module proxy once per "
                      "go.mod/go.sum change (the module cache is a cache mount)");
    }
    /* the binary is named after its main package: the module's name for "." */
    {
        _cleanup_free_ char *mn = module_name(m.module);
        name = kiln_detect_project_name(strcmp(pkg, ".") == 0 ? mn : strrchr(pkg, '/') + 1);
    }
    bin = kiln_xasprintf("/usr/local/bin/%s", name);
    plan->build = kiln_xasprintf("go build -trimpath -buildvcs=false -ldflags=\"-s -w -buildid=\" "
                                 "-o %s %s%s",
                                 bin, strcmp(pkg, ".") == 0 ? "" : "./", pkg);
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "a static binary (CGO_ENABLED=0) of the main package %s%s, reproducible: "
                  "-trimpath, no VCS stamp, no build id, no symbol table",
                  strcmp(pkg, ".") == 0 ? "at the module's top" : "./",
                  strcmp(pkg, ".") == 0 ? "" : pkg);
    plan->start = kiln_xstrdup(bin);
    /* Go's caches are content-addressed and verified (go.sum, action ids): one
     * of each for every Go project of the namespace, so that a project's first
     * build does not compile the standard library again */
    if (kiln_plan_add_shared_cache(plan, "go-mod", GO_MODCACHE, err) < 0 ||
        kiln_plan_add_shared_cache(plan, "go-build", GO_BUILDCACHE, err) < 0 ||
        kiln_plan_add(plan->deps, &plan->n_deps, err, "%s", bin) < 0)
        goto out;
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    kiln_plan_why(plan, KILN_WHY_OUTPUT,
                  "a Go service: an image of the binary alone on a minimal run image (CA "
                  "certificates, time zones, no shell)");
    plan->build_image = kiln_detect_image(ctx, "go-build");
    plan->run_image = kiln_detect_image(ctx, "minimal-run");
    ret = 1;
out:
    kiln_gomod_free(&m);
    return ret;
}
