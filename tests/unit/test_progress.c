/* Unit tests: the build's progress renderer (src/progress.c, src/progress_tty.c) fed synthetic
 * step events, rendered into memory at a fixed terminal size with a fake clock: the tty frames
 * (running steps with elapsed time and last lines, parallel stages, CACHED, the live region
 * erased and redrawn), the summary, a failure's output once with FILE:LINE, escape sequences
 * from a step never reaching the terminal, and the plain and JSON forms. */
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/progress.h"
#include "src/progress_impl.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

typedef struct fixture {
    kiln_buf_t out;
    double clock;
    kiln_progress_t *p;
} fixture_t;

static void sink(void *ud, const char *data, size_t len)
{
    kiln_buf_append(&((fixture_t *)ud)->out, data, len, NULL);
}

typedef struct sink_ctx {
    kiln_buf_t *out;
    pthread_mutex_t *lock;
} sink_ctx_t;

static void sink_locked(void *ud, const char *data, size_t len)
{
    sink_ctx_t *c = ud;
    pthread_mutex_lock(c->lock);
    kiln_buf_append(c->out, data, len, NULL);
    pthread_mutex_unlock(c->lock);
}

static double fake_now(void *ud)
{
    return ((fixture_t *)ud)->clock;
}

static fixture_t *fx_new(kiln_build_progress_t mode, int width, const char *dockerfile)
{
    fixture_t *f = kiln_xzalloc(sizeof(*f));
    kiln_progress_opts_t o = {.mode = mode,
                              .fd = -1,
                              .write = sink,
                              .write_ud = f,
                              .width = width,
                              .height = 20,
                              .now = fake_now,
                              .now_ud = f,
                              .dockerfile = dockerfile};
    kiln_buf_init(&f->out, 0);
    f->clock = 100.0;
    f->p = kiln_progress_new(&o);
    return f;
}

static void fx_free(fixture_t *f)
{
    kiln_progress_free(f->p);
    kiln_buf_free(&f->out);
    free(f);
}

/* What was written since the last call (the buffer is emptied). */
static char *take(fixture_t *f)
{
    char *s = kiln_xstrndup(f->out.data ? f->out.data : "", f->out.len);
    f->out.len = 0;
    return s;
}

static void ev(fixture_t *f, int step, kiln_step_event_kind_t kind, const char *text, double secs,
               int line)
{
    kiln_step_event_t e = {
        .step = step, .kind = kind, .text = (char *)text, .seconds = secs, .line = line};
    kiln_progress_step(f->p, &e);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    return n;
}

static void test_mode_parse(void **state)
{
    kiln_build_progress_t m;
    assert_int_equal(kiln_progress_mode_parse("auto", 1, &m), 0);
    assert_int_equal(m, KILN_PROGRESS_TTY);
    assert_int_equal(kiln_progress_mode_parse("auto", 0, &m), 0);
    assert_int_equal(m, KILN_PROGRESS_PLAIN);
    assert_int_equal(kiln_progress_mode_parse("json", 1, &m), 0);
    assert_int_equal(m, KILN_PROGRESS_JSON);
    assert_int_equal(kiln_progress_mode_parse("quiet", 1, &m), 0);
    assert_int_equal(m, KILN_PROGRESS_QUIET);
    assert_int_equal(kiln_progress_mode_parse("tty", 0, &m), 0);
    assert_int_equal(m, KILN_PROGRESS_TTY);
    assert_int_equal(kiln_progress_mode_parse("fancy", 1, &m), -1);
}

/* Two stages running at once: each its own line with its elapsed time and last lines; the next
 * frame erases the live region (cursor up by its height, clear) before drawing again. */
