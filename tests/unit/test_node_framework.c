/* Unit tests for handlers/node_framework (literal options of a framework config, a
 * function's Lambda runtime and the narrowed Node range), the Lambda lines of
 * handlers/node_release and the plan's runFiles / bundled function in JSON and render. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "handlers/node_framework.h"
#include "handlers/node_lambda.h"
#include "handlers/node_release.h"
#include "handlers/plan.h"
#include "handlers/render.h"
#include "utils/cleanup.h"

/* `key`'s value in `text` equals `want` (NULL: no value). */
static void option_is(const char *text, const char *key, const char *want)
{
    _cleanup_free_ char *v = kiln_node_config_option(text, key);
    if (want == NULL)
        assert_null(v);
    else {
        assert_non_null(v);
        assert_string_equal(v, want);
    }
}

static void test_config_option(void **state)
{
    (void)state;
    option_is("module.exports = { output: 'standalone' }", "output", "standalone");
    option_is("export default {\n  \"output\" :\n \"export\",\n}", "output", "export");
    option_is("const c = { output: `export` }", "output", "export");
    option_is("// output: 'export'\nexport default { output: 'standalone' }", "output",
              "standalone");
    option_is("/* output: 'export' */ export default {}", "output", NULL);
    option_is("const s = \"output: 'export'\"; export default {}", "output", NULL);
    option_is("export default { ssr: false }", "ssr", "false");
    option_is("export default { myoutput: 'x', config.output: 'y' }", "output", NULL);
    option_is("export default { outputs: 'x' }", "output", NULL);
    option_is("adapter({ out: 'server' })", "out", "server");
    option_is("export default { output: process.env.OUT }", "output", "process");
    option_is("export default { output: 'a\\'b' }", "output", NULL); /* escapes: not taken */
    option_is("export default { output: '", "output", NULL);
    option_is("", "output", NULL);
    option_is("output", "output", NULL);
}

/* 2026-12-02 12:00 UTC */
#define DEC_2026 ((time_t)1796212800)

static void test_lambda_majors(void **state)
{
    int m[8], n;
    (void)state;
    n = kiln_node_lambda_majors(DEC_2026, m, 8);
    assert_int_equal(n, 2);
    assert_int_equal(m[0], 22);
    assert_int_equal(m[1], 24);
    n = kiln_node_lambda_majors((time_t)1767225600 /* 2026-01-01 */, m, 8);
    assert_int_equal(n, 3);
    assert_int_equal(m[0], 20);
    n = kiln_node_lambda_majors(DEC_2026, m, 1);
    assert_int_equal(n, 1);
}

/* A Node function plan with the toolchain range `range` from `src`. */
static kiln_plan_t *fn_plan(const char *range, const char *src, const char *runtime)
{
    kiln_plan_t *p = kiln_plan_new();
    kiln_plan_set(&p->provider, "node");
    kiln_plan_set(&p->language, "node");
    kiln_plan_set(&p->version, range);
    kiln_plan_set(&p->version_source, src);
    kiln_plan_set(&p->toolchain.name, "node");
    kiln_plan_set(&p->toolchain.version, range);
    kiln_plan_set(&p->handler, "index.handler");
    kiln_plan_set(&p->runtime, runtime);
    return p;
}

