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

#include "src/server/job.h"
#include "src/server/runner.h"
#include "src/server/sched.h"
#include "src/server/tenant.h"
#include "src/server/tenantcreds.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

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
    pthread_mutex_t sched_lock; /* one claim at a time: load, pick and claim agree */
    char last_tenant[256];      /* whose build started last (round robin) */
    int draining;               /* no new builds */
    int stop_builds;            /* drain timed out: stop running builds and requeue them */
    atomic_int busy;
};

extern char **environ;

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

static void on_commit(void *opaque, const char *sha)
{
    job_ctx_t *c = opaque;
    kiln_db_set_commit(c->pool->srv->db, c->id, sha, NULL);
}

static void on_source(void *opaque, const char *author, const char *message)
{
    job_ctx_t *c = opaque;
    kiln_db_set_commit_info(c->pool->srv->db, c->id, author, message, NULL);
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

/* Records a build's final state; a failed write ends the build failed (or, when kiln.db
 * refuses every write, failed in memory) and says so in the build log and on stderr, so no
 * build stays "building" because its outcome could not be written. */
static void finish(kiln_server_t *s, const char *log, const char *id, const char *status,
                   const char *reason, const char *error, const char *result, int64_t pushed)
{
    kiln_error_t err = {0};
    int rc = kiln_db_finish_or_fail(s->db, id, status, reason, error, result, pushed, &err);
    char note[512];

    if (rc == 0)
        return;
    if (rc > 0)
        snprintf(note, sizeof(note), "[kiln] failed: the outcome (%s) could not be recorded",
                 status);
    else
        snprintf(note, sizeof(note), "[kiln] failed: %s", err.msg);
    kiln_runner_log_note(log, note, NULL);
    fprintf(stderr, "kiln serve: build %s: %s\n", id, note + 7);
}

/* Runs one claimed build to its end and records the outcome. */
static void run_job(kiln_worker_pool_t *p, int slot, kiln_db_job_t *job)
{
    kiln_server_t *s = p->srv;
    _cleanup_free_ char *log = kiln_server_log_path(s, job->id);
    _cleanup_free_ char *work = kiln_xasprintf("%s/builds/%s", s->root, job->id);
    _cleanup_free_ char *secrets_dir = kiln_xasprintf("%s/secrets/%s", s->root, job->id);
    _cleanup_free_ char *contexts = kiln_xasprintf("%s/contexts", s->root);
    _cleanup_free_ char *artifacts = kiln_xasprintf("%s/artifacts/%s", s->root, job->id);
    json_t *req = json_loads(job->request, 0, NULL), *files = json_object(), *v;
    job_ctx_t ctx = {.pool = p, .slot = slot, .id = job->id};
    kiln_job_hooks_t hooks = {.started = on_started,
                              .phase = on_phase,
                              .commit = on_commit,
                              .source = on_source,
                              .should_stop = on_should_stop,
                              .opaque = &ctx};
    kiln_job_env_t env = {.build_cmd = p->build_cmd,
                          .kiln_root = p->opts.kiln_root,
                          .build_options = p->opts.build_options,
                          .work_dir = work,
                          .log_path = log,
                          .artifacts_dir = artifacts,
                          .log_cap = s->log_cap,
                          .timeout_s = p->opts.timeout_s,
                          .entitlements = p->opts.entitlements,
                          .build_id = job->id};
    kiln_job_outcome_t out = {0};
    _cleanup_strv_ char **child_env = NULL;
    _cleanup_free_ char *creds_dir = kiln_xasprintf("%s/%s", secrets_dir, KILN_TENANTCREDS_DIR);
    const char *tenant = json_string_value(json_object_get(req, "tenant"));
    const kiln_tenant_t *t = kiln_config_tenant_named(s->config, tenant);
    kiln_error_t err = {0};
    char note[256];
    size_t i;
    int canceled;

    /* the build's tenant may have entitlements of its own (tenants[].entitlements) */
    if (t)
        env.entitlements = t->entitlements;
    snprintf(note, sizeof(note), "[kiln] build %s: attempt %d", job->id, job->attempts);
    kiln_runner_log_note(log, note, NULL);
    if (req == NULL) {
        kiln_runner_log_note(log, "[kiln] failed: the stored request is not JSON", NULL);
        finish(s, log, job->id, "failed", "error", "stored request is not JSON", NULL, 0);
        json_decref(files);
        return;
    }
    /* the tenant's credentials (or none) for its children, never the server's unless the
     * tenant inherits them */
    if (kiln_tenantcreds_prepare(t ? json_object_get(t->raw, "credentials") : NULL, tenant,
                                 secrets_dir, environ, &child_env, &err) < 0) {
        snprintf(note, sizeof(note), "[kiln] failed: %.200s", err.msg);
        kiln_runner_log_note(log, note, NULL);
        finish(s, log, job->id, "failed", "credentials", err.msg, NULL, 0);
        kiln_fs_rm_rf(secrets_dir, NULL);
        json_decref(files);
        json_decref(req);
        return;
    }
    env.child_env = child_env;
    json_array_foreach(json_object_get(req, "secrets"), i, v)
    {
        _cleanup_free_ char *f = kiln_xasprintf("%s/%s", secrets_dir, json_string_value(v));
        json_object_set_new(files, json_string_value(v), json_string(f));
    }

    {
        /* the trigger the job's events carry: how the build was asked for (the audit's
         * "via": api, github, gitlab) */
        json_t *rec = NULL;
        const char *via = NULL;
        if (kiln_db_build_get(s->db, job->id, &rec, NULL) == 0)
            via = json_string_value(json_object_get(json_object_get(rec, "triggered_by"), "via"));
        _cleanup_free_ char *trigger = via ? kiln_xstrdup(via) : NULL;
        json_decref(rec);
        env.trigger = trigger;
        kiln_server_job_run(&env, req, files, contexts, &hooks, &out);
    }
    kiln_fs_rm_rf(creds_dir, NULL);

    pthread_mutex_lock(&p->lock);
    canceled = p->slots[slot].cancel;
    pthread_mutex_unlock(&p->lock);
    if (canceled) {
        kiln_runner_log_note(log, "[kiln] canceled", NULL);
        finish(s, log, job->id, "canceled", "canceled", NULL, out.result, 0);
    } else if (strcmp(out.status, "stopped") == 0) {
        /* Drain ran out of time: the build goes back to the queue; its secrets stay. */
        kiln_runner_log_note(log, "[kiln] stopped by shutdown; queued again", NULL);
        kiln_db_requeue(s->db, job->id, NULL);
        goto out;
    } else if (strcmp(out.status, "succeeded") == 0) {
        kiln_runner_log_note(log, "[kiln] succeeded", NULL);
        finish(s, log, job->id, "succeeded", NULL, NULL, out.result,
               kiln_job_bytes_pushed(out.result));
    } else {
        snprintf(note, sizeof(note), "[kiln] failed: %s", out.error);
        kiln_runner_log_note(log, note, NULL);
        finish(s, log, job->id, "failed", out.reason, out.error, out.result, 0);
    }
    kiln_fs_rm_rf(secrets_dir, NULL);
out:
    kiln_job_outcome_free(&out);
    json_decref(files);
    json_decref(req);
}

/* The most builds of tenant `name` that may run at once (0 = unbounded). */
static long long tenant_max_concurrent(kiln_worker_pool_t *p, const char *name)
{
    const kiln_tenant_t *t = kiln_config_tenant_named(p->srv->config, name);
    return t ? t->max_concurrent : 0;
}

/* Claims the next build fairly across tenants (sched.h): round robin among those with
 * queued builds and room under their max_concurrent. Returns 1 with *job, 0 when none may
 * start, -1 on a store error. */
static int claim_next(kiln_worker_pool_t *p, kiln_db_job_t *job, kiln_error_t *err)
{
    json_t *load = NULL, *v;
    kiln_sched_tenant_t *t = NULL;
    const char *name;
    size_t n = 0;
    int i, got = 0;

    pthread_mutex_lock(&p->sched_lock);
    if (kiln_db_tenant_load(p->srv->db, &load, err) < 0) {
        pthread_mutex_unlock(&p->sched_lock);
        return -1;
    }
    t = kiln_xzalloc((json_object_size(load) + 1) * sizeof(*t));
    json_object_foreach(load, name, v)
    {
        t[n].name = name;
        t[n].queued = json_integer_value(json_array_get(v, 0));
        t[n].running = json_integer_value(json_array_get(v, 1));
        t[n].max_concurrent = tenant_max_concurrent(p, name);
        n++;
    }
    i = kiln_sched_pick(t, n, p->last_tenant);
    if (i >= 0) {
        got = kiln_db_claim_tenant(p->srv->db, t[i].name, NULL, job, err);
        if (got > 0)
            snprintf(p->last_tenant, sizeof(p->last_tenant), "%s", t[i].name);
    }
    pthread_mutex_unlock(&p->sched_lock);
    free(t);
    json_decref(load);
    return got;
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
        kiln_db_flush_unrecorded(p->srv->db);
        got = claim_next(p, &job, &err);
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
        /* a tenant at its max_concurrent may start another build now */
        pthread_cond_broadcast(&p->wake);
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
    pthread_mutex_init(&p->sched_lock, NULL);
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
    pthread_mutex_destroy(&p->sched_lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->idle);
    free(p->threads);
    free(p->slots);
    free(p->build_cmd);
    free(p);
}
