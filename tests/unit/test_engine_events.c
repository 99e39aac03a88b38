/* Unit tests: the engine's step events (engine/events.c): the JSON and plain forms of each
 * kind, a round trip through the parser, and lines the parser refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/events.h"
#include "utils/cleanup.h"

static void test_json_forms(void **state)
{
    kiln_step_event_t start = {
        .step = 3, .kind = KILN_STEP_EVENT_START, .text = "RUN make", .seconds = -1};
    kiln_step_event_t cached = {.step = 4, .kind = KILN_STEP_EVENT_CACHED, .seconds = -1};
    kiln_step_event_t done = {.step = 5, .kind = KILN_STEP_EVENT_DONE, .seconds = 1.5};
    _cleanup_free_ char *a = kiln_step_event_json(&start);
    _cleanup_free_ char *b = kiln_step_event_json(&cached);
    _cleanup_free_ char *c = kiln_step_event_json(&done);
    assert_string_equal(a, "{\"step\":3,\"event\":\"start\",\"text\":\"RUN make\"}");
    assert_string_equal(b, "{\"step\":4,\"event\":\"cached\"}");
    assert_string_equal(c, "{\"step\":5,\"event\":\"done\",\"seconds\":1.5}");
    start.line = 12;
    {
        _cleanup_free_ char *d = kiln_step_event_json(&start);
        assert_string_equal(d,
                            "{\"step\":3,\"event\":\"start\",\"text\":\"RUN make\",\"line\":12}");
    }
}

static void test_json_is_ascii(void **state)
{
    kiln_step_event_t log = {
        .step = 1, .kind = KILN_STEP_EVENT_LOG, .text = "caf\xc3\xa9\n\"x\"", .seconds = -1};
    _cleanup_free_ char *s = kiln_step_event_json(&log);
    assert_string_equal(s, "{\"step\":1,\"event\":\"log\",\"text\":\"caf\\u00E9\\n\\\"x\\\"\"}");
}

static void test_plain_forms(void **state)
{
    struct {
        kiln_step_event_t ev;
        const char *want;
    } cases[] = {
        {{.step = 2, .kind = KILN_STEP_EVENT_START, .text = "[stage-0 1/2] FROM scratch"},
         "#2 [stage-0 1/2] FROM scratch"},
        {{.step = 2, .kind = KILN_STEP_EVENT_LOG, .text = "hello"}, "#2 hello"},
        {{.step = 2, .kind = KILN_STEP_EVENT_LOG}, "#2 "},
        {{.step = 7, .kind = KILN_STEP_EVENT_CACHED}, "#7 CACHED"},
        {{.step = 7, .kind = KILN_STEP_EVENT_DONE, .seconds = 0.04}, "#7 DONE 0.0s"},
        {{.step = 7, .kind = KILN_STEP_EVENT_DONE, .seconds = 12.25}, "#7 DONE 12.2s"},
        {{.step = 9, .kind = KILN_STEP_EVENT_ERROR, .text = "exit code: 1"},
         "#9 ERROR: exit code: 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_free_ char *s = kiln_step_event_plain(&cases[i].ev);
        assert_string_equal(s, cases[i].want);
    }
}

static void test_round_trip(void **state)
{
    const char *texts[] = {NULL, "", "a line", "tab\there \xe2\x9c\x93"};
    for (int k = KILN_STEP_EVENT_START; k <= KILN_STEP_EVENT_ERROR; k++) {
        for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
            kiln_step_event_t ev = {.step = 40 + k,
                                    .kind = (kiln_step_event_kind_t)k,
                                    .text = (char *)texts[t],
                                    .seconds = t % 2 ? 2.5 : -1,
                                    .line = (int)t * 3};
            kiln_step_event_t back = {0};
            kiln_step_event_kind_t kind;
            _cleanup_free_ char *s = kiln_step_event_json(&ev);
            assert_int_equal(kiln_step_event_parse(s, &back), 0);
            assert_int_equal(back.step, ev.step);
            assert_int_equal(back.kind, ev.kind);
            if (ev.text == NULL)
                assert_null(back.text);
            else
                assert_string_equal(back.text, ev.text);
            assert_true(back.seconds == ev.seconds);
            assert_int_equal(back.line, ev.line);
            assert_int_equal(kiln_step_event_kind(kiln_step_event_name(ev.kind), &kind), 0);
            assert_int_equal(kind, ev.kind);
            kiln_step_event_clear(&back);
            assert_null(back.text);
        }
    }
}

static void test_parse_refuses(void **state)
{
    const char *bad[] = {
        "",
        "#3 RUN make",
        "{",
        "[1,2]",
        "{\"event\":\"start\"}",
        "{\"step\":\"3\",\"event\":\"start\"}",
        "{\"step\":-1,\"event\":\"start\"}",
        "{\"step\":4294967296,\"event\":\"start\"}",
        "{\"step\":3}",
        "{\"step\":3,\"event\":\"started\"}",
        "{\"step\":3,\"event\":7}",
        "{\"step\":3,\"event\":\"log\",\"text\":5}",
        "{\"step\":3,\"event\":\"done\",\"seconds\":\"1\"}",
        "{\"step\":3,\"step\":4,\"event\":\"log\"}",
        "{\"step\":3,\"event\":\"start\",\"line\":0}",
        "{\"step\":3,\"event\":\"start\",\"line\":\"4\"}",
        "{\"step\":3,\"event\":\"start\",\"line\":4294967296}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_step_event_t ev = {.step = -7};
        assert_int_equal(kiln_step_event_parse(bad[i], &ev), -1);
        assert_int_equal(ev.step, -7); /* untouched */
    }
}

static void test_kind_names(void **state)
{
    kiln_step_event_kind_t k;
    assert_string_equal(kiln_step_event_name(KILN_STEP_EVENT_CACHED), "cached");
    assert_int_equal(kiln_step_event_kind("START", &k), -1);
    assert_int_equal(kiln_step_event_kind(NULL, &k), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_forms),    cmocka_unit_test(test_json_is_ascii),
        cmocka_unit_test(test_plain_forms),   cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_refuses), cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