static void test_tty_parallel_frame(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 60, NULL);
    _cleanup_free_ char *a = NULL, *b = NULL;

    ev(f, 1, KILN_STEP_EVENT_START, "[a 1/2] FROM base", -1, 1);
    ev(f, 1, KILN_STEP_EVENT_DONE, NULL, 0.25, 0);
    ev(f, 2, KILN_STEP_EVENT_START, "[b 1/2] FROM base", -1, 3);
    ev(f, 2, KILN_STEP_EVENT_CACHED, NULL, 0.0, 0);
    f->clock = 101.0;
    ev(f, 3, KILN_STEP_EVENT_START, "[a 2/2] RUN make", -1, 2);
    ev(f, 4, KILN_STEP_EVENT_START, "[b 2/2] RUN npm ci", -1, 4);
    for (int i = 1; i <= 8; i++) {
        char line[32];
        snprintf(line, sizeof(line), "make line %d", i);
        ev(f, 3, KILN_STEP_EVENT_LOG, line, -1, 0);
    }
    ev(f, 4, KILN_STEP_EVENT_LOG, "added 12 packages", -1, 0);
    f->clock = 103.5;
    kiln_progress_tick(f->p);
    a = take(f);
    assert_string_equal(a, " => [a 1/2] FROM base                                  0.2s\n"
                           " => CACHED [b 1/2] FROM base                           0.0s\n"
                           "[+] Building 3.5s (2/4)\n"
                           " => [a 2/2] RUN make                                   2.5s\n"
                           " => => # make line 3\n"
                           " => => # make line 4\n"
                           " => => # make line 5\n"
                           " => => # make line 6\n"
                           " => => # make line 7\n"
                           " => => # make line 8\n"
                           " => [b 2/2] RUN npm ci                                 2.5s\n"
                           " => => # added 12 packages\n");
    f->clock = 104.0;
    ev(f, 3, KILN_STEP_EVENT_DONE, NULL, 3.0, 0);
    kiln_progress_tick(f->p);
    b = take(f);
    /* 10 lines were on the screen: up 10, clear, the finished line, the new region */
    assert_string_equal(b, "\r\033[10A\033[J"
                           " => [a 2/2] RUN make                                   3.0s\n"
                           "[+] Building 4.0s (3/4)\n"
                           " => [b 2/2] RUN npm ci                                 3.0s\n"
                           " => => # added 12 packages\n");
    fx_free(f);
}

/* Nothing changed and nothing runs: no frame is drawn. */
static void test_tty_idle_no_redraw(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 60, NULL);
    _cleanup_free_ char *a = NULL, *b = NULL;
    ev(f, 1, KILN_STEP_EVENT_START, "[s 1/1] FROM base", -1, 1);
    ev(f, 1, KILN_STEP_EVENT_DONE, NULL, 0.1, 0);
    kiln_progress_tick(f->p);
    a = take(f);
    assert_non_null(strstr(a, "[+] Building"));
    kiln_progress_tick(f->p);
    b = take(f);
    assert_string_equal(b, "");
    fx_free(f);
}

/* More running steps than the screen has lines: the region stays within the screen. */
static void test_tty_fits_screen(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 60, NULL);
    _cleanup_free_ char *a = NULL;
    for (int i = 1; i <= 40; i++) {
        char t[32];
        snprintf(t, sizeof(t), "[s%d 1/1] RUN x", i);
        ev(f, i, KILN_STEP_EVENT_START, t, -1, i);
        ev(f, i, KILN_STEP_EVENT_LOG, "out", -1, 0);
    }
    kiln_progress_tick(f->p);
    a = take(f);
    /* height 20: at most 18 lines, the last of them saying how many more run */
    assert_int_equal(count(a, "\n"), 18);
    assert_non_null(strstr(a, " => ... 24 more running\n"));
    fx_free(f);
}

/* A long title is cut to the width, the time stays at the right edge; wide characters count
 * two columns. */
