/* Unit tests for the Python provider's readers: handlers/pyspec (PEP 440 and Poetry
 * constraints against an interpreter version) and handlers/pyproject (dependency names,
 * the Python constraint, package or not, local path dependencies and their containment)
 * over pyproject.toml, Pipfile and requirements files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "handlers/pyproject.h"
#include "handlers/pyspec.h"

static const struct {
    const char *spec, *version;
    int expect; /* 1, 0, -1 unreadable */
} specs[] = {
    {"", "3.11.2", 1},
    {">=3.8", "3.11.2", 1},
    {">=3.12", "3.11.2", 0},
    {">3.11", "3.11.2", 1},
    {">3.11.2", "3.11.2", 0},
    {"<3.12", "3.11.2", 1},
    {"<3.11", "3.11.2", 0},
    {"<=3.11", "3.11.2", 0},
    {"<=3.11.2", "3.11.2", 1},
    {">=3.9,<3.13", "3.11.2", 1},
    {">=3.9, <3.11", "3.11.2", 0},
    {"==3.11.*", "3.11.2", 1},
    {"==3.11", "3.11.2", 0},
    {"==3.12.*", "3.11.2", 0},
    {"!=3.11.*", "3.11.2", 0},
    {"!=3.11.1", "3.11.2", 1},
    {"~=3.10", "3.11.2", 1},
    {"~=3.10.0", "3.11.2", 0},
    {"~=3.11.1", "3.11.2", 1},
    {"===3.11.2", "3.11.2", 1},
    {">=3.11rc1", "3.11.2", 1},
    {"^3.9", "3.11.2", 1},
    {"^3.12", "3.11.2", 0},
    {"^0.3", "3.11.2", 0},
    {"~3.11", "3.11.2", 1},
    {"~3.10", "3.11.2", 0},
    {"~3", "3.11.2", 1},
    {"*", "3.11.2", 1},
    {">=3.8 <3.12", "3.11.2", 1},
    {"^3.12 || ^3.10", "3.11.2", 1},
    {"^3.12 | ^4", "3.11.2", 0},
    {"3.11.2", "3.11.2", 1},
    {"==3.11.2", "3.11.2", 1},
    /* unreadable */
    {">=", "3.11.2", -1},
    {"python3", "3.11.2", -1},
    {">=3.*", "3.11.2", -1},
    {"~=3", "3.11.2", -1},
    {">=3.9;", "3.11.2", -1},
    {"||", "3.11.2", -1},
};

static void test_pyspec(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        kiln_error_t err = {0};
        int r = kiln_pyspec_allows(specs[i].spec, specs[i].version, &err);
        if (r != specs[i].expect)
            fail_msg("\"%s\" vs %s: got %d want %d (%s)", specs[i].spec, specs[i].version, r,
                     specs[i].expect, err.msg);
        if (r < 0 && strstr(err.msg, specs[i].spec) == NULL)
            fail_msg("\"%s\": the error does not quote it: %s", specs[i].spec, err.msg);
    }
}

/* What a manifest read gives: the flags, the Python constraint and its source, names it has
 * and lacks as dependencies (NULL-ended), and its local paths in order (NULL-ended). */
typedef struct want {
    bool poetry, uv, build_system, package, self_ref;
    const char *requires_python, *python_source;
    const char *has[5], *lacks[3], *paths[5];
} want_t;

static void check(const kiln_pyproject_t *p, const char *what, const want_t *w)
{
    size_t n = 0;
    if (p->poetry != w->poetry || p->uv != w->uv || p->build_system != w->build_system ||
        p->package != w->package || p->self_ref != w->self_ref)
        fail_msg("%s: poetry %d uv %d build_system %d package %d self_ref %d", what, p->poetry,
                 p->uv, p->build_system, p->package, p->self_ref);
    if (w->requires_python)
        assert_string_equal(p->requires_python, w->requires_python);
    if (w->python_source)
        assert_string_equal(p->python_source, w->python_source);
    for (size_t i = 0; w->has[i]; i++)
        if (!kiln_pyproject_has(p, w->has[i]))
            fail_msg("%s: has no dependency %s", what, w->has[i]);
    for (size_t i = 0; w->lacks[i]; i++)
        if (kiln_pyproject_has(p, w->lacks[i]))
            fail_msg("%s: has the dependency %s", what, w->lacks[i]);
    for (; w->paths[n]; n++)
        if (n >= p->n_paths || strcmp(p->paths[n], w->paths[n]) != 0)
            fail_msg("%s: path %zu is %s, not %s", what, n, n < p->n_paths ? p->paths[n] : "none",
                     w->paths[n]);
    assert_int_equal(p->n_paths, n);
}

