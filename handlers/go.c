/* kiln — the Go provider: go.mod → `go mod download` with the module and
 * build caches, `CGO_ENABLED=0 go build`, and the binary as the deps layer. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Debian 12's golang-go. */
#define DEBIAN_GO_MINOR 19
#define GO_BINARY "/usr/local/bin/app"

/* Finds a directive line ("go 1.21", "module x") in go.mod; returns its first
 * argument (malloc'ed) or NULL. */
static char *directive(const char *gomod, const char *name)
{
    size_t n = strlen(name);
    const char *p = gomod;

    while (p && *p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '\t')) {
            const char *s = p + n, *e;
            while (*s == ' ' || *s == '\t')
                s++;
            e = s;
            while (*e && *e != '\n' && *e != '\r' && *e != ' ' && *e != '\t')
                e++;
            return kiln_xstrndup(s, (size_t)(e - s));
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

/* Checks the go directive against the image's Go 1.19. */
static int check_go_version(const char *ver, kiln_plan_t *plan, kiln_error_t *err)
{
    long major, minor = 0;
    char *end;

    major = strtol(ver, &end, 10);
    if (end == ver)
        return kiln_error_set(err, 0, "go.mod: cannot read the go directive \"%.32s\"", ver);
    if (*end == '.')
        minor = strtol(end + 1, &end, 10);
    if (major != 1 || minor > DEBIAN_GO_MINOR)
        return kiln_error_set(err, 0,
                              "go.mod asks for Go %s but the build image has Go 1.%d (Debian 12); "
                              "lower the go directive to 1.%d or build with a Dockerfile",
                              ver, DEBIAN_GO_MINOR, DEBIAN_GO_MINOR);
    kiln_plan_set(&plan->version_source, "go.mod");
    return 0;
}

int kiln_go_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *gomod = NULL, *module = NULL, *ver = NULL, *pkg = NULL;
    int r = kiln_tree_read(ctx->tree, "go.mod", &gomod, err);

    if (r <= 0)
        return r;
    kiln_plan_set(&plan->provider, "go");
    kiln_plan_set(&plan->package_manager, "go");
    kiln_plan_set(&plan->language, "go");
    free(plan->version);
    plan->version = kiln_xasprintf("1.%d", DEBIAN_GO_MINOR);
    kiln_plan_set(&plan->version_source, "default");
    module = directive(gomod, "module");
    if (module == NULL)
        return kiln_error_set(err, 0, "go.mod: no module directive");
    if (plan->project == NULL) {
        const char *slash = strrchr(module, '/');
        plan->project = kiln_detect_project_name(slash ? slash + 1 : module);
    }
    ver = directive(gomod, "go");
    if (ver != NULL && check_go_version(ver, plan, err) < 0)
        return -1;
    if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "go.mod") < 0)
        return -1;
    if (kiln_tree_is_file(ctx->tree, "go.sum") &&
        kiln_plan_add(plan->manifests, &plan->n_manifests, err, "go.sum") < 0)
        return -1;
    kiln_plan_set(&plan->install, "go mod download");
    /* The main package: the root, else the only directory under cmd/. */
    pkg = kiln_xstrdup(".");
    if (!kiln_tree_is_file(ctx->tree, "main.go") && kiln_tree_is_dir(ctx->tree, "cmd")) {
        kiln_error_t e2 = {0};
        char **names = kiln_tree_list(ctx->tree, "cmd", 2, &e2);
        if (names && names[0] && !names[1]) {
            free(pkg);
            pkg = kiln_xasprintf("./cmd/%s", names[0]);
        }
        kiln_strv_free(names);
    }
    plan->build = kiln_xasprintf("CGO_ENABLED=0 go build -trimpath -o " GO_BINARY " %s", pkg);
    plan->start = kiln_xstrdup(GO_BINARY);
    if (kiln_plan_add_cache(plan, "gomod", "/root/go/pkg/mod", err) < 0 ||
        kiln_plan_add_cache(plan, "gobuild", "/root/.cache/go-build", err) < 0 ||
        kiln_plan_add(plan->deps, &plan->n_deps, err, GO_BINARY) < 0)
        return -1;
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "go-build");
    plan->run_image = kiln_detect_image(ctx, "base");
    return 1;
}