static void test_tty_width(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 30, NULL);
    _cleanup_free_ char *a = NULL;
    ev(f, 1, KILN_STEP_EVENT_START, "[s 1/1] RUN echo a very long command line", -1, 1);
    ev(f, 1, KILN_STEP_EVENT_DONE, NULL, 12.25, 0);
    ev(f, 2, KILN_STEP_EVENT_START, "[s 1/1] RUN echo \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", -1, 2);
    ev(f, 2, KILN_STEP_EVENT_DONE, NULL, 1, 0);
    kiln_progress_tick(f->p);
    a = take(f);
    /* 29 columns: " => " 4 + the title cut to 19 + a space + "12.2s" */
    assert_non_null(strstr(a, " => [s 1/1] RUN echo a  12.2s\n"));
    /* the title gets 20 columns: 17 + one wide character (2); the next would make 21 */
    assert_non_null(strstr(a, " => [s 1/1] RUN echo \xe6\x97\xa5  1.0s\n"));
    fx_free(f);
}

/* A step's escape sequences, C1 controls and carriage returns never reach the terminal. */
static void test_tty_sanitizes(void **state)
{
    kiln_buf_t b;
    kiln_buf_init(&b, 0);
    kiln_progress_sanitize(&b, "\033[31mred\033[0m \033]0;title\a\x07ok\tx\x7f", 0);
    kiln_progress_sanitize(&b, "|10%\r20%\r30%", 0);
    kiln_progress_sanitize(&b,
                           "|\xc2\x9b"
                           "2J\xff|",
                           0);
    kiln_progress_sanitize(&b, "|\033]8;;http://x\033\\link", 0);
    assert_string_equal(b.data, "red ok x30%|2J?||link");
    assert_int_equal(kiln_progress_cols("\xe6\x97\xa5x"), 3);
    kiln_buf_free(&b);
}

/* A failure: the step marked ERROR, then its instruction with FILE:LINE, its output once, and
 * the message without the lines already shown (named as the user's file). */
static void test_tty_failure_once(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 70, "app/Dockerfile");
    _cleanup_free_ char *a = NULL, *b = NULL;
    kiln_progress_result_t res = {
        .ok = 0,
        .error = "Dockerfile:4: process \"/bin/sh -c make\" did not complete successfully: exit "
                 "code: 2\n  cc -c x.c\n  x.c:1: error: \033[1mboom\033[0m"};

    ev(f, 1, KILN_STEP_EVENT_START, "[stage-0 1/2] FROM base", -1, 1);
    ev(f, 1, KILN_STEP_EVENT_DONE, NULL, 0.1, 0);
    ev(f, 2, KILN_STEP_EVENT_START, "[stage-0 2/2] RUN make", -1, 4);
    ev(f, 2, KILN_STEP_EVENT_LOG, "cc -c x.c", -1, 0);
    ev(f, 2, KILN_STEP_EVENT_LOG, "x.c:1: error: \033[1mboom\033[0m", -1, 0);
    kiln_progress_tick(f->p);
    a = take(f);
    assert_non_null(strstr(a, " => => # x.c:1: error: boom\n"));
    f->clock = 102.0;
    ev(f, 2, KILN_STEP_EVENT_ERROR, res.error, 1.5, 0);
    kiln_progress_finish(f->p, &res);
    b = take(f);
    assert_string_equal(
        b, "\r\033[4A\033[J"
           " => ERROR [stage-0 2/2] RUN make                                 1.5s\n"
           "[+] Building 2.0s (2/2) FAILED\n"
           "------\n"
           " > [stage-0 2/2] RUN make (app/Dockerfile:4):\n"
           "cc -c x.c\n"
           "x.c:1: error: boom\n"
           "------\n"
           "ERROR: app/Dockerfile:4: process \"/bin/sh -c make\" did not complete successfully: "
           "exit code: 2\n");
    assert_int_equal(count(b, "boom"), 1);
    fx_free(f);
}

/* An auto build's Dockerfile is kiln's: the error (in the user's terms) is printed whole, with
 * no generated FILE:LINE. */
