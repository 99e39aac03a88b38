/* kiln — AWS Lambda packaging of Node apps: the adapter table and the runtime matched to
 * the Node major of the build (see node_lambda.h). */
#include "handlers/node_lambda.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handlers/node_framework.h"
#include "handlers/node_release.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/semver.h"

/* True when some release of `major` satisfies `range` (probed over the minors and
 * patches Node lines reach). */
static bool range_meets_major(const char *range, int major)
{
    char v[48];

    for (int mi = 0; mi <= 60; mi++)
        for (int pa = 0; pa <= 40; pa++) {
            snprintf(v, sizeof(v), "%d.%d.%d", major, mi, pa);
            if (kiln_semver_satisfies(range, v) == 1)
                return true;
        }
    return false;
}

/* True when `range` meets a Node major (1..60) other than the n majors `m`. */
static bool meets_other_major(const char *range, const int *m, int n)
{
    for (int major = 1; major <= 60; major++) {
        bool listed = false;
        for (int i = 0; i < n; i++)
            listed |= m[i] == major;
        if (!listed && range_meets_major(range, major))
            return true;
    }
    return false;
}

/* `range` narrowed to the majors `m` (each set of the range intersected with each
 * major's x-range), malloc'ed; NULL when the result does not fit a range. */
static char *narrow_range(const char *range, const int *m, int n)
{
    kiln_buf_t b;
    _cleanup_free_ char *copy = kiln_xstrdup(range);
    char *save = NULL, *res;
    bool first = true;

    kiln_buf_init(&b, KILN_SEMVER_RANGE_MAX);
    for (char *set = copy; set; set = save) {
        char *bar = strstr(set, "||");
        save = bar ? bar + 2 : NULL;
        if (bar)
            *bar = '\0';
        while (*set == ' ')
            set++;
        for (size_t l = strlen(set); l > 0 && set[l - 1] == ' '; l--)
            set[l - 1] = '\0';
        for (int i = 0; i < n; i++) {
            if (kiln_buf_appendf(&b, NULL, "%s%s%s%d.x", first ? "" : " || ", set,
                                 set[0] ? " " : "", m[i]) < 0) {
                kiln_buf_free(&b);
                return NULL;
            }
            first = false;
        }
    }
    res = kiln_buf_steal(&b, NULL);
    if (res == NULL || strlen(res) >= KILN_SEMVER_RANGE_MAX ||
        kiln_semver_range_check(res, NULL) < 0) {
        free(res);
        return NULL;
    }
    return res;
}

/* "nodejs22.x, nodejs24.x" for the majors `m`, malloc'ed. */
static char *runtime_list(const int *m, int n)
{
    kiln_buf_t b;

    kiln_buf_init(&b, 0);
    for (int i = 0; i < n; i++)
        kiln_buf_appendf(&b, NULL, "%snodejs%d.x", i ? ", " : "", m[i]);
    return kiln_buf_steal(&b, NULL);
}

/* The version note detection wrote for Node `req` ("Node 26: the current LTS line ...")
 * says what the function build uses instead, `narrowed` (the plan would contradict itself). */
static void renote_version(kiln_plan_t *plan, const char *req, const char *narrowed, bool def)
{
    size_t rl = strlen(req);

    for (size_t i = 0; i < plan->n_notes; i++) {
        const char *n = plan->notes[i];
        if (strncmp(n, "Node ", 5) != 0 || strncmp(n + 5, req, rl) != 0 ||
            (n[5 + rl] != ':' && n[5 + rl] != ' '))
            continue;
        free(plan->notes[i]);
        plan->notes[i] =
            def ? kiln_xasprintf("Node %.64s for the function: the default LTS line (%.64s) has no "
                                 "AWS Lambda runtime; %s is the newest Lambda runs",
                                 narrowed, req, plan->runtime)
                : kiln_xasprintf("Node %.64s, narrowed for the function to the lines AWS Lambda "
                                 "runs: %.64s (%s)",
                                 req, narrowed, plan->runtime);
    }
}

