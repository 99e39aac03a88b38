/* Unit tests for handlers/ (plan JSON, Procfile, kiln.json, detection) and
 * the pure helpers of utils/git (URL checks, ref split, redaction). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "handlers/detect.h"
#include "handlers/kiln_json.h"
#include "handlers/plan.h"
#include "handlers/procfile.h"
#include "handlers/render.h"
#include "utils/cleanup.h"
#include "utils/git.h"

static void test_plan_json_round_trip(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = kiln_plan_new(), *q = NULL;
    _cleanup_free_ char *a = NULL, *b = NULL;
    kiln_error_t err = {0};

    kiln_plan_set(&p->provider, "node");
    kiln_plan_set(&p->language, "node");
    kiln_plan_set(&p->version, "20");
    kiln_plan_set(&p->install, "npm ci");
    kiln_plan_set(&p->start, "npm start");
    assert_int_equal(kiln_plan_add(p->manifests, &p->n_manifests, &err, "package.json"), 0);
    assert_int_equal(kiln_plan_add_cache(p, "app-npm", "/root/.npm", &err), 0);
    assert_int_equal(kiln_plan_setenv(p, "PORT", "8080", &err), 0);
    assert_int_equal(kiln_plan_setenv(p, "PORT", "9090", &err), 0);
    assert_string_equal(kiln_plan_getenv(p, "PORT"), "9090");
    assert_int_equal(p->n_env, 1);
    p->outputs = KILN_PLAN_OUT_IMAGE | KILN_PLAN_OUT_FUNCTION;
    kiln_plan_set(&p->handler, "index.handler");
    p->port = 9090;
    kiln_plan_why(p, KILN_WHY_VERSION, "package.json engines.node \"%s\"", ">=20");
    kiln_plan_why(p, KILN_WHY_START, "first");
    kiln_plan_why(p, KILN_WHY_START, "package.json scripts.start"); /* replaces */
    assert_int_equal(kiln_plan_to_json(p, &a, &err), 0);
    assert_int_equal(kiln_plan_from_json(a, strlen(a), &q, &err), 0);
    assert_int_equal(kiln_plan_to_json(q, &b, &err), 0);
    assert_string_equal(a, b);
    assert_int_equal(q->outputs, KILN_PLAN_OUT_IMAGE | KILN_PLAN_OUT_FUNCTION);
    assert_string_equal(q->caches[0].target, "/root/.npm");
    assert_string_equal(q->why[KILN_WHY_VERSION], "package.json engines.node \">=20\"");
    assert_string_equal(q->why[KILN_WHY_START], "package.json scripts.start");
    assert_null(q->why[KILN_WHY_BUILD]);
    assert_non_null(strstr(a, "\"why\": {"));
    {
        /* the words form: each choice with its reason under it */
        _cleanup_free_ char *t = kiln_plan_explain(q);
        assert_non_null(strstr(t, "version          node 20\n"));
        assert_non_null(strstr(t, "why: package.json engines.node \">=20\"\n"));
        assert_non_null(strstr(t, "start command    npm start\n"));
    }
}

static void test_plan_json_errors(void **state)
{
    kiln_plan_t *p = NULL;
    kiln_error_t err = {0};
    const char *bad[] = {
        "[]",
        "{}",
        "{\"provider\": 3}",
        "{\"provider\": \"node\", \"outputs\": [{\"type\": \"zip\"}]}",
        "{\"provider\": \"node\", \"port\": 70000}",
        "{\"provider\": \"node\", \"caches\": [{\"id\": 1}]}",
        "{\"provider\": \"node\", \"manifests\": [1]}",
        "{\"provider\": \"node\",",
        "{\"provider\": \"node\", \"why\": []}",
        "{\"provider\": \"node\", \"why\": {\"build\": 1}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_error_clear(&err);
        assert_int_equal(kiln_plan_from_json(bad[i], strlen(bad[i]), &p, &err), -1);
        assert_true(strncmp(err.msg, "plan:", 5) == 0);
        assert_null(p);
    }
}

static void test_procfile(void **state)
{
    const char *t = "# comment\n\nworker: ./work\nweb:   node server.js --port $PORT  \r\n";
    _cleanup_free_ char *cmd = NULL;
    char *none = NULL;
    kiln_error_t err = {0};

    assert_int_equal(kiln_procfile_get(t, strlen(t), "web", &cmd, &err), 1);
    assert_string_equal(cmd, "node server.js --port $PORT");
    assert_int_equal(kiln_procfile_get(t, strlen(t), "release", &none, &err), 0);
    assert_null(none);
    assert_int_equal(kiln_procfile_get("a b: c\n", 7, "web", &none, &err), -1);
    assert_string_equal(err.msg, "Procfile line 1: process names use letters, digits, _ and -");
    assert_int_equal(kiln_procfile_get("x: y\nweb\n", 9, "web", &none, &err), -1);
    assert_string_equal(err.msg, "Procfile line 2: expected \"name: command\"");
    assert_int_equal(kiln_procfile_get("web:   \n", 8, "web", &none, &err), -1);
}

