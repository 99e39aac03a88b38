/* Unit tests for the run of a whole job (job/run.h), the entry point kiln build and kiln job
 * run share: a FROM scratch + COPY build of a spec to a local output under a scratch kiln
 * root, its events in order (phases, typed steps, notes), the metadata file's completion
 * event with the job's ids, and a failing step reported once with its code. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "job/codec.h"
#include "job/failure.h"
#include "job/run.h"
#include "job/stream.h"
#include "tmpdir.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* What the callback saw, one line per event: "phase building", "step 2 start", "note …",
 * "failed build_failed 1 …". */
typedef struct seen {
    kiln_buf_t log;
    int steps, failed;
} seen_t;

static void on_event(void *ud, const kiln_job_run_event_t *ev)
{
    seen_t *s = ud;

    switch (ev->kind) {
    case KILN_JOB_RUN_PHASE:
        kiln_buf_appendf(&s->log, NULL, "phase %s\n", ev->text);
        break;
    case KILN_JOB_RUN_STEP:
        s->steps++;
        kiln_buf_appendf(&s->log, NULL, "step %d %s\n", ev->step->step,
                         kiln_step_event_name(ev->step->kind));
        break;
    case KILN_JOB_RUN_NOTE:
        kiln_buf_appendf(&s->log, NULL, "note %s\n", ev->text);
        break;
    case KILN_JOB_RUN_FAILED:
        s->failed++;
        kiln_buf_appendf(&s->log, NULL, "failed %s %d %s\n", ev->code, ev->in_build, ev->text);
        break;
    default:
        break;
    }
}

/* Runs the spec JSON text (a local one) with a scratch root; returns kiln_job_run's value. */
static int run_spec(const char *dir, const char *text, seen_t *seen, kiln_job_run_result_t *res,
                    kiln_error_t *err)
{
    kiln_job_spec_t spec = {0};
    _cleanup_free_ char *root = kiln_xasprintf("%s/root", dir);
    _cleanup_free_ char *meta = kiln_xasprintf("%s/meta.json", dir);
    char *env[] = {NULL};
    kiln_job_run_opts_t o = {.root = root,
                             .env = env,
                             .progress = KILN_PROGRESS_PLAIN,
                             .typed_steps = 1,
                             .metadata_file = meta,
                             .event = on_event,
                             .ud = seen};
    int ret;

    if (kiln_job_parse(text, strlen(text), KILN_JOB_JSON_LOCAL, &spec, NULL, err) < 0)
        fail_msg("%s", err->msg);
    kiln_buf_init(&seen->log, 0);
    ret = kiln_job_run(&spec, &o, res, err);
    kiln_job_spec_clear(&spec);
    return ret;
}

static json_t *load_meta(const char *dir)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/meta.json", dir);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);

    if (j == NULL)
        fail_msg("%s: %s", p, je.text);
    return j;
}

