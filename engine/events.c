/* kiln — the engine's progress output: each step's events (start, log, cached, done, error) as
 * plain "#N …" lines or one JSON object per line (engine/events.h), handed to the request's
 * log callback. Never prints: without a callback the events are dropped. */
#include "engine/events.h"

#include "engine/engine.h"

void kiln_engine_log(engine_t *e, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    if (e->req->progress == KILN_PROGRESS_QUIET)
        return;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (s == NULL)
        return;
    if (e->req->log)
        e->req->log(e->req->log_ctx, s);
    free(s);
}

static const char *const kind_names[] = {"start", "log", "cached", "done", "error"};

const char *kiln_step_event_name(kiln_step_event_kind_t kind)
{
    return (unsigned)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "error";
}

int kiln_step_event_kind(const char *name, kiln_step_event_kind_t *out)
{
    for (size_t i = 0; name != NULL && i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (kiln_step_event_kind_t)i;
            return 0;
        }
    }
    return -1;
}

char *kiln_step_event_json(const kiln_step_event_t *ev)
{
    json_t *j = json_pack("{s:i,s:s}", "step", ev->step, "event", kiln_step_event_name(ev->kind));
    char *s;
    if (ev->text != NULL)
        json_object_set_new(j, "text", json_string(ev->text));
    if (ev->seconds >= 0)
        json_object_set_new(j, "seconds", json_real(ev->seconds));
    if (ev->line > 0)
        json_object_set_new(j, "line", json_integer(ev->line));
    s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    return s;
}

char *kiln_step_event_plain(const kiln_step_event_t *ev)
{
    const char *text = ev->text ? ev->text : "";
    switch (ev->kind) {
    case KILN_STEP_EVENT_START:
    case KILN_STEP_EVENT_LOG:
        return kiln_xasprintf("#%d %s", ev->step, text);
    case KILN_STEP_EVENT_CACHED:
        return kiln_xasprintf("#%d CACHED", ev->step);
    case KILN_STEP_EVENT_DONE:
        return kiln_xasprintf("#%d DONE %.1fs", ev->step, ev->seconds);
    default:
        return kiln_xasprintf("#%d ERROR: %s", ev->step, text);
    }
}

int kiln_step_event_parse(const char *line, kiln_step_event_t *out)
{
    json_t *p = line[0] == '{' ? json_loads(line, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *step = json_object_get(p, "step"), *text = json_object_get(p, "text");
    json_t *secs = json_object_get(p, "seconds"), *ln = json_object_get(p, "line");
    kiln_step_event_t ev = {.seconds = -1};
    int ret = -1;

    if (json_is_integer(step) && json_integer_value(step) >= 0 &&
        json_integer_value(step) <= INT32_MAX &&
        kiln_step_event_kind(json_string_value(json_object_get(p, "event")), &ev.kind) == 0 &&
        (text == NULL || json_is_string(text)) && (secs == NULL || json_is_number(secs)) &&
        (ln == NULL || (json_is_integer(ln) && json_integer_value(ln) > 0 &&
                        json_integer_value(ln) <= INT32_MAX))) {
        ev.step = (int)json_integer_value(step);
        ev.text = text ? kiln_xstrdup(json_string_value(text)) : NULL;
        ev.seconds = secs ? json_number_value(secs) : -1;
        ev.line = ln ? (int)json_integer_value(ln) : 0;
        *out = ev;
        ret = 0;
    }
    json_decref(p);
    return ret;
}

void kiln_step_event_clear(kiln_step_event_t *ev)
{
    free(ev->text);
    ev->text = NULL;
}

/* One progress event of step N, in the request's progress form (see engine/events.h);
 * condensed (tty) progress leaves out log lines: a failure shows its last lines. */
void kiln_engine_event(engine_t *e, int step, const char *event, const char *text, double secs)
{
    kiln_engine_event_at(e, step, event, text, secs, 0);
}

/* kiln_engine_event with the Dockerfile line of the step's instruction (0: none). */
void kiln_engine_event_at(engine_t *e, int step, const char *event, const char *text, double secs,
                          int df_line)
{
    kiln_step_event_t ev = {.step = step, .text = (char *)text, .seconds = secs, .line = df_line};
    _cleanup_free_ char *line = NULL;

    if (e->req->progress == KILN_PROGRESS_QUIET)
        return;
    if (kiln_step_event_kind(event, &ev.kind) < 0)
        ev.kind = KILN_STEP_EVENT_ERROR;
    if (e->req->event) {
        e->req->event(e->req->log_ctx, &ev);
        return;
    }
    if (ev.kind == KILN_STEP_EVENT_LOG && e->req->progress == KILN_PROGRESS_TTY)
        return;
    line = e->req->progress == KILN_PROGRESS_JSON ? kiln_step_event_json(&ev)
                                                  : kiln_step_event_plain(&ev);
    if (line != NULL)
        kiln_engine_log(e, "%s", line);
}

double kiln_engine_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