static void test_pyproject(void **state)
{
    static const struct {
        const char *toml;
        want_t want;
    } cases[] = {
        {"[project]\nname = \"svc\"\nrequires-python = \">=3.10\"\n"
         "dependencies = [\"Django>=5\", \"gunicorn[gevent] ; sys_platform == 'linux'\","
         " \"Flask_Login\", \"local @ file:libs/local\", \"hatch @ {root:uri}/pkgs/h\"]\n"
         "[build-system]\nrequires = [\"hatchling\"]\n",
         {.build_system = true,
          .package = true,
          .requires_python = ">=3.10",
          .python_source = "pyproject.toml requires-python",
          .has = {"django", "Gunicorn", "flask-login", "flask.login"},
          .lacks = {"flask"},
          .paths = {"libs/local/", "pkgs/h/"}}},
        {"[tool.poetry]\nname = \"x\"\npackage-mode = false\n"
         "[tool.poetry.dependencies]\npython = \"^3.9\"\nfastapi = \"*\"\n"
         "lib = { path = \"./vendor/lib/../lib\", develop = true }\n"
         "multi = [{ version = \"1\", python = \"<3.9\" }, { path = \"m\" }]\n"
         "[tool.poetry.group.dev.dependencies]\npytest = \"*\"\n"
         "[build-system]\nrequires = [\"poetry-core\"]\n",
         {.poetry = true,
          .build_system = true,
          .requires_python = "^3.9",
          .has = {"fastapi"},
          .lacks = {"python", "pytest"},
          .paths = {"vendor/lib/", "m/"}}},
        {"[project]\nname = \"x\"\n[tool.uv]\npackage = false\n"
         "[tool.uv.sources]\nshared = { path = \"packages/shared\" }\n"
         "other = { git = \"https://example.invalid/x\" }\n"
         "[build-system]\nrequires = [\"hatchling\"]\n",
         {.uv = true, .build_system = true, .paths = {"packages/shared/"}}},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kiln_pyproject_t p = {0};
        kiln_error_t err = {0};
        char what[32];
        snprintf(what, sizeof(what), "pyproject case %zu", i);
        if (kiln_pyproject_read(&p, "pyproject.toml", cases[i].toml, strlen(cases[i].toml), &err) <
            0)
            fail_msg("%s: %s", what, err.msg);
        check(&p, what, &cases[i].want);
        kiln_pyproject_free(&p);
    }
}

/* Local paths out of the source fail naming the file, dependency and path. */
static void test_outside(void **state)
{
    static const struct {
        const char *toml, *msg;
    } bad[] = {
        {"[project]\ndependencies = [\"x @ file:///etc/x\"]\n", "dependency \"x\" is the local "
                                                                "path /etc/x, outside the source"},
        {"[project]\ndependencies = [\"x @ file://localhost/srv/x\"]\n", "path /srv/x, outside"},
        {"[project]\ndependencies = [\"x @ file:../x\"]\n", "path ../x, outside"},
        {"[tool.poetry.dependencies]\nx = { path = \"a/../../x\" }\n", "path a/../../x, outside"},
        {"[tool.uv.sources]\nx = { path = \"~/x\" }\n", "path ~/x, outside"},
        {"[tool.uv.sources]\nx = { path = \"a b\" }\n", "holds a space, quote"},
        {"[project]\nname = 1\nname = 2\n", "pyproject.toml line 3: key \"name\" is defined twice"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_pyproject_t p = {0};
        kiln_error_t err = {0};
        assert_int_equal(
            kiln_pyproject_read(&p, "pyproject.toml", bad[i].toml, strlen(bad[i].toml), &err), -1);
        if (strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].msg);
        kiln_pyproject_free(&p);
    }
}

static void test_pipfile_requirements(void **state)
{
    kiln_pyproject_t p = {0};
    kiln_error_t err = {0};
    const char *pipfile = "[packages]\nrequests = \"*\"\nlocal = { path = \"./pkg\", editable = "
                          "true }\n[dev-packages]\npytest = \"*\"\n[requires]\npython_version = "
                          "\"3.11\"\n";
    const char *reqs = "# comment\nFlask==3.0 ; python_version >= '3.8'  # inline\n"
                       "--index-url https://example.invalid/simple\n-r requirements/base.txt\n"
                       "-c constraints.txt\n-e ./libs/a\n-e git+https://example.invalid/x#egg=x\n"
                       "./wheels/b-1.0-py3-none-any.whl\nuvicorn[standard]>=0.30 \\\n"
                       "    --hash=sha256:abc\n-e .\n";
    (void)state;

    assert_int_equal(kiln_pyproject_read_pipfile(&p, "Pipfile", pipfile, strlen(pipfile), &err), 0);
    check(&p, "Pipfile",
          &(want_t){.requires_python = "==3.11.*",
                    .python_source = "Pipfile [requires] python_version",
                    .has = {"requests"},
                    .lacks = {"pytest"},
                    .paths = {"pkg/"}});
    kiln_pyproject_free(&p);

    assert_int_equal(kiln_pyproject_read_requirements(&p, "requirements.txt", reqs, &err), 0);
    check(&p, "requirements.txt",
          &(want_t){.self_ref = true,
                    .has = {"flask", "uvicorn"},
                    .paths = {"requirements/base.txt", "constraints.txt", "libs/a/",
                              "wheels/b-1.0-py3-none-any.whl"}});
    kiln_pyproject_free(&p);

    /* an include is relative to the file naming it */
    assert_int_equal(
        kiln_pyproject_read_requirements(&p, "requirements/prod.txt", "-r base.txt\n", &err), 0);
    assert_string_equal(p.paths[0], "requirements/base.txt");
    kiln_pyproject_free(&p);
    assert_int_equal(
        kiln_pyproject_read_requirements(&p, "requirements/prod.txt", "-r ../../up.txt\n", &err),
        -1);
    assert_non_null(strstr(err.msg, "requirements/prod.txt: dependency \"../../up.txt\""));
    kiln_pyproject_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pyspec),
        cmocka_unit_test(test_pyproject),
        cmocka_unit_test(test_outside),
        cmocka_unit_test(test_pipfile_requirements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
