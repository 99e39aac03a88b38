/* kiln — the build's progress: the renderer's state and its plain and JSON forms (the tty
 * frames are src/progress_tty.c). See src/progress.h. */
#include "src/progress.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job/event.h"
#include "src/progress_impl.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_progress_is_tty(int fd)
{
    const char *term = getenv("TERM");
    return isatty(fd) && term != NULL && *term != '\0' && strcmp(term, "dumb") != 0;
}

int kiln_progress_mode_parse(const char *name, int is_tty, kiln_build_progress_t *out)
{
    if (strcmp(name, "auto") == 0)
        *out = is_tty ? KILN_PROGRESS_TTY : KILN_PROGRESS_PLAIN;
    else if (strcmp(name, "plain") == 0)
        *out = KILN_PROGRESS_PLAIN;
    else if (strcmp(name, "tty") == 0)
        *out = KILN_PROGRESS_TTY;
    else if (strcmp(name, "json") == 0 || strcmp(name, "rawjson") == 0)
        *out = KILN_PROGRESS_JSON;
    else if (strcmp(name, "quiet") == 0)
        *out = KILN_PROGRESS_QUIET;
    else
        return -1;
    return 0;
}

double kiln_progress_now(kiln_progress_t *p)
{
    struct timespec ts;
    if (p->o.now)
        return p->o.now(p->o.now_ud);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kiln_progress_out(kiln_progress_t *p, const char *data, size_t len)
{
    if (len == 0)
        return;
    if (p->o.write)
        p->o.write(p->o.write_ud, data, len);
    else /* a terminal gone away is no reason to stop the build */
        kiln_fs_write_all(p->o.fd >= 0 ? p->o.fd : STDERR_FILENO, data, len, NULL);
}

/* Writes the formatted text. */
#define outf(p, ...)                                                                               \
    do {                                                                                           \
        _cleanup_free_ char *s_ = kiln_xasprintf(__VA_ARGS__);                                     \
        kiln_progress_out(p, s_, strlen(s_));                                                      \
    } while (0)

/* One JSON object as a line (json mode); obj is stolen. */
static void out_json(kiln_progress_t *p, json_t *obj)
{
    _cleanup_free_ char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(obj);
    if (s != NULL)
        outf(p, "%s\n", s);
}

const char *kiln_progress_tail_line(const pstep_t *s, size_t i)
{
    return s->tail[(s->tail_head + i) % KILN_PROGRESS_TAIL_LINES];
}

static void tail_push(pstep_t *s, const char *line)
{
    char *copy = kiln_xstrndup(line, KILN_PROGRESS_LINE_MAX);
    if (s->tail_n == KILN_PROGRESS_TAIL_LINES) {
        free(s->tail[s->tail_head]);
        s->tail[s->tail_head] = copy;
        s->tail_head = (s->tail_head + 1) % KILN_PROGRESS_TAIL_LINES;
    } else {
        s->tail[(s->tail_head + s->tail_n++) % KILN_PROGRESS_TAIL_LINES] = copy;
    }
    s->n_out++;
}

static void tail_clear(pstep_t *s)
{
    for (size_t i = 0; i < KILN_PROGRESS_TAIL_LINES; i++) {
        free(s->tail[i]);
        s->tail[i] = NULL;
    }
    s->tail_n = s->tail_head = 0;
}

/* The record of step n, grown as steps appear; NULL past PROGRESS_MAX_STEPS. */
static pstep_t *step_at(kiln_progress_t *p, int n)
{
    if (n <= 0 || n > PROGRESS_MAX_STEPS)
        return NULL;
    if ((size_t)n >= p->n_alloc) {
        size_t na = p->n_alloc ? p->n_alloc : 64;
        while (na <= (size_t)n)
            na *= 2;
        p->steps = kiln_xrealloc(p->steps, na * sizeof(*p->steps));
        memset(p->steps + p->n_alloc, 0, (na - p->n_alloc) * sizeof(*p->steps));
        p->n_alloc = na;
    }
    if ((size_t)n > p->max_step)
        p->max_step = (size_t)n;
    return &p->steps[n];
}

static void *ticker(void *arg)
{
    kiln_progress_t *p = arg;
    struct timespec ts;

    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT && !p->stop)
            kiln_progress_tty_frame(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

kiln_progress_t *kiln_progress_new(const kiln_progress_opts_t *opts)
{
    kiln_progress_t *p = kiln_xzalloc(sizeof(*p));
    pthread_condattr_t ca;

    p->o = *opts;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    kiln_buf_init(&p->pending, 0);
    p->t0 = kiln_progress_now(p);
    p->phase = kiln_xstrdup("building");
    if (p->o.mode == KILN_PROGRESS_TTY && p->o.ticker)
        p->thread_on = pthread_create(&p->thread, NULL, ticker, p) == 0;
    return p;
}

/* A step's event in plain form ("#N …"; an error is only marked: its message comes once, at
 * the end). */
static void plain_step(kiln_progress_t *p, const kiln_step_event_t *ev)
{
    if (ev->kind == KILN_STEP_EVENT_ERROR)
        outf(p, "#%d ERROR\n", ev->step);
    else {
        _cleanup_free_ char *line = kiln_step_event_plain(ev);
        outf(p, "%s\n", line);
    }
}

void kiln_progress_step(kiln_progress_t *p, const kiln_step_event_t *ev)
{
    pstep_t *s;

    if (p->o.mode == KILN_PROGRESS_QUIET)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->o.mode == KILN_PROGRESS_JSON) {
        _cleanup_free_ char *line = kiln_step_event_json(ev);
        if (line)
            outf(p, "%s\n", line);
    } else if (p->o.mode == KILN_PROGRESS_PLAIN) {
        plain_step(p, ev);
    }
    if ((s = step_at(p, ev->step)) == NULL)
        goto out;
    switch (ev->kind) {
    case KILN_STEP_EVENT_START:
        free(s->title);
        s->title = kiln_xstrdup(ev->text ? ev->text : "");
        s->line = ev->line;
        s->state = PSTEP_RUNNING;
        s->started = kiln_progress_now(p);
        p->n_started++;
        break;
    case KILN_STEP_EVENT_LOG:
        /* a step's output, kept for the live view and for its failure */
        tail_push(s, ev->text ? ev->text : "");
        break;
    case KILN_STEP_EVENT_CACHED:
    case KILN_STEP_EVENT_DONE:
    case KILN_STEP_EVENT_ERROR:
        if (s->state != PSTEP_RUNNING)
            break;
        s->seconds = ev->seconds >= 0 ? ev->seconds : kiln_progress_now(p) - s->started;
        s->state = ev->kind == KILN_STEP_EVENT_CACHED ? PSTEP_CACHED
                   : ev->kind == KILN_STEP_EVENT_DONE ? PSTEP_DONE
                                                      : PSTEP_ERROR;
        p->n_finished++;
        if (s->state == PSTEP_CACHED)
            p->n_cached++;
        if (s->state == PSTEP_ERROR && p->failed_step == 0)
            p->failed_step = ev->step;
        if (s->state != PSTEP_ERROR)
            tail_clear(s);
        if (p->o.mode == KILN_PROGRESS_TTY)
            kiln_progress_tty_finished_line(p, s);
        break;
    }
    p->dirty = true;
out:
    pthread_mutex_unlock(&p->lock);
}

void kiln_progress_note(kiln_progress_t *p, const char *line)
{
    if (p->o.mode == KILN_PROGRESS_QUIET)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->o.mode == KILN_PROGRESS_JSON)
        out_json(p, json_pack("{s:s,s:s}", "event", "note", "text", line));
    else if (p->o.mode == KILN_PROGRESS_PLAIN)
        outf(p, "%s\n", line);
    else
        kiln_progress_tty_note(p, line);
    p->dirty = true;
    pthread_mutex_unlock(&p->lock);
}

