#include "src/server/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "src/server/request.h"
#include "src/server/runner.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define METADATA_CAP (1024 * 1024)

/* One running build, visible to cancel and drain. */
typedef struct slot {
    char *id;
    pid_t pgid;
    int cancel;
} slot_t;

struct kiln_worker_pool {
    kiln_server_t *srv;
    kiln_worker_opts_t opts;
    char *build_cmd;
    pthread_t *threads;
    slot_t *slots;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle;
    int draining;    /* no new builds */
    int stop_builds; /* drain timed out: stop running builds and requeue them */
    atomic_int busy;
};

typedef struct job_ctx {
    kiln_worker_pool_t *pool;
    int slot;
    const char *id;
} job_ctx_t;

int kiln_worker_write_secrets(const char *dir, json_t *secrets, json_t **files, kiln_error_t *err)
{
    json_t *map = json_object();
    const char *k;
    json_t *v;

    if (kiln_fs_mkdir_p(dir, 0700, err) < 0) {
        json_decref(map);
        return -1;
    }
    json_object_foreach(secrets, k, v)
    {
        _cleanup_free_ char *path = kiln_xasprintf("%s/%s", dir, k);
        if (kiln_fs_write_file_atomic(path, json_string_value(v), json_string_length(v), 0600,
                                      err) < 0) {
            json_decref(map);
            return kiln_error_prefix(err, "secret '%s'", k);
        }
        json_object_set_new(map, k, json_string(path));
    }
    *files = map;
    return 0;
}

static void on_started(void *opaque, pid_t pgid, uint64_t ticks)
{
    job_ctx_t *c = opaque;
    kiln_worker_pool_t *p = c->pool;
    int cancel;

    kiln_db_set_process(p->srv->db, c->id, pgid, ticks, NULL);
    pthread_mutex_lock(&p->lock);
    p->slots[c->slot].pgid = pgid;
    cancel = p->slots[c->slot].cancel;
    pthread_mutex_unlock(&p->lock);
    if (cancel)
        kill(-pgid, SIGKILL);
}

static void on_phase(void *opaque, const char *status)
{
    job_ctx_t *c = opaque;
    kiln_db_phase(c->pool->srv->db, c->id, status, NULL);
}

static int on_should_stop(void *opaque)
{
    job_ctx_t *c = opaque;
    int stop;
    pthread_mutex_lock(&c->pool->lock);
    stop = c->pool->slots[c->slot].cancel || c->pool->stop_builds;
    pthread_mutex_unlock(&c->pool->lock);
    return stop;
}

static const kiln_runner_ops_t ops = {
    .started = on_started,
    .phase = on_phase,
    .should_stop = on_should_stop,
};

