/* kiln — the engine's progress output: each step's events (start, log, cached, done, error) as
 * plain "#N …" lines or one JSON object per line (engine/events.h), handed to the request's
 * log callback. Never prints: without a callback the events are dropped. */
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

/* One progress event of step N: plain "#N text" lines, or with
 * --progress=json one JSON object per line:
 * {"step":N,"event":"start|log|cached|done|error","text":…,"seconds":…}. */
void kiln_engine_event(engine_t *e, int step, const char *event, const char *text, double secs)
{
    if (e->req->progress == KILN_PROGRESS_QUIET)
        return;
    if (e->req->progress == KILN_PROGRESS_JSON) {
        json_t *j = json_pack("{s:i,s:s}", "step", step, "event", event);
        char *s;
        if (text != NULL)
            json_object_set_new(j, "text", json_string(text));
        if (secs >= 0)
            json_object_set_new(j, "seconds", json_real(secs));
        s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(j);
        if (s != NULL)
            kiln_engine_log(e, "%s", s);
        free(s);
        return;
    }
    if (strcmp(event, "log") == 0 && e->req->progress == KILN_PROGRESS_TTY)
        return; /* condensed: steps and their status only (a failure shows its last lines) */
    if (strcmp(event, "start") == 0 || strcmp(event, "log") == 0)
        kiln_engine_log(e, "#%d %s", step, text ? text : "");
    else if (strcmp(event, "cached") == 0)
        kiln_engine_log(e, "#%d CACHED", step);
    else if (strcmp(event, "done") == 0)
        kiln_engine_log(e, "#%d DONE %.1fs", step, secs);
    else
        kiln_engine_log(e, "#%d ERROR: %s", step, text ? text : "");
}

double kiln_engine_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