static void test_tty_failure_generated(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 70, NULL);
    _cleanup_free_ char *a = NULL;
    kiln_progress_result_t res = {.ok = 0,
                                  .error = "the build step failed: `npm run build` exited with "
                                           "status 3; the last lines of its output:\n  oops",
                                  .user_terms = 1};
    ev(f, 5, KILN_STEP_EVENT_START, "[build 4/6] RUN npm run build", -1, 12);
    ev(f, 5, KILN_STEP_EVENT_LOG, "oops", -1, 0);
    ev(f, 5, KILN_STEP_EVENT_ERROR, "x", 1, 0);
    kiln_progress_finish(f->p, &res);
    a = take(f);
    assert_null(strstr(a, "Dockerfile"));
    assert_int_equal(count(a, "oops"), 1);
    assert_non_null(strstr(a, "ERROR: the build step failed: `npm run build` exited with status 3; "
                              "the last lines of its output:\n  oops\n"));
    fx_free(f);
}

/* A good build's summary: steps run and cached, the slowest ones, the image. */
static void test_tty_summary(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 70, NULL);
    _cleanup_free_ char *a = NULL;
    kiln_progress_result_t res = {.ok = 1,
                                  .digest = "sha256:abcd",
                                  .size_compressed = 41200000,
                                  .size_uncompressed = 112300000};
    static const double secs[] = {0.5, 4.0, 1.0, 2.0, 0.2};
    for (int i = 1; i <= 5; i++) {
        char t[32];
        snprintf(t, sizeof(t), "[s %d/6] RUN step%d", i, i);
        ev(f, i, KILN_STEP_EVENT_START, t, -1, i);
        ev(f, i, KILN_STEP_EVENT_DONE, NULL, secs[i - 1], 0);
    }
    ev(f, 6, KILN_STEP_EVENT_START, "[s 6/6] COPY . .", -1, 6);
    ev(f, 6, KILN_STEP_EVENT_CACHED, NULL, 0, 0);
    f->clock = 108.0;
    kiln_progress_finish(f->p, &res);
    a = take(f);
    assert_non_null(strstr(a, "[+] Building 8.0s (6/6) FINISHED\n"
                              " => 6 steps, 1 cached\n"
                              " => slowest:    4.0s  [s 2/6] RUN step2\n"
                              "                2.0s  [s 4/6] RUN step4\n"
                              "                1.0s  [s 3/6] RUN step3\n"
                              " => image sha256:abcd\n"
                              " => size 41.2 MB compressed, 112.3 MB uncompressed\n"));
    assert_non_null(strstr(a, " => CACHED [s 6/6] COPY . ."));
    /* a later tick draws nothing over the summary */
    kiln_progress_tick(f->p);
    assert_int_equal(f->out.len, 0);
    fx_free(f);
}

/* Plain: the log lines of engine/events.h, an error marked where it happens, the failing
 * instruction named at the end and the message without its output lines (printed once, as
 * they streamed). */
static void test_plain(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_PLAIN, 0, NULL);
    _cleanup_free_ char *a = NULL;
    kiln_progress_result_t res = {.ok = 0, .error = "Dockerfile:2: exit code: 1\n  bad"};
    kiln_progress_note(f->p, "auto-build: provider node");
    ev(f, 1, KILN_STEP_EVENT_START, "[s 1/2] FROM base", -1, 1);
    ev(f, 1, KILN_STEP_EVENT_CACHED, NULL, 0, 0);
    ev(f, 2, KILN_STEP_EVENT_START, "[s 2/2] RUN false", -1, 2);
    ev(f, 2, KILN_STEP_EVENT_LOG, "bad", -1, 0);
    ev(f, 2, KILN_STEP_EVENT_ERROR, res.error, 0.3, 0);
    kiln_progress_tick(f->p);
    kiln_progress_finish(f->p, &res);
    a = take(f);
    assert_string_equal(a, "auto-build: provider node\n"
                           "#1 [s 1/2] FROM base\n"
                           "#1 CACHED\n"
                           "#2 [s 2/2] RUN false\n"
                           "#2 bad\n"
                           "#2 ERROR\n"
                           "------\n"
                           " > [s 2/2] RUN false (Dockerfile:2): its output is above (#2)\n"
                           "------\n"
                           "ERROR: Dockerfile:2: exit code: 1\n");
    fx_free(f);
}