/* Reads the result kiln build wrote (metadata file); NULL when absent or not JSON. */
static char *read_result(const char *path, char *commit, size_t commit_len)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    json_t *o;
    char *out;

    if (kiln_fs_read_file(path, METADATA_CAP, &text, &len, NULL) < 0)
        return NULL;
    o = json_loadb(text, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    {
        static const char *const keys[] = {"commit", "source.commit", "vcs:revision", "git.commit"};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const char *c = json_string_value(json_object_get(o, keys[i]));
            if (c) {
                snprintf(commit, commit_len, "%s", c);
                break;
            }
        }
    }
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* Runs one claimed build to its end and records the outcome. */
static void run_job(kiln_worker_pool_t *p, int slot, kiln_db_job_t *job)
{
    kiln_server_t *s = p->srv;
    _cleanup_free_ char *log = kiln_server_log_path(s, job->id);
    _cleanup_free_ char *work = kiln_xasprintf("%s/builds/%s", s->root, job->id);
    _cleanup_free_ char *meta = kiln_xasprintf("%s/metadata.json", work);
    _cleanup_free_ char *secrets_dir = kiln_xasprintf("%s/secrets/%s", s->root, job->id);
    _cleanup_free_ char *ctx_dir = NULL;
    _cleanup_free_ char *result = NULL;
    _cleanup_strv_ char **args = NULL;
    _cleanup_free_ char **argv = NULL;
    json_t *req = json_loads(job->request, 0, NULL), *files = json_object(), *v;
    kiln_runner_result_t rr = {0};
    job_ctx_t ctx = {.pool = p, .slot = slot, .id = job->id};
    kiln_error_t err = {0};
    char note[256], commit[128] = "";
    size_t n = 0, i;
    int timeout = p->opts.timeout_s, canceled;

    snprintf(note, sizeof(note), "[kiln] build %s: attempt %d", job->id, job->attempts);
    kiln_runner_log_note(log, note, NULL);
    if (req == NULL) {
        kiln_error_set(&err, EINVAL, "stored request is not JSON");
        goto failed;
    }
    json_array_foreach(json_object_get(req, "secrets"), i, v)
    {
        _cleanup_free_ char *f = kiln_xasprintf("%s/%s", secrets_dir, json_string_value(v));
        json_object_set_new(files, json_string_value(v), json_string(f));
    }
    {
        const char *ctx_id =
            json_string_value(json_object_get(json_object_get(req, "source"), "context"));
        if (ctx_id)
            ctx_dir = kiln_xasprintf("%s/contexts/%s", s->root, ctx_id);
    }
    v = json_object_get(req, "timeout_seconds");
    if (v && (timeout == 0 || json_integer_value(v) < timeout))
        timeout = (int)json_integer_value(v);
    if (kiln_fs_rm_rf(work, &err) < 0 || kiln_fs_mkdir_p(work, 0700, &err) < 0 ||
        kiln_request_argv(req, ctx_dir, files, meta, &args, &err) < 0)
        goto failed;
    while (args[n])
        n++;
    {
        /* CMD build [server-wide options] [request options] CONTEXT */
        size_t extra = 0;
        while (p->opts.build_options && p->opts.build_options[extra])
            extra++;
        argv = kiln_xzalloc((n + extra + 2) * sizeof(char *));
        argv[0] = p->build_cmd;
        argv[1] = args[0];
        if (extra)
            memcpy(argv + 2, p->opts.build_options, extra * sizeof(char *));
        memcpy(argv + 2 + extra, args + 1, (n - 1) * sizeof(char *));
    }
    if (kiln_runner_run(argv, log, s->log_cap, timeout, &ops, &ctx, &rr, &err) < 0)
        goto failed;

    result = read_result(meta, commit, sizeof(commit));
    if (commit[0])
        kiln_db_set_commit(s->db, job->id, commit, NULL);
    pthread_mutex_lock(&p->lock);
    canceled = p->slots[slot].cancel;
    pthread_mutex_unlock(&p->lock);
    if (rr.stopped && !canceled) {
        kiln_runner_log_note(log, "[kiln] stopped by shutdown; queued again", NULL);
        kiln_db_requeue(s->db, job->id, NULL);
        goto out_keep_secrets;
    }
    if (canceled) {
        kiln_runner_log_note(log, "[kiln] canceled", NULL);
        kiln_db_finish(s->db, job->id, "canceled", "canceled", NULL, result, 0, NULL);
    } else if (rr.timed_out) {
        snprintf(note, sizeof(note), "the build ran longer than %d seconds", timeout);
        kiln_runner_log_note(log, "[kiln] timed out", NULL);
        kiln_db_finish(s->db, job->id, "failed", "timeout", note, result, 0, NULL);
    } else if (rr.exit_code == 0) {
        kiln_runner_log_note(log, "[kiln] succeeded", NULL);
        kiln_db_finish(s->db, job->id, "succeeded", NULL, NULL, result, 0, NULL);
    } else {
        if (rr.signal)
            snprintf(note, sizeof(note), "the build was killed by signal %d", rr.signal);
        else
            snprintf(note, sizeof(note), "the build exited with status %d", rr.exit_code);
        kiln_runner_log_note(log, "[kiln] failed", NULL);
        kiln_db_finish(s->db, job->id, "failed", "build_failed", note, result, 0, NULL);
    }
    goto out;
failed:
    snprintf(note, sizeof(note), "[kiln] could not start the build: %s", err.msg);
    kiln_runner_log_note(log, note, NULL);
    kiln_db_finish(s->db, job->id, "failed", "error", err.msg, NULL, 0, NULL);
out:
    kiln_fs_rm_rf(secrets_dir, NULL);
out_keep_secrets:
    kiln_fs_rm_rf(work, NULL);
    json_decref(files);
    json_decref(req);
}

