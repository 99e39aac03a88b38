/* kiln — the failing step of a build (see failure.h). */
#include "job/failure.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "utils/mem.h"

/* A step that started and has not ended: its name, line and last lines. */
typedef struct track {
    int step, line;
    char *name;
    char *tail[KILN_JOB_FAILURE_TAIL];
    size_t head, n; /* ring: the oldest at head */
} track_t;

/* Step events come from every stage's thread at once (parallel stages): lock guards all. */
struct kiln_job_failure {
    pthread_mutex_t lock;
    track_t *v; /* the running steps */
    size_t n;
    track_t failed; /* the first step that failed (step 0: none) */
    char *error;
};

kiln_job_failure_t *kiln_job_failure_new(void)
{
    kiln_job_failure_t *f = kiln_xzalloc(sizeof(kiln_job_failure_t));

    pthread_mutex_init(&f->lock, NULL);
    return f;
}

static void track_clear(track_t *t)
{
    free(t->name);
    for (size_t i = 0; i < KILN_JOB_FAILURE_TAIL; i++)
        free(t->tail[i]);
    memset(t, 0, sizeof(*t));
}

void kiln_job_failure_free(kiln_job_failure_t *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++)
        track_clear(&f->v[i]);
    free(f->v);
    track_clear(&f->failed);
    free(f->error);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* The running step n, or NULL. */
static track_t *find(kiln_job_failure_t *f, int step, size_t *at)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].step == step) {
            *at = i;
            return &f->v[i];
        }
    return NULL;
}

/* The step ended: forgotten (moved out when it failed). */
static void drop(kiln_job_failure_t *f, size_t at, int failed)
{
    if (failed)
        f->failed = f->v[at];
    else
        track_clear(&f->v[at]);
    f->v[at] = f->v[--f->n];
}

/* kiln_job_failure_step with f->lock held. */
static void step_locked(kiln_job_failure_t *f, const kiln_step_event_t *ev)
{
    size_t at = 0;
    track_t *t = find(f, ev->step, &at);

    switch (ev->kind) {
    case KILN_STEP_EVENT_START:
        if (t == NULL) {
            f->v = kiln_xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
            t = &f->v[f->n++];
            memset(t, 0, sizeof(*t));
            t->step = ev->step;
        }
        free(t->name);
        t->name = ev->text ? kiln_xstrdup(ev->text) : NULL;
        t->line = ev->line;
        break;
    case KILN_STEP_EVENT_LOG:
        if (t == NULL || ev->text == NULL)
            break;
        {
            size_t slot = (t->head + t->n) % KILN_JOB_FAILURE_TAIL;
            if (t->n == KILN_JOB_FAILURE_TAIL) {
                slot = t->head;
                t->head = (t->head + 1) % KILN_JOB_FAILURE_TAIL;
            } else {
                t->n++;
            }
            free(t->tail[slot]);
            t->tail[slot] = kiln_xstrndup(ev->text, KILN_JOB_FAILURE_LINE_MAX);
        }
        break;
    case KILN_STEP_EVENT_CACHED:
    case KILN_STEP_EVENT_DONE:
        if (t)
            drop(f, at, 0);
        break;
    case KILN_STEP_EVENT_ERROR:
        if (f->failed.step != 0 || t == NULL) {
            if (t)
                drop(f, at, 0);
            break;
        }
        free(f->error);
        f->error = ev->text ? kiln_xstrdup(ev->text) : NULL;
        drop(f, at, 1);
        break;
    }
}

void kiln_job_failure_step(kiln_job_failure_t *f, const kiln_step_event_t *ev)
{
    pthread_mutex_lock(&f->lock);
    step_locked(f, ev);
    pthread_mutex_unlock(&f->lock);
}

/* s as a JSON string: when it is not valid UTF-8 (a step prints any bytes), with every
 * non-ASCII byte as '?'. */
static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j != NULL)
        return j;
    copy = kiln_xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

json_t *kiln_job_failure_json(const kiln_job_failure_t *f, const char *dockerfile, int exit_status)
{
    const track_t *t = &f->failed;
    const char *name = t->name ? t->name : "", *ins = strstr(name, "] ");
    json_t *j, *log;

    if (t->step == 0)
        return NULL;
    j = json_pack("{s:i, s:o, s:o, s:o}", "step", t->step, "name", text_json(name), "instruction",
                  text_json(ins ? ins + 2 : name), "file",
                  text_json(dockerfile ? dockerfile : "Dockerfile"));
    if (t->line > 0)
        json_object_set_new(j, "line", json_integer(t->line));
    if (exit_status > 0)
        json_object_set_new(j, "exit_status", json_integer(exit_status));
    if (f->error)
        json_object_set_new(j, "error", text_json(f->error));
    log = json_array();
    for (size_t i = 0; i < t->n; i++)
        json_array_append_new(log, text_json(t->tail[(t->head + i) % KILN_JOB_FAILURE_TAIL]));
    json_object_set_new(j, "log", log);
    return j;
}