static void test_plain_summary(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_PLAIN, 0, NULL);
    _cleanup_free_ char *a = NULL;
    kiln_progress_result_t res = {
        .ok = 1, .digest = "sha256:ab", .size_compressed = 1500, .size_uncompressed = 999};
    kiln_progress_finish(f->p, &res);
    a = take(f);
    assert_string_equal(a, "image size: 1.5 kB compressed, 999 B uncompressed\n"
                           "writing image sha256:ab done\n");
    fx_free(f);
}

/* JSON: every line parses; step events as engine/events.h writes them (with the line), notes,
 * phases and a last result. */
static void test_json(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_JSON, 0, NULL);
    _cleanup_free_ char *a = NULL;
    kiln_progress_result_t res = {
        .ok = 1, .digest = "sha256:ab", .size_compressed = 10, .size_uncompressed = 20};
    char *save = NULL, *line;
    const char *want[] = {"note", "phase", "start", "log", "done", "result"};
    size_t n = 0;

    kiln_progress_note(f->p, "hello \"x\"");
    kiln_progress_phase(f->p, "building");
    ev(f, 1, KILN_STEP_EVENT_START, "[s 1/1] RUN x", -1, 3);
    ev(f, 1, KILN_STEP_EVENT_LOG, "\033[1mout", -1, 0);
    ev(f, 1, KILN_STEP_EVENT_DONE, NULL, 0.5, 0);
    f->clock = 101.0;
    kiln_progress_finish(f->p, &res);
    a = take(f);
    for (line = strtok_r(a, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_true(n < 6);
        assert_string_equal(json_string_value(json_object_get(j, "event")), want[n]);
        if (n == 2)
            assert_int_equal(json_integer_value(json_object_get(j, "line")), 3);
        if (n == 3) /* JSON carries the text as it is: a consumer escapes it */
            assert_string_equal(json_string_value(json_object_get(j, "text")), "\033[1mout");
        if (n == 5) {
            assert_string_equal(json_string_value(json_object_get(j, "status")), "succeeded");
            assert_string_equal(json_string_value(json_object_get(j, "digest")), "sha256:ab");
            assert_int_equal(
                json_integer_value(json_object_get(json_object_get(j, "image_size"), "compressed")),
                10);
        }
        json_decref(j);
    }
    assert_int_equal(n, 6);
    fx_free(f);
}

/* Quiet: nothing but an error. */
static void test_quiet(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_QUIET, 0, NULL);
    _cleanup_free_ char *a = NULL;
    kiln_progress_result_t res = {.ok = 0, .error = "boom"};
    ev(f, 1, KILN_STEP_EVENT_START, "[s 1/1] RUN x", -1, 3);
    kiln_progress_note(f->p, "note");
    kiln_progress_finish(f->p, &res);
    a = take(f);
    assert_string_equal(a, "ERROR: boom\n");
    fx_free(f);
}

/* A step's output is bounded: past KILN_PROGRESS_TAIL_LINES only the last are kept, each at
 * most KILN_PROGRESS_LINE_MAX bytes; the failure says how many earlier lines it leaves out. */
