/* kiln — a job's event stream (see stream.h). */
#include "job/stream.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "engine/events.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

char *kiln_job_redact_url(const char *url)
{
    const char *host = strstr(url, "://");
    const char *start = host ? host + 3 : url;
    size_t hostlen = strcspn(start, "/?#");
    const char *at = NULL;
    char *out;

    for (const char *p = start; p < start + hostlen; p++)
        if (*p == '@')
            at = p;
    if (at && host)
        out = kiln_xasprintf("%.*s%s", (int)(start - url), url, at + 1);
    else
        out = kiln_xstrdup(url);
    out[strcspn(out, "?#")] = '\0';
    return out;
}

static void set_id(json_t *ev, const char *key, const char *v)
{
    if (v)
        json_object_set_new(ev, key, json_string(v));
}

json_t *kiln_job_event_new(const kiln_job_spec_t *s, const char *type)
{
    json_t *ev = json_pack("{s:i}", "v", KILN_JOB_EVENTS_VERSION);

    if (s) {
        const char *repo = s->repo                                 ? s->repo
                           : s->source_kind == KILN_JOB_SOURCE_GIT ? s->source
                                                                   : NULL;
        set_id(ev, "build_id", s->build_id);
        set_id(ev, "tenant", s->tenant);
        if (repo) {
            _cleanup_free_ char *r = kiln_job_redact_url(repo);
            set_id(ev, "repo", r);
        }
        set_id(ev, "commit", s->commit ? s->commit : s->source_commit);
        set_id(ev, "branch", s->branch ? s->branch : s->ref);
        set_id(ev, "trigger", s->trigger);
    }
    json_object_set_new(ev, "event", json_string(type));
    return ev;
}

json_t *kiln_job_event_from_progress(const kiln_job_spec_t *s, const char *line)
{
    kiln_step_event_t p;
    json_t *ev = NULL;

    if (kiln_step_event_parse(line, &p) < 0)
        return NULL;
    switch (p.kind) {
    case KILN_STEP_EVENT_START:
        ev = kiln_job_event_new(s, "step_start");
        if (p.text != NULL)
            json_object_set_new(ev, "name", json_string(p.text));
        break;
    case KILN_STEP_EVENT_CACHED:
    case KILN_STEP_EVENT_DONE:
        ev = kiln_job_event_new(s, "step_end");
        json_object_set_new(ev, "cache_hit", json_boolean(p.kind == KILN_STEP_EVENT_CACHED));
        if (p.seconds >= 0)
            json_object_set_new(ev, "seconds", json_real(p.seconds));
        break;
    case KILN_STEP_EVENT_ERROR:
        ev = kiln_job_event_new(s, "step_end");
        json_object_set_new(ev, "error", json_string(p.text ? p.text : ""));
        break;
    case KILN_STEP_EVENT_LOG:
        ev = kiln_job_event_new(s, "log");
        json_object_set_new(ev, "text", json_string(p.text ? p.text : ""));
        break;
    }
    json_object_set_new(ev, "step", json_integer(p.step));
    kiln_step_event_clear(&p);
    return ev;
}

int kiln_job_event_write(int fd, json_t *ev, kiln_error_t *err)
{
    _cleanup_free_ char *s = json_dumps(ev, JSON_COMPACT | JSON_ENSURE_ASCII);
    _cleanup_free_ char *line = NULL;
    size_t n, off = 0;

    if (s == NULL)
        return kiln_error_set(err, ENOMEM, "encoding an event");
    line = kiln_xasprintf("%s\n", s);
    n = strlen(line);
    while (off < n) {
        ssize_t w = write(fd, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return kiln_error_set(err, errno, "writing an event to fd %d", fd);
        off += (size_t)w;
    }
    return 0;
}