void kiln_progress_phase(kiln_progress_t *p, const char *phase)
{
    if (p->o.mode == KILN_PROGRESS_QUIET)
        return;
    pthread_mutex_lock(&p->lock);
    free(p->phase);
    p->phase = kiln_xstrdup(phase);
    if (p->o.mode == KILN_PROGRESS_JSON)
        out_json(p, json_pack("{s:s,s:s}", "event", "phase", "phase", phase));
    p->dirty = true;
    pthread_mutex_unlock(&p->lock);
}

void kiln_progress_tick(kiln_progress_t *p)
{
    if (p->o.mode != KILN_PROGRESS_TTY)
        return;
    pthread_mutex_lock(&p->lock);
    if (!p->finished)
        kiln_progress_tty_frame(p);
    pthread_mutex_unlock(&p->lock);
}

void kiln_progress_size_text(const kiln_progress_result_t *res, char *buf, size_t len)
{
    /* the completion event's words for the same numbers */
    json_t *ev = json_object();
    kiln_event_set_image_size(ev, res->size_compressed, res->size_uncompressed, buf, len);
    json_decref(ev);
}

/* plain: the failure's end. The failing step's output was printed as it ran ("#N …"), so it
 * is not printed again: its instruction with FILE:LINE (it may be far above, between other
 * stages' lines), then the error without the output lines it carries. */