static void test_tail_bounded(void **state)
{
    fixture_t *f = fx_new(KILN_PROGRESS_TTY, 80, NULL);
    _cleanup_free_ char *a = NULL;
    char *big = kiln_xmalloc(5000);
    kiln_progress_result_t res = {.ok = 0, .error = "Dockerfile:1: exit code: 1"};
    memset(big, 'Q', 4999);
    big[4999] = '\0';
    ev(f, 1, KILN_STEP_EVENT_START, "[s 1/1] RUN loop", -1, 1);
    for (int i = 0; i < 100; i++) {
        char line[32];
        snprintf(line, sizeof(line), "line %d", i);
        ev(f, 1, KILN_STEP_EVENT_LOG, i == 99 ? big : line, -1, 0);
    }
    ev(f, 1, KILN_STEP_EVENT_ERROR, res.error, 1, 0);
    kiln_progress_finish(f->p, &res);
    a = take(f);
    assert_non_null(strstr(a, "(80 earlier lines not shown)\nline 80\n"));
    assert_null(strstr(a, "line 79\n"));
    assert_non_null(strstr(a, "line 98\n"));
    assert_int_equal(count(a, "Q"), KILN_PROGRESS_LINE_MAX);
    free(big);
    fx_free(f);
}

/* With its ticker thread (as kiln build runs it): events from several threads while the ticker
 * draws, then the summary once the ticker has stopped (nothing drawn after it). */
typedef struct {
    kiln_progress_t *p;
    int base;
} feeder_t;

static void *feed(void *arg)
{
    feeder_t *fd = arg;
    for (int i = 0; i < 50; i++) {
        kiln_step_event_t s = {.step = fd->base + i, .kind = KILN_STEP_EVENT_START, .text = "x"};
        kiln_step_event_t l = {.step = fd->base + i, .kind = KILN_STEP_EVENT_LOG, .text = "out"};
        kiln_step_event_t d = {.step = fd->base + i, .kind = KILN_STEP_EVENT_DONE, .seconds = 0};
        kiln_progress_step(fd->p, &s);
        kiln_progress_step(fd->p, &l);
        kiln_progress_step(fd->p, &d);
    }
    return NULL;
}

static void test_tty_ticker_threads(void **state)
{
    kiln_buf_t out;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    kiln_progress_opts_t o = {.mode = KILN_PROGRESS_TTY,
                              .write = sink_locked,
                              .write_ud = &(sink_ctx_t){.out = &out, .lock = &lock},
                              .width = 80,
                              .height = 24,
                              .ticker = 1};
    kiln_progress_result_t res = {.ok = 1, .digest = "sha256:ab"};
    kiln_progress_t *p;
    pthread_t t[2];
    feeder_t fd[2];

    kiln_buf_init(&out, 0);
    p = kiln_progress_new(&o);
    for (int i = 0; i < 2; i++) {
        fd[i] = (feeder_t){.p = p, .base = 1 + i * 50};
        assert_int_equal(pthread_create(&t[i], NULL, feed, &fd[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    kiln_progress_finish(p, &res);
    pthread_mutex_lock(&lock);
    {
        size_t len = out.len;
        pthread_mutex_unlock(&lock);
        kiln_progress_tick(p); /* after the summary: nothing */
        assert_int_equal(out.len, len);
    }
    assert_non_null(strstr(out.data, "FINISHED\n => 100 steps, 0 cached\n"));
    assert_non_null(strstr(out.data, " => image sha256:ab\n"));
    kiln_progress_free(p);
    kiln_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_parse),
        cmocka_unit_test(test_tty_parallel_frame),
        cmocka_unit_test(test_tty_idle_no_redraw),
        cmocka_unit_test(test_tty_fits_screen),
        cmocka_unit_test(test_tty_width),
        cmocka_unit_test(test_tty_sanitizes),
        cmocka_unit_test(test_tty_failure_once),
        cmocka_unit_test(test_tty_failure_generated),
        cmocka_unit_test(test_tty_summary),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_plain_summary),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_quiet),
        cmocka_unit_test(test_tail_bounded),
        cmocka_unit_test(test_tty_ticker_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