static void *worker_main(void *arg)
{
    kiln_worker_pool_t *p = ((void **)arg)[0];
    int slot = (int)(intptr_t)((void **)arg)[1];
    free(arg);

    for (;;) {
        kiln_db_job_t job = {0};
        kiln_error_t err = {0};
        int got;

        pthread_mutex_lock(&p->lock);
        if (p->draining) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        pthread_mutex_unlock(&p->lock);
        got = kiln_db_claim(p->srv->db, NULL, &job, &err);
        if (got <= 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_mutex_lock(&p->lock);
            if (!p->draining)
                pthread_cond_timedwait(&p->wake, &p->lock, &ts);
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        pthread_mutex_lock(&p->lock);
        p->slots[slot].id = kiln_xstrdup(job.id);
        p->slots[slot].pgid = 0;
        p->slots[slot].cancel = 0;
        pthread_mutex_unlock(&p->lock);
        atomic_fetch_add(&p->busy, 1);
        run_job(p, slot, &job);
        atomic_fetch_sub(&p->busy, 1);
        pthread_mutex_lock(&p->lock);
        free(p->slots[slot].id);
        p->slots[slot].id = NULL;
        p->slots[slot].pgid = 0;
        pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->lock);
        kiln_db_job_free(&job);
    }
    return NULL;
}

int kiln_worker_pool_start(kiln_server_t *s, const kiln_worker_opts_t *opts,
                           kiln_worker_pool_t **out, kiln_error_t *err)
{
    kiln_worker_pool_t *p = kiln_xzalloc(sizeof(*p));
    int n = opts->workers > 0 ? opts->workers : 1;

    p->srv = s;
    p->opts = *opts;
    p->opts.workers = n;
    p->build_cmd = kiln_xstrdup(opts->build_cmd);
    p->threads = kiln_xzalloc((size_t)n * sizeof(pthread_t));
    p->slots = kiln_xzalloc((size_t)n * sizeof(slot_t));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->idle, NULL);
    for (int i = 0; i < n; i++) {
        void **arg = kiln_xmalloc(2 * sizeof(void *));
        int rc;
        arg[0] = p;
        arg[1] = (void *)(intptr_t)i;
        rc = pthread_create(&p->threads[i], NULL, worker_main, arg);
        if (rc != 0) {
            free(arg);
            p->opts.workers = i;
            kiln_worker_pool_stop(p, 0);
            return kiln_error_set(err, rc, "starting worker thread");
        }
    }
    *out = p;
    return 0;
}

void kiln_worker_pool_wake(kiln_worker_pool_t *p)
{
    pthread_mutex_lock(&p->lock);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void kiln_worker_pool_cancel(kiln_worker_pool_t *p, const char *id)
{
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->opts.workers; i++) {
        if (p->slots[i].id && strcmp(p->slots[i].id, id) == 0) {
            p->slots[i].cancel = 1;
            if (p->slots[i].pgid > 0)
                kill(-p->slots[i].pgid, SIGKILL);
        }
    }
    pthread_mutex_unlock(&p->lock);
}

int kiln_worker_pool_busy(kiln_worker_pool_t *p)
{
    return atomic_load(&p->busy);
}

void kiln_worker_pool_stop(kiln_worker_pool_t *p, int timeout_s)
{
    struct timespec deadline;

    if (p == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;
    pthread_mutex_lock(&p->lock);
    p->draining = 1;
    pthread_cond_broadcast(&p->wake);
    while (atomic_load(&p->busy) > 0) {
        if (pthread_cond_timedwait(&p->idle, &p->lock, &deadline) == ETIMEDOUT)
            break;
    }
    p->stop_builds = 1;
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->opts.workers; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->idle);
    free(p->threads);
    free(p->slots);
    free(p->build_cmd);
    free(p);
}