static void test_kiln_json(void **state)
{
    const char *t =
        "{\"install\": \"make deps\", \"outputs\": [\"static\", \"function\"],"
        " \"env\": {\"A_1\": \"x\"}, \"port\": 3000, \"function\": {\"handler\": \"h.main\"}}";
    kiln_overrides_t o;
    kiln_error_t err = {0};

    assert_int_equal(kiln_overrides_parse(t, strlen(t), &o, &err), 0);
    assert_string_equal(o.install, "make deps");
    assert_int_equal(o.outputs, KILN_PLAN_OUT_STATIC | KILN_PLAN_OUT_FUNCTION);
    assert_int_equal(o.port, 3000);
    assert_string_equal(o.env[0], "A_1=x");
    assert_string_equal(o.handler, "h.main");
    kiln_overrides_free(&o);

    assert_int_equal(kiln_overrides_parse("{\"env\": {\"1BAD\": \"x\"}}", 22, &o, &err), -1);
    assert_non_null(strstr(err.msg, "not a variable name"));
    assert_int_equal(kiln_overrides_parse("{\"outputDir\": \"../x\"}", 21, &o, &err), -1);
    assert_int_equal(kiln_overrides_parse("{\"function\": {\"dir\": \"../..\"}}", 30, &o, &err),
                     -1);
    assert_string_equal(err.msg,
                        "kiln.json: function.dir must be a relative path inside the repository");
    /* every provider of the detection order can be asked for, and has its own settings */
    assert_int_equal(kiln_overrides_parse("{\"provider\": \"rust\"}", 20, &o, &err), 0);
    kiln_overrides_free(&o);
    assert_int_equal(kiln_overrides_parse("{\"provider\": \"rusty\"}", 21, &o, &err), -1);
    assert_string_equal(err.msg, "kiln.json: provider must be one of dockerfile, deno, ruby, php, "
                                 "node, python, go, java, rust, static, procfile");
    t = "{\"java\": {\"version\": \"11\"}, \"rust\": {\"bin\": \"srv\"}}";
    assert_int_equal(kiln_overrides_parse(t, strlen(t), &o, &err), 0);
    assert_int_equal(o.n_stack, 2);
    assert_string_equal(o.stack[0], "java.version=11");
    assert_string_equal(o.stack[1], "rust.bin=srv");
    kiln_overrides_free(&o);
    t = "{\"rust\": {\"bin\": 1}}";
    assert_int_equal(kiln_overrides_parse(t, strlen(t), &o, &err), -1);
    assert_string_equal(err.msg, "kiln.json: rust.bin must be a string (no NUL)");
    assert_int_equal(kiln_overrides_parse("{\"a\": 1, \"a\": 2}", 16, &o, &err), -1);
}

/* The output and function dirs of a plan (from kiln.json, a plan file or a handler) name a
 * directory of the source: a leading / or a .. component is refused before COPY --from=build
 * could take the build image's whole root into a site or a function zip. */
static void test_render_dirs(void **state)
{
    static const struct {
        const char *dir;
        int ok;
    } cases[] = {{".", 1},    {"out", 1}, {"apps/web/out", 1}, {".output/server", 1},
                 {"a..b", 1}, {"..", 0},  {"../../..", 0},     {"out/../../x", 0},
                 {"/etc", 0}, {"/", 0},   {"a/..", 0},         {"a b", 0}};
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int fn = 0; fn < 2; fn++) {
            _cleanup_plan_ kiln_plan_t *p = kiln_plan_new();
            _cleanup_free_ char *df = NULL;
            kiln_render_opts_t ro = {0};
            kiln_error_t err = {0};
            int r;

            kiln_plan_set(&p->provider, "static");
            kiln_plan_set(&p->build_image, "oci:/images/base");
            kiln_plan_set(&p->workdir, "/app");
            p->outputs = fn ? KILN_PLAN_OUT_FUNCTION : KILN_PLAN_OUT_STATIC;
            kiln_plan_set(fn ? &p->function_dir : &p->output_dir, cases[i].dir);
            r = kiln_render_dockerfile(p, &ro, &df, &err);
            if ((r == 0) != cases[i].ok)
                fail_msg("%s dir \"%s\": %s", fn ? "function" : "output", cases[i].dir,
                         r == 0 ? "accepted" : err.msg);
            if (!cases[i].ok && strstr(err.msg, fn ? "function dir" : "output dir") == NULL)
                fail_msg("\"%s\": the error does not name the dir: %s", cases[i].dir, err.msg);
        }
    }
}

static void test_project_name(void **state)
{
    char *s = kiln_detect_project_name("My  Cool_App!!");
    assert_string_equal(s, "my-cool-app");
    free(s);
    s = kiln_detect_project_name("///");
    assert_string_equal(s, "app");
    free(s);
}

static void test_git_url_helpers(void **state)
{
    char *u = NULL, *r = NULL;

    assert_true(kiln_git_is_url("https://example.invalid/a.git"));
    assert_true(kiln_git_is_url("git@example.invalid:org/repo.git"));
    assert_true(kiln_git_is_url("file:///srv/repo"));
    assert_false(kiln_git_is_url("./local/dir"));
    assert_false(kiln_git_is_url("/abs/dir"));
    assert_false(kiln_git_is_url("dir/with@at:colon/x"));

    kiln_git_split_ref("https://h/r.git#v1.2", &u, &r);
    assert_string_equal(u, "https://h/r.git");
    assert_string_equal(r, "v1.2");
    free(u);
    free(r);
    kiln_git_split_ref("https://h/r.git", &u, &r);
    assert_string_equal(u, "https://h/r.git");
    assert_null(r);
    free(u);

    u = kiln_git_redact("https://user:pa@ss@host:8443/r.git#main");
    assert_string_equal(u, "https://***@host:8443/r.git#main");
    free(u);
    u = kiln_git_redact("see https://tok@h/a and http://x:y@k/b end");
    assert_string_equal(u, "see https://***@h/a and http://***@k/b end");
    free(u);
    u = kiln_git_redact("git@host:org/r.git");
    assert_string_equal(u, "git@host:org/r.git");
    free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_json_round_trip),
        cmocka_unit_test(test_plan_json_errors),
        cmocka_unit_test(test_procfile),
        cmocka_unit_test(test_kiln_json),
        cmocka_unit_test(test_render_dirs),
        cmocka_unit_test(test_project_name),
        cmocka_unit_test(test_git_url_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