/* Only meaningful while Lambda runs 22 and 24 and not 26 (the table of 2026-12). */
static void test_function_runtime(void **state)
{
    static const struct {
        const char *range, *src, *runtime, *want_range, *want_runtime, *error;
    } cases[] = {
        {"22", ".nvmrc", NULL, "22", "nodejs22.x", NULL},
        {"^22.12", "engines.node", NULL, "^22.12", "nodejs22.x", NULL},
        {">=20", "engines.node", NULL, ">=20 22.x || >=20 24.x", "nodejs24.x", NULL},
        {"20.x || 24.x", "engines.node", NULL, "20.x 24.x || 24.x 24.x", "nodejs24.x", NULL},
        {"26", "default", NULL, "24", "nodejs24.x", NULL},
        {"26", ".nvmrc", NULL, NULL, NULL, "Node 26 (from .nvmrc) has no AWS Lambda runtime"},
        {"18", "engines.node", NULL, NULL, NULL, "Lambda runs nodejs22.x, nodejs24.x"},
        {">=20", "engines.node", "nodejs22.x", ">=20 22.x", "nodejs22.x", NULL},
        {"24", ".nvmrc", "nodejs22.x", NULL, NULL, "kiln.json function.runtime is nodejs22.x"},
        {"24", ".nvmrc", "provided.al2023", "24", "provided.al2023", NULL},
        {"24", ".nvmrc", "nodejs-latest", NULL, NULL, "is not a Lambda Node runtime"},
    };
    (void)state;
    if (kiln_node_lambda_majors(time(NULL), (int[8]){0}, 8) != 2)
        skip(); /* the table moved on: the cases name today's lines */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_plan_ kiln_plan_t *p = fn_plan(cases[i].range, cases[i].src, cases[i].runtime);
        kiln_error_t err = {0};
        int r = kiln_node_function_plan(p, &err);
        if (cases[i].error) {
            assert_int_equal(r, -1);
            if (strstr(err.msg, cases[i].error) == NULL)
                fail_msg("case %zu: %s", i, err.msg);
            continue;
        }
        if (r != 0)
            fail_msg("case %zu: %s", i, err.msg);
        assert_string_equal(p->toolchain.version, cases[i].want_range);
        assert_string_equal(p->runtime, cases[i].want_runtime);
        assert_non_null(p->why[KILN_WHY_RUNTIME]);
    }
    {
        /* the version note of detection says what the function build uses */
        _cleanup_plan_ kiln_plan_t *p = fn_plan("26", "default", NULL);
        kiln_error_t err = {0};
        kiln_plan_add(p->notes, &p->n_notes, NULL, "Node 26: the current LTS line");
        kiln_plan_add(p->notes, &p->n_notes, NULL, "Node 260 is no note of it");
        assert_int_equal(kiln_node_function_plan(p, &err), 0);
        assert_non_null(strstr(p->notes[0], "Node 24 for the function: the default LTS line (26) "
                                            "has no AWS Lambda runtime"));
        assert_string_equal(p->notes[1], "Node 260 is no note of it");
    }
}

static void test_function_handler(void **state)
{
    _cleanup_plan_ kiln_plan_t *nuxt = fn_plan("22", ".nvmrc", NULL), *next = NULL;
    kiln_error_t err = {0};
    (void)state;
    kiln_plan_set(&nuxt->handler, NULL);
    kiln_plan_set(&nuxt->framework, "nuxt");
    assert_int_equal(kiln_node_function_plan(nuxt, &err), 0);
    assert_string_equal(nuxt->handler, "index.handler");
    assert_string_equal(nuxt->function_dir, ".output/server");
    assert_true(nuxt->function_bundled);
    assert_string_equal(kiln_plan_getenv(nuxt, "NITRO_PRESET"), "aws-lambda");

    next = fn_plan("22", ".nvmrc", NULL);
    kiln_plan_set(&next->handler, NULL);
    kiln_plan_set(&next->framework, "next");
    assert_int_equal(kiln_node_function_plan(next, &err), -1);
    assert_non_null(strstr(err.msg, "next builds no AWS Lambda handler"));
}

static void test_run_files(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = kiln_plan_new(), *q = NULL;
    _cleanup_free_ char *json = NULL, *df = NULL, *bad = NULL;
    kiln_error_t err = {0};
    (void)state;
    kiln_plan_set(&p->provider, "node");
    kiln_plan_set(&p->build_image, "b");
    kiln_plan_set(&p->run_image, "r");
    kiln_plan_set(&p->start, "node server.js");
    kiln_plan_add(p->deps, &p->n_deps, NULL, "node_modules");
    kiln_plan_add(p->run_files, &p->n_run_files, NULL, ".next/standalone:.");
    kiln_plan_add(p->run_files, &p->n_run_files, NULL, "public");
    p->outputs = KILN_PLAN_OUT_IMAGE | KILN_PLAN_OUT_FUNCTION;
    p->function_bundled = true;
    assert_int_equal(kiln_plan_to_json(p, &json, &err), 0);
    assert_int_equal(kiln_plan_from_json(json, strlen(json), &q, &err), 0);
    assert_int_equal(q->n_run_files, 2);
    assert_string_equal(q->run_files[0], ".next/standalone:.");
    assert_true(q->function_bundled);
    q->outputs = KILN_PLAN_OUT_IMAGE;
    assert_int_equal(kiln_render_dockerfile(q, NULL, &df, &err), 0);
    assert_non_null(strstr(df, "COPY --from=build /app/.next/standalone /app\n"));
    assert_non_null(strstr(df, "COPY --from=build /app/public /app/public\n"));
    /* the run files are the whole app: no deps layer, no app dir copy */
    assert_null(strstr(df, "COPY --from=deps"));
    assert_null(strstr(df, "COPY --from=build /app/. /app"));
    assert_null(strstr(df, "rm -rf node_modules")); /* nothing of the app dir is copied */
    kiln_plan_set(&q->run_files[1], "../../etc:x");
    assert_int_equal(kiln_render_dockerfile(q, NULL, &bad, &err), -1);
    assert_non_null(strstr(err.msg, "run file ../../etc:x leaves the app dir"));
    {
        static const char bad_bundled[] =
            "{\"provider\":\"node\",\"outputs\":[{\"type\":\"function\",\"bundled\":1}]}";
        kiln_plan_t *r = NULL;
        assert_int_equal(kiln_plan_from_json(bad_bundled, strlen(bad_bundled), &r, &err), -1);
        assert_non_null(strstr(err.msg, "bundled must be a boolean"));
    }
}