static void plain_failure(kiln_progress_t *p, const kiln_progress_result_t *res)
{
    const pstep_t *s = p->failed_step > 0 ? &p->steps[p->failed_step] : NULL;
    kiln_buf_t b;

    kiln_buf_init(&b, 0);
    if (s && !res->user_terms) {
        kiln_buf_append(&b, "------\n > ", 10, NULL);
        kiln_progress_sanitize(&b, s->title ? s->title : "", 0);
        if (s->line > 0)
            kiln_buf_appendf(&b, NULL, " (%s:%d)", p->o.dockerfile ? p->o.dockerfile : "Dockerfile",
                             s->line);
        if (s->n_out > 0)
            kiln_buf_appendf(&b, NULL, ": its output is above (#%d)", p->failed_step);
        kiln_buf_append(&b, "\n------\n", 8, NULL);
    }
    kiln_progress_error_message(p, &b, s, res->error ? res->error : "the build failed");
    kiln_progress_out(p, b.data, b.len);
    kiln_buf_free(&b);
}

void kiln_progress_finish(kiln_progress_t *p, const kiln_progress_result_t *res)
{
    char size[96] = "";
    bool has_size = res->size_compressed || res->size_uncompressed;

    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->thread_on) {
        pthread_join(p->thread, NULL);
        p->thread_on = false;
    }
    pthread_mutex_lock(&p->lock);
    if (p->finished || p->o.mode == KILN_PROGRESS_QUIET) {
        /* quiet: an error still goes to stderr */
        if (!p->finished && !res->ok && res->error)
            outf(p, "ERROR: %s\n", res->error);
        p->finished = true;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->finished = true;
    if (has_size)
        kiln_progress_size_text(res, size, sizeof(size));
    if (p->o.mode == KILN_PROGRESS_TTY) {
        kiln_progress_tty_finish(p, res);
    } else if (p->o.mode == KILN_PROGRESS_JSON) {
        json_t *j =
            json_pack("{s:s,s:s,s:f}", "event", "result", "status",
                      res->ok ? "succeeded" : "failed", "seconds", kiln_progress_now(p) - p->t0);
        if (res->digest)
            json_object_set_new(j, "digest", json_string(res->digest));
        if (!res->ok && res->error)
            json_object_set_new(j, "error", json_string(res->error));
        if (has_size && res->size_uncompressed == KILN_EVENT_SIZE_UNKNOWN)
            json_object_set_new(j, "image_size",
                                json_pack("{s:I}", "compressed", (json_int_t)res->size_compressed));
        else if (has_size)
            json_object_set_new(j, "image_size",
                                json_pack("{s:I,s:I}", "compressed",
                                          (json_int_t)res->size_compressed, "uncompressed",
                                          (json_int_t)res->size_uncompressed));
        out_json(p, j);
    } else if (!res->ok) {
        plain_failure(p, res);
    } else {
        if (has_size)
            outf(p, "image size: %s\n", size);
        if (res->digest)
            outf(p, "writing image %s done\n", res->digest);
    }
    pthread_mutex_unlock(&p->lock);
}

void kiln_progress_event_cb(void *p, const kiln_step_event_t *ev)
{
    kiln_progress_step(p, ev);
}

void kiln_progress_log_cb(void *p, const char *line)
{
    kiln_progress_note(p, line);
}

void kiln_progress_free(kiln_progress_t *p)
{
    if (p == NULL)
        return;
    if (p->thread_on) {
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < p->n_alloc; i++) {
        free(p->steps[i].title);
        tail_clear(&p->steps[i]);
    }
    free(p->steps);
    free(p->phase);
    kiln_buf_free(&p->pending);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
