/* Unit tests: solving a Dockerfile (engine/solve.c) without running it: the stages, the
 * target (last stage, by name in any case, by index), the stages it needs through FROM,
 * COPY --from and RUN --mount from= (also named by a global ARG or a build arg), unused
 * stages left out, the order (independent stages in waves of at most MAX_PARALLEL, the
 * target last), and Dockerfile errors naming the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/solve.h"
#include "utils/mem.h"

typedef struct solved {
    kiln_build_request_t req;
    engine_t *e;
    kiln_solve_graph_t g;
    size_t order[MAX_STAGES];
    size_t n_order;
} solved_t;

/* Parses and splits text with build args "K=V"; solves for target (NULL: the last stage). */
static int solve(solved_t *s, const char *text, const char *const *args, const char *target,
                 kiln_error_t *err)
{
    stage_t *t;
    memset(s, 0, sizeof(*s));
    s->e = kiln_xzalloc(sizeof(*s->e));
    s->e->req = &s->req;
    for (size_t i = 0; args && args[i]; i++) {
        _cleanup_free_ char *k = kiln_xstrndup(args[i], strcspn(args[i], "="));
        kv_set(&s->e->build_args, k, strchr(args[i], '=') + 1);
    }
    if (kiln_dockerfile_parse(text, strlen(text), "Dockerfile", &s->e->df, err) < 0 ||
        kiln_solve_split(s->e, err) < 0)
        return -1;
    t = target ? kiln_solve_find(s->e, target, s->e->n_stages) : &s->e->stages[s->e->n_stages - 1];
    if (t == NULL)
        return kiln_error_set(err, 0, "target stage \"%s\" could not be found", target);
    kiln_solve_graph(s->e, t, &s->g);
    s->n_order = kiln_solve_order(&s->g, s->order);
    return 0;
}

static void solved_free(solved_t *s)
{
    if (s->g.deps)
        kiln_solve_graph_free(&s->g);
    for (size_t i = 0; i < s->e->n_stages; i++)
        kiln_solve_stage_clear(&s->e->stages[i]);
    strv_clear(&s->e->meta_args);
    strv_clear(&s->e->build_args);
    kiln_dockerfile_free(s->e->df);
    free(s->e);
}

static void assert_order(const solved_t *s, const size_t *want, size_t n)
{
    assert_int_equal(s->n_order, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->order[i], want[i]);
}

static const char *const multi = "FROM scratch AS base\n"  /* 0 */
                                 "FROM scratch AS tools\n" /* 1 */
                                 "FROM base AS app\n"      /* 2 */
                                 "COPY --from=tools /t /t\n"
                                 "FROM scratch AS unused\n" /* 3 */
                                 "FROM app AS final\n"      /* 4 */
                                 "RUN --mount=type=bind,from=tools,target=/t true\n";

static void test_stages_and_names(void **state)
{
    solved_t s;
    kiln_error_t err = {0};
    assert_int_equal(solve(&s, multi, NULL, NULL, &err), 0);
    assert_int_equal(s.e->n_stages, 5);
    assert_string_equal(s.e->stages[2].name, "app");
    assert_ptr_equal(kiln_solve_find(s.e, "APP", s.e->n_stages), &s.e->stages[2]);
    assert_ptr_equal(kiln_solve_find(s.e, "3", s.e->n_stages), &s.e->stages[3]);
    assert_null(kiln_solve_find(s.e, "app", 2)); /* only earlier stages */
    assert_null(kiln_solve_find(s.e, "9", s.e->n_stages));
    assert_null(kiln_solve_find(s.e, "alpine", s.e->n_stages));
    /* BuildKit's automatic platform ARGs are in the global scope */
    assert_string_equal(kv_get(&s.e->meta_args, "TARGETPLATFORM"), "linux/amd64");
    assert_string_equal(kv_get(&s.e->meta_args, "BUILDARCH"), "amd64");
    assert_string_equal(kv_get(&s.e->meta_args, "TARGETVARIANT"), "");
    solved_free(&s);
}

