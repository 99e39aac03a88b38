/* Unit tests: job/explain (an auto build's failing step in the user's terms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "handlers/plan.h"
#include "job/explain.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define FIXTURE KILN_SOURCE_ROOT "/tests/fixtures/node-fail-build"

static kiln_plan_t *node_plan(const char *pm_run)
{
    kiln_plan_t *p = kiln_plan_new();
    kiln_plan_set(&p->provider, "node");
    kiln_plan_set(&p->install, "npm ci");
    kiln_plan_set(&p->build, pm_run);
    kiln_plan_set(&p->prune, "npm prune --omit=dev");
    return p;
}

/* The engine's message for a failing RUN of the rendered Dockerfile. */
static char *engine_msg(const char *cmd, int status)
{
    return kiln_xasprintf(
        "Dockerfile:11: process \"RUN --mount=type=cache,id=x-npm,target=/root/.npm "
        "/bin/sh -c %s # buildkit\" did not complete successfully: exit code: "
        "%d\n  line one\n  Error: last line",
        cmd, status);
}

static void test_build_script(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = node_plan("npm run build");
    _cleanup_free_ char *msg = engine_msg("npm run build", 3);
    _cleanup_free_ char *t = NULL;
    (void)state;
    kiln_plan_why(p, KILN_WHY_BUILD, "package.json scripts.build: node build.js");
    t = kiln_explain_step_failure(p, FIXTURE, msg);
    assert_non_null(t);
    assert_non_null(strstr(t, "the build step failed: `npm run build` exited with status 3"));
    assert_non_null(strstr(t, "`npm run build` runs package.json scripts.build: node build.js"));
    /* the reason only repeats the script: not shown again */
    assert_null(strstr(t, "because"));
    assert_non_null(strstr(t, "the last lines of its output:\n  line one\n  Error: last line"));
    assert_null(strstr(t, "Dockerfile"));
}

static void test_install_and_overrides(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = node_plan("yarn build");
    _cleanup_free_ char *m1 = engine_msg("npm ci", 1);
    _cleanup_free_ char *m2 = engine_msg("yarn build", 2);
    _cleanup_free_ char *t1 = NULL, *t2 = NULL;
    (void)state;
    kiln_plan_why(p, KILN_WHY_INSTALL, "npm: installs exactly what the lockfile pins");
    kiln_plan_why(p, KILN_WHY_BUILD, "kiln.json \"build\"");
    t1 = kiln_explain_step_failure(p, FIXTURE, m1);
    assert_non_null(t1);
    assert_non_null(strstr(t1, "the install step failed: `npm ci` exited with status 1"));
    assert_non_null(strstr(t1, "because: npm: installs exactly what the lockfile pins"));
    assert_null(strstr(t1, "runs package.json")); /* npm ci is no script */
    /* yarn without "run" still names the script; the override's reason is told */
    t2 = kiln_explain_step_failure(p, FIXTURE, m2);
    assert_non_null(t2);
    assert_non_null(strstr(t2, "`yarn build` runs package.json scripts.build: node build.js"));
    assert_non_null(strstr(t2, "because: kiln.json \"build\""));
}

static void test_not_a_plan_step(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = node_plan("npm run build");
    _cleanup_free_ char *other = engine_msg("rm -rf node_modules", 1);
    _cleanup_free_ char *script = NULL;
    (void)state;
    assert_null(kiln_explain_step_failure(p, FIXTURE, other));
    assert_null(kiln_explain_step_failure(p, FIXTURE, "Dockerfile:3: unknown instruction: FOO"));
    assert_null(kiln_explain_step_failure(p, FIXTURE, "pulling base: 404"));
    assert_null(kiln_explain_step_failure(NULL, FIXTURE, "x"));
    /* no package.json where it looks (or none given): the command without the script */
    script = engine_msg("npm run build", 3);
    {
        _cleanup_free_ char *t = kiln_explain_step_failure(p, "/nonexistent-kiln-dir", script);
        assert_non_null(t);
        assert_null(strstr(t, "runs package.json"));
        assert_non_null(strstr(t, "exited with status 3"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_script),
        cmocka_unit_test(test_install_and_overrides),
        cmocka_unit_test(test_not_a_plan_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