static void test_run_good(void **state)
{
    _cleanup_free_ char *dir = tmpdir_make("jobrun");
    _cleanup_free_ char *text = NULL, *ctx = NULL, *out = NULL, *copied = NULL, *log = NULL;
    kiln_job_run_result_t res;
    kiln_error_t err = {0};
    seen_t seen = {0};
    json_t *meta, *ev;
    size_t len;

    (void)state;
    assert_non_null(dir);
    ctx = kiln_xasprintf("%s/ctx", dir);
    out = kiln_xasprintf("%s/out", dir);
    assert_int_equal(kiln_fs_mkdir_p(ctx, 0755, NULL), 0);
    assert_int_equal(tmpdir_put(ctx, "Dockerfile", "FROM scratch\nCOPY a /a\n", 0644), 0);
    assert_int_equal(tmpdir_put(ctx, "a", "hello\n", 0644), 0);
    text = kiln_xasprintf(
        "{\"source\": {\"dir\": \"%s\"}, \"outputs\": [{\"type\": \"local\", \"dest\": \"%s\"}], "
        "\"build_id\": \"b-unit\", \"tenant\": \"acme\", \"repo\": \"https://h/acme/app\", "
        "\"commit\": \"0123456789abcdef0123456789abcdef01234567\", \"branch\": \"main\", "
        "\"trigger\": \"api\", \"labels\": {\"k\": \"v\"}}",
        ctx, out);
    if (run_spec(dir, text, &seen, &res, &err) < 0)
        fail_msg("%s\n%s", err.msg, seen.log.data);
    log = kiln_buf_steal(&seen.log, NULL);
    /* the phases in order, each step typed (start and end), no failure */
    {
        const char *b = strstr(log, "phase building\n"), *x = strstr(log, "phase exporting\n");
        if (b == NULL || x == NULL || b > x || strstr(log, "step 2 start") == NULL ||
            strstr(log, "step 2 done") == NULL || strstr(b, "step 1 start") == NULL)
            fail_msg("events:\n%s", log);
    }
    assert_int_equal(seen.failed, 0);
    assert_non_null(strstr(log, "note image size: "));
    assert_true(res.built);
    assert_null(res.code);
    assert_int_equal(strncmp(res.digest, "sha256:", 7), 0);
    copied = kiln_xasprintf("%s/a", out);
    {
        _cleanup_free_ char *data = NULL;
        assert_int_equal(kiln_fs_read_file(copied, 100, &data, &len, NULL), 0);
        assert_int_equal(len, 6);
    }
    /* the metadata file: the image and the completion event with the job's ids */
    meta = load_meta(dir);
    assert_string_equal(json_string_value(json_object_get(meta, "containerimage.digest")),
                        res.digest);
    ev = json_object_get(meta, "kiln.event");
    assert_string_equal(json_string_value(json_object_get(ev, "build_id")), "b-unit");
    assert_string_equal(json_string_value(json_object_get(ev, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(ev, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(ev, "trigger")), "api");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "source"), "commit")),
                        "0123456789abcdef0123456789abcdef01234567");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "source"), "repo")),
                        "https://h/acme/app");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "source"), "branch")),
                        "main");
    assert_int_equal(json_array_size(json_object_get(json_object_get(ev, "outputs"), "local")), 1);
    json_decref(meta);
    kiln_fs_rm_rf(dir, NULL);
}

/* A step that fails: one failure event, the engine's (in_build), with its code and the
 * step's file:line; the metadata file says failed; nothing exported. */
static void test_run_failed(void **state)
{
    _cleanup_free_ char *dir = tmpdir_make("jobrun");
    _cleanup_free_ char *text = NULL, *ctx = NULL, *out = NULL, *log = NULL;
    kiln_job_run_result_t res;
    kiln_error_t err = {0};
    seen_t seen = {0};
    json_t *meta;

    (void)state;
    ctx = kiln_xasprintf("%s/ctx", dir);
    out = kiln_xasprintf("%s/out", dir);
    assert_int_equal(kiln_fs_mkdir_p(ctx, 0755, NULL), 0);
    assert_int_equal(tmpdir_put(ctx, "Dockerfile", "FROM scratch\nCOPY missing /m\n", 0644), 0);
    text = kiln_xasprintf("{\"source\": {\"dir\": \"%s\"}, \"outputs\": [{\"type\": \"local\", "
                          "\"dest\": \"%s\"}]}",
                          ctx, out);
    assert_int_equal(run_spec(dir, text, &seen, &res, &err), -1);
    log = kiln_buf_steal(&seen.log, NULL);
    assert_int_equal(seen.failed, 1);
    assert_false(res.built);
    assert_string_equal(res.code, KILN_JOB_ERR_BUILD_FAILED);
    if (strstr(log, "failed build_failed 1 ") == NULL || strstr(log, "phase exporting") != NULL)
        fail_msg("events:\n%s", log);
    assert_non_null(strstr(err.msg, "Dockerfile:2"));
    assert_int_equal(access(out, F_OK), -1);
    meta = load_meta(dir);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(meta, "kiln.event"), "status")),
        "failed");
    assert_null(json_object_get(meta, "containerimage.digest"));
    /* where it failed: the step, its instruction, Dockerfile:2; no exit status (not a RUN) */
    {
        json_t *f = json_object_get(json_object_get(meta, "kiln.event"), "failure");
        assert_non_null(f);
        assert_int_equal(json_integer_value(json_object_get(f, "step")), 2);
        assert_string_equal(json_string_value(json_object_get(f, "instruction")),
                            "COPY missing /m");
        assert_string_equal(json_string_value(json_object_get(f, "file")), "Dockerfile");
        assert_int_equal(json_integer_value(json_object_get(f, "line")), 2);
        assert_null(json_object_get(f, "exit_status"));
    }
    json_decref(meta);
    kiln_fs_rm_rf(dir, NULL);
}