/* The runtime and the toolchain range narrowed to the Lambda majors (see header). */
static int function_runtime(kiln_plan_t *plan, kiln_error_t *err)
{
    int all[16], fit[16], n, nf = 0, pinned = 0;
    const char *range = plan->toolchain.version, *src = plan->version_source;
    _cleanup_free_ char *list = NULL, *narrowed = NULL, *req = NULL;

    if (plan->runtime != NULL && strncmp(plan->runtime, "nodejs", 6) != 0) {
        kiln_plan_why(plan, KILN_WHY_RUNTIME,
                      "kiln.json function.runtime %s (not a Lambda Node runtime: the Node "
                      "version is not matched to it)",
                      plan->runtime);
        return 0;
    }
    if (plan->runtime != NULL) {
        char *end;
        pinned = (int)strtol(plan->runtime + 6, &end, 10);
        if (pinned <= 0 || strcmp(end, ".x") != 0)
            return kiln_error_set(err, 0,
                                  "kiln.json function.runtime \"%.40s\" is not a Lambda Node "
                                  "runtime (nodejs<major>.x)",
                                  plan->runtime);
        all[0] = pinned;
        n = 1;
    } else {
        n = kiln_node_lambda_majors(time(NULL), all, 16);
    }
    list = runtime_list(all, n);
    if (range == NULL || plan->toolchain.name == NULL)
        return kiln_error_set(err, 0, "plan: a Node function has no Node toolchain");
    req = kiln_xstrdup(range);
    if (!pinned && src != NULL && strcmp(src, "default") == 0 && n > 0) {
        /* nothing asked for a version: the newest line Lambda runs */
        fit[nf++] = all[n - 1];
    } else {
        for (int i = 0; i < n; i++)
            if (range_meets_major(range, all[i]))
                fit[nf++] = all[i];
    }
    if (nf == 0)
        return kiln_error_set(
            err, 0,
            "Node %.64s (from %s) has no AWS Lambda runtime: %s %s; pin %s (.nvmrc, "
            "engines.node or kiln.json \"nodeVersion\"), or name a custom runtime in kiln.json "
            "\"function\": {\"runtime\": ...}",
            range, src ? src : "the plan", pinned ? "kiln.json function.runtime is" : "Lambda runs",
            list, pinned ? "a version of that line" : "one of those lines");
    if (src != NULL && strcmp(src, "default") == 0)
        narrowed = kiln_xasprintf("%d", fit[0]);
    else if (!meets_other_major(range, fit, nf))
        narrowed = kiln_xstrdup(range); /* only Lambda's lines satisfy it already */
    else
        narrowed = narrow_range(range, fit, nf);
    if (narrowed == NULL)
        narrowed = kiln_xasprintf("%d", fit[nf - 1]);
    kiln_plan_set(&plan->toolchain.version, narrowed);
    kiln_plan_set(&plan->version, narrowed);
    free(plan->runtime);
    plan->runtime = kiln_xasprintf("nodejs%d.x", fit[nf - 1]);
    if (strcmp(req, narrowed) != 0)
        renote_version(plan, req, narrowed, src != NULL && strcmp(src, "default") == 0);
    if (pinned)
        kiln_plan_why(plan, KILN_WHY_RUNTIME,
                      "kiln.json function.runtime %s: the build uses Node %d to match it",
                      plan->runtime, pinned);
    else if (src != NULL && strcmp(src, "default") == 0)
        kiln_plan_why(plan, KILN_WHY_RUNTIME,
                      "nothing in the source names a Node version: Node %d, the newest line AWS "
                      "Lambda runs (%s)%s",
                      fit[0], list,
                      strcmp(req, narrowed) != 0 ? "; the default LTS line has no Lambda runtime"
                                                 : "");
    else if (strcmp(req, narrowed) == 0)
        kiln_plan_why(plan, KILN_WHY_RUNTIME, "Node %.64s from %s: AWS Lambda runs it as %s", req,
                      src ? src : "the plan", plan->runtime);
    else
        kiln_plan_why(plan, KILN_WHY_RUNTIME,
                      "Node %.64s from %s, narrowed to the lines AWS Lambda runs (%s): the "
                      "runtime of the major the build resolves to (the highest, %d, when the "
                      "registry has one)",
                      req, src ? src : "the plan", list, fit[nf - 1]);
    return 0;
}

/* The AWS Lambda adapters kiln knows, one row per framework: the package whose presence
 * makes the build write a handler (NULL: the framework's own preset), the build command
 * that asks for it (NULL: the project's), an env var it needs, the directory zipped (it
 * carries its own node_modules) and the handler in it. `advice` is what a project of the
 * framework without the adapter should do. The Lambda runtime itself comes from
 * handlers/node_release's table (function_runtime above). */
typedef struct lambda_adapter {
    const char *framework, *adapter, *build, *env, *dir, *handler, *advice;
} lambda_adapter_t;