/* run files with the production deps (SvelteKit's adapter-node, Astro's @astrojs/node): the
 * prune stage, the deps layer before the output, nothing else of the app dir; a bundled
 * function does not remove node_modules it never copies */
static void test_run_deps(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = kiln_plan_new(), *q = NULL;
    _cleanup_free_ char *json = NULL, *df = NULL, *fn = NULL;
    const char *deps, *out;
    kiln_error_t err = {0};
    (void)state;
    kiln_plan_set(&p->provider, "node");
    kiln_plan_set(&p->build_image, "b");
    kiln_plan_set(&p->run_image, "r");
    kiln_plan_set(&p->start, "node build");
    kiln_plan_set(&p->prune, "npm prune --omit=dev");
    kiln_plan_add(p->deps, &p->n_deps, NULL, "node_modules");
    kiln_plan_add(p->run_files, &p->n_run_files, NULL, "build");
    kiln_plan_add(p->run_files, &p->n_run_files, NULL, "package.json");
    p->run_deps = true;
    p->outputs = KILN_PLAN_OUT_IMAGE;
    assert_int_equal(kiln_plan_to_json(p, &json, &err), 0);
    assert_non_null(strstr(json, "\"runDeps\": true"));
    assert_int_equal(kiln_plan_from_json(json, strlen(json), &q, &err), 0);
    assert_true(q->run_deps);
    assert_int_equal(kiln_render_dockerfile(q, NULL, &df, &err), 0);
    assert_non_null(strstr(df, "FROM deps AS prod-deps\n"));
    deps = strstr(df, "COPY --from=prod-deps /app/node_modules /app/node_modules\n");
    out = strstr(df, "COPY --from=build /app/build /app/build\n");
    assert_non_null(deps);
    assert_non_null(out);
    assert_true(deps < out); /* the deps layer first: an app change keeps its digest */
    assert_non_null(strstr(df, "COPY --from=build /app/package.json /app/package.json\n"));
    assert_null(strstr(df, "COPY --from=build /app/. /app"));
    /* a bundled function (Nitro's .output/server) copies its dir alone */
    q->outputs = KILN_PLAN_OUT_FUNCTION;
    q->function_bundled = true;
    kiln_plan_set(&q->function_dir, ".output/server");
    assert_int_equal(kiln_render_dockerfile(q, NULL, &fn, &err), 0);
    assert_null(strstr(fn, "rm -rf node_modules"));
    assert_non_null(strstr(fn, "COPY --from=build /app/.output/server /\n"));
    {
        static const char bad[] = "{\"provider\":\"node\",\"runDeps\":\"yes\"}";
        kiln_plan_t *r = NULL;
        assert_int_equal(kiln_plan_from_json(bad, strlen(bad), &r, &err), -1);
        assert_non_null(strstr(err.msg, "\"runDeps\" must be a boolean"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_option),    cmocka_unit_test(test_lambda_majors),
        cmocka_unit_test(test_function_runtime), cmocka_unit_test(test_function_handler),
        cmocka_unit_test(test_run_files),        cmocka_unit_test(test_run_deps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