/* The failing step from step events: two steps running at once, the failing one's last
 * KILN_JOB_FAILURE_TAIL lines only (its own, not the other's), the first failure wins. */
static void test_failure_tracker(void **state)
{
    kiln_job_failure_t *f = kiln_job_failure_new();
    kiln_step_event_t a = {.step = 1,
                           .kind = KILN_STEP_EVENT_START,
                           .text = "[a 1/2] RUN x",
                           .line = 4,
                           .seconds = -1};
    kiln_step_event_t b = {.step = 2,
                           .kind = KILN_STEP_EVENT_START,
                           .text = "[b 1/1] RUN y",
                           .line = 9,
                           .seconds = -1};
    char text[32];
    json_t *j;

    (void)state;
    assert_null(kiln_job_failure_json(f, "Dockerfile", 0));
    kiln_job_failure_step(f, &a);
    kiln_job_failure_step(f, &b);
    for (int i = 1; i <= 25; i++) {
        kiln_step_event_t la = {.step = 1, .kind = KILN_STEP_EVENT_LOG, .text = text};
        kiln_step_event_t lb = {.step = 2, .kind = KILN_STEP_EVENT_LOG, .text = "other\xff"};
        snprintf(text, sizeof(text), "line %d", i);
        kiln_job_failure_step(f, &la);
        kiln_job_failure_step(f, &lb);
    }
    b.kind = KILN_STEP_EVENT_DONE;
    kiln_job_failure_step(f, &b);
    a.kind = KILN_STEP_EVENT_ERROR;
    a.text = "Dockerfile:4: exit code: 7";
    kiln_job_failure_step(f, &a);
    j = kiln_job_failure_json(f, "app/Dockerfile", 7);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "instruction")), "RUN x");
    assert_string_equal(json_string_value(json_object_get(j, "file")), "app/Dockerfile");
    assert_int_equal(json_integer_value(json_object_get(j, "line")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "exit_status")), 7);
    assert_int_equal(json_array_size(json_object_get(j, "log")), KILN_JOB_FAILURE_TAIL);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "log"), 0)), "line 6");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "log"), 19)),
                        "line 25");
    json_decref(j);
    kiln_job_failure_free(f);
}

/* Steps of parallel stages reported from two threads at once (each its own steps: start, a few
 * lines, done): the tracker's running-step array grows and shrinks under both (it was unlocked:
 * a heap overflow on the first build of two parallel stages). Clean under ASan and TSan; at the
 * end no step is running and none failed. */
typedef struct {
    kiln_job_failure_t *f;
    int base;
} hammer_t;

static void *hammer(void *ud)
{
    const hammer_t *h = ud;

    for (int i = 0; i < 2000; i++) {
        kiln_step_event_t ev = {.step = h->base + i % 7,
                                .kind = KILN_STEP_EVENT_START,
                                .text = "[s 1/2] RUN x",
                                .line = 2};
        kiln_job_failure_step(h->f, &ev);
        ev.kind = KILN_STEP_EVENT_LOG;
        ev.text = "a line";
        kiln_job_failure_step(h->f, &ev);
        ev.kind = KILN_STEP_EVENT_DONE;
        ev.text = NULL;
        kiln_job_failure_step(h->f, &ev);
    }
    return NULL;
}

static void test_failure_tracker_threads(void **state)
{
    kiln_job_failure_t *f = kiln_job_failure_new();
    hammer_t a = {f, 1}, b = {f, 100};
    pthread_t ta, tb;

    (void)state;
    assert_int_equal(pthread_create(&ta, NULL, hammer, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, hammer, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_null(kiln_job_failure_json(f, "Dockerfile", 0));
    kiln_job_failure_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_good),
        cmocka_unit_test(test_run_failed),
        cmocka_unit_test(test_failure_tracker),
        cmocka_unit_test(test_failure_tracker_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