static void test_deps_and_unused(void **state)
{
    solved_t s;
    kiln_error_t err = {0};
    const size_t want[] = {0, 1, 2, 4}; /* base+tools in one wave, app, then the target */
    assert_int_equal(solve(&s, multi, NULL, NULL, &err), 0);
    assert_true(s.g.deps[2][0]);  /* FROM base */
    assert_true(s.g.deps[2][1]);  /* COPY --from=tools */
    assert_true(s.g.deps[4][2]);  /* FROM app */
    assert_true(s.g.deps[4][1]);  /* RUN --mount from=tools */
    assert_false(s.g.deps[4][0]); /* only through app */
    assert_false(s.g.needed[3]);  /* unused: not built */
    assert_order(&s, want, 4);
    solved_free(&s);
}

static void test_targets(void **state)
{
    solved_t s;
    kiln_error_t err = {0};
    const size_t app[] = {0, 1, 2}, tools[] = {1};
    assert_int_equal(solve(&s, multi, NULL, "App", &err), 0);
    assert_order(&s, app, 3);
    assert_false(s.g.needed[4]);
    solved_free(&s);
    assert_int_equal(solve(&s, multi, NULL, "1", &err), 0);
    assert_order(&s, tools, 1);
    solved_free(&s);
    assert_int_equal(solve(&s, multi, NULL, "nope", &err), -1);
    assert_string_equal(err.msg, "target stage \"nope\" could not be found");
    solved_free(&s);
}

static void test_from_by_arg(void **state)
{
    static const char *const text = "ARG SRC=tools\n"
                                    "FROM scratch AS base\n"  /* 0 */
                                    "FROM scratch AS tools\n" /* 1 */
                                    "FROM scratch\n"          /* 2 */
                                    "COPY --from=${SRC} /x /x\n";
    const char *const args[] = {"SRC=base", NULL};
    const size_t by_default[] = {1, 2}, by_arg[] = {0, 2};
    solved_t s;
    kiln_error_t err = {0};
    assert_int_equal(solve(&s, text, NULL, NULL, &err), 0);
    assert_order(&s, by_default, 2);
    solved_free(&s);
    assert_int_equal(solve(&s, text, args, NULL, &err), 0); /* --build-arg SRC=base */
    assert_order(&s, by_arg, 2);
    solved_free(&s);
}

static void test_waves(void **state)
{
    /* six independent stages copied into the last: waves of MAX_PARALLEL */
    static const char *const text = "FROM scratch AS s0\nFROM scratch AS s1\nFROM scratch AS s2\n"
                                    "FROM scratch AS s3\nFROM scratch AS s4\nFROM scratch AS s5\n"
                                    "FROM scratch\n"
                                    "COPY --from=s0 / /\nCOPY --from=s1 / /\nCOPY --from=s2 / /\n"
                                    "COPY --from=s3 / /\nCOPY --from=s4 / /\nCOPY --from=s5 / /\n";
    const size_t want[] = {0, 1, 2, 3, 4, 5, 6};
    int st[7] = {0};
    size_t wave[MAX_PARALLEL];
    solved_t s;
    kiln_error_t err = {0};
    assert_int_equal(solve(&s, text, NULL, NULL, &err), 0);
    assert_order(&s, want, 7);
    assert_int_equal(kiln_solve_wave(&s.g, st, wave), MAX_PARALLEL);
    for (size_t i = 0; i < MAX_PARALLEL; i++)
        st[wave[i]] = 2;
    assert_int_equal(kiln_solve_wave(&s.g, st, wave), 6 - MAX_PARALLEL);
    st[4] = 3; /* a failed stage: nothing that needs it is ready, the target never is */
    st[5] = 2;
    assert_int_equal(kiln_solve_wave(&s.g, st, wave), 0);
    solved_free(&s);
}

static void test_errors(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"FROM scratch AS a\nFROM scratch AS A\n",
         "Dockerfile:2: duplicate stage name a: FROM scratch AS A"},
        {"RUN true\nFROM scratch\n", "Dockerfile:1: no build stage in current context: RUN true"},
        {"ARG X=1\n", "Dockerfile: no FROM instruction"},
        {"FROM scratch\nFETCH x\n", "Dockerfile:2: unknown instruction: fetch: FETCH x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        solved_t s;
        kiln_error_t err = {0};
        assert_int_equal(solve(&s, cases[i].text, NULL, NULL, &err), -1);
        assert_string_equal(err.msg, cases[i].msg);
        solved_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stages_and_names),
        cmocka_unit_test(test_deps_and_unused),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_from_by_arg),
        cmocka_unit_test(test_waves),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