static const lambda_adapter_t lambda_adapters[] = {
    {"nuxt", NULL, NULL, "NITRO_PRESET=aws-lambda", ".output/server", "index.handler", NULL},
    {"nitro", NULL, NULL, "NITRO_PRESET=aws-lambda", ".output/server", "index.handler", NULL},
    {"next", "@opennextjs/aws", "npx --no-install open-next build", NULL,
     ".open-next/server-functions/default", "index.handler",
     "add OpenNext (@opennextjs/aws) to devDependencies: kiln then builds with open-next build "
     "and zips .open-next/server-functions/default (index.handler)"},
    {"sveltekit", NULL, NULL, NULL, NULL, NULL,
     "no SvelteKit adapter kiln knows writes a Lambda handler (adapter-node makes a server: "
     "build an image); with an AWS adapter of your own, name its output in kiln.json "
     "\"function\": {\"dir\", \"handler\"}"},
    {"astro", NULL, NULL, NULL, NULL, NULL,
     "no Astro adapter kiln knows writes a Lambda handler (@astrojs/node makes a server: build "
     "an image); with an AWS adapter of your own, name its output in kiln.json \"function\": "
     "{\"dir\", \"handler\"}"},
    {"remix", NULL, NULL, NULL, NULL, NULL,
     "Remix runs on Lambda through a handler file of your own (@remix-run/architect's "
     "createRequestHandler): name it in kiln.json \"function\": {\"handler\"}, or build an "
     "image"},
    {"react-router", NULL, NULL, NULL, NULL, NULL,
     "React Router runs on Lambda through a handler file of your own "
     "(@react-router/architect's createRequestHandler): name it in kiln.json \"function\": "
     "{\"handler\"}, or build an image"},
    {"nest", NULL, NULL, NULL, NULL, NULL,
     "Nest runs on Lambda through a handler file of your own (@codegenie/serverless-express "
     "around the app): export it and name it in kiln.json \"function\": {\"handler\"}, or "
     "build an image"},
};

/* The row of framework `fw`, or NULL (a framework without one: Vite, Express...). */
static const lambda_adapter_t *adapter_row(const char *fw)
{
    for (size_t i = 0; fw && i < sizeof(lambda_adapters) / sizeof(lambda_adapters[0]); i++)
        if (strcmp(lambda_adapters[i].framework, fw) == 0)
            return &lambda_adapters[i];
    return NULL;
}

const char *kiln_node_lambda_adapter(const char *fw, json_t *pkg)
{
    const lambda_adapter_t *a = adapter_row(fw);

    return a && a->adapter && kiln_node_has_dep(pkg, a->adapter) ? a->adapter : NULL;
}

/* Applies the framework's Lambda adapter row (its build, env, dir and handler); sets
 * *advice to the row's advice when the project lacks its adapter. Returns 0 or -1. */
static int apply_adapter(kiln_plan_t *plan, const char **advice, kiln_error_t *err)
{
    const lambda_adapter_t *a = adapter_row(plan->framework);

    *advice = NULL;
    if (a == NULL)
        return 0;
    if (a->handler == NULL || (a->adapter && (plan->function_adapter == NULL ||
                                              strcmp(plan->function_adapter, a->adapter) != 0))) {
        *advice = a->advice;
        return 0;
    }
    if (a->env) {
        const char *eq = strchr(a->env, '=');
        _cleanup_free_ char *key = kiln_xstrndup(a->env, (size_t)(eq - a->env));
        if (kiln_plan_setenv(plan, key, eq + 1, err) < 0)
            return -1;
    }
    if (a->build) {
        kiln_plan_set(&plan->build, a->build);
        kiln_plan_why(plan, KILN_WHY_BUILD,
                      "package.json depends on %s: %s writes the Lambda handler", a->adapter,
                      a->build);
    }
    plan->handler = kiln_xstrdup(a->handler);
    kiln_plan_set(&plan->function_dir, a->dir);
    plan->function_bundled = true;
    if (a->adapter)
        kiln_plan_why(plan, KILN_WHY_HANDLER,
                      "package.json depends on %s: %s/%s exports handler, with the "
                      "node_modules it needs",
                      a->adapter, a->dir, strchr(a->handler, '.') ? "index.mjs" : a->handler);
    else
        kiln_plan_why(plan, KILN_WHY_HANDLER,
                      "%s's aws-lambda preset (%s for this build): %s/index.mjs exports "
                      "handler, with the node_modules it needs",
                      plan->framework, a->env, a->dir);
    return 0;
}

int kiln_node_function_plan(kiln_plan_t *plan, kiln_error_t *err)
{
    const char *fw = plan->framework, *advice = NULL;

    if (plan->handler == NULL && apply_adapter(plan, &advice, err) < 0)
        return -1;
    if (plan->handler == NULL && advice != NULL)
        return kiln_error_set(err, 0,
                              "a function output needs a handler and %s builds no AWS Lambda "
                              "handler: %s",
                              fw, advice);
    if (plan->handler == NULL)
        return kiln_error_set(
            err, 0,
            "a function output needs a handler and %s%s: set \"function\": {\"handler\": "
            "\"FILE.EXPORT\"} in kiln.json (and build what it names), or build an image",
            kiln_node_framework_generic(fw)
                ? "package.json has no main and there is no index.js or handler.js"
                : fw,
            kiln_node_framework_generic(fw) ? "" : " builds no AWS Lambda handler");
    if (plan->function_dir == NULL)
        plan->function_dir = kiln_xstrdup(".");
    return function_runtime(plan, err);
}
