#include "src/server/sqs_worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <openssl/crypto.h>

#include "job/context.h"
#include "src/server/job.h"
#include "src/server/jobkey.h"
#include "src/server/modes.h"
#include "src/server/qfair.h"
#include "src/server/qlease.h"
#include "src/server/remote.h"
#include "src/server/request.h"
#include "src/server/runner.h"
#include "src/server/s3_context.h"
#include "src/server/sqs_heartbeat.h"
#include "src/server/sqs_jobs.h"
#include "src/server/tenant.h"
#include "src/server/tenantcreds.h"
#include "src/server/worker.h"
#include "utils/aws/client.h"
#include "utils/aws/sqs.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

extern char **environ;

#define LOG_TAIL (128 * 1024)
#define CONTEXT_CAP ((size_t)1 << 30)

struct kiln_sqs_worker {
    kiln_sqs_worker_opts_t o;
    pthread_t *threads;
    pthread_mutex_t lock;
    char **running; /* job ids being built here, one slot per thread */
    volatile int draining;
    volatile int stop_builds;
    char *last_tenant; /* the tenant whose job this worker started last (round robin) */
    char host[128];
};

typedef struct job_state {
    kiln_sqs_worker_t *w;
    kiln_aws_t *aws;
    const char *id;
    const char *receipt;
    int attempt;
    volatile int *canceled; /* set by the heartbeat when the cancel marker appears */
} job_state_t;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends an event (best effort unless `must`): returns -1 when it could not be sent. */
static int send_event(job_state_t *j, json_t *ev)
{
    _cleanup_free_ char *text = NULL;
    kiln_msg_attr_t attrs[2] = {{"kiln-build-id", j->id}, {"kiln-event", ""}};
    kiln_sqs_message_t msg = {.attrs = attrs, .n_attrs = 2};
    const char *url = j->w->o.events_url;
    size_t n;
    int ret;

    if (url == NULL) {
        json_decref(ev);
        return 0;
    }
    json_object_set_new(ev, "id", json_string(j->id));
    json_object_set_new(ev, "worker", json_string(j->w->host));
    json_object_set_new(ev, "attempt", json_integer(j->attempt));
    /* ev owns the attribute's value: it lives until the message is sent. */
    attrs[1].value = json_string_value(json_object_get(ev, "type"));
    if (attrs[1].value == NULL)
        attrs[1].value = "";
    text = json_dumps(ev, JSON_COMPACT);
    msg.body = text;
    n = strlen(url);
    if (n > 5 && strcmp(url + n - 5, ".fifo") == 0)
        msg.group_id = j->id;
    ret = text ? kiln_sqs_send(j->aws, url, &msg, NULL, NULL) : -1;
    json_decref(ev);
    return ret;
}

/* Records the build's process group, so that a restarted worker can sweep what a crash left
 * running (kiln_sqs_worker_start). */
static void on_started(void *opaque, pid_t pgid, uint64_t ticks)
{
    job_state_t *j = opaque;
    _cleanup_free_ char *path = kiln_xasprintf("%s/running/%s", j->w->o.root, j->id);
    char line[64];
    int n = snprintf(line, sizeof(line), "%d %llu\n", (int)pgid, (unsigned long long)ticks);
    kiln_fs_write_file_atomic(path, line, (size_t)n, 0600, NULL);
}

/* Kills the process groups of builds a previous run of this worker left behind. */
static void sweep_running(const char *root)
{
    _cleanup_free_ char *dir = kiln_xasprintf("%s/running", root);
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        _cleanup_free_ char *text = NULL, *path = NULL;
        int pgid = 0;
        unsigned long long ticks = 0;
        size_t len;
        if (e->d_name[0] == '.')
            continue;
        path = kiln_xasprintf("%s/%s", dir, e->d_name);
        if (kiln_fs_read_file(path, 256, &text, &len, NULL) == 0 &&
            sscanf(text, "%d %llu", &pgid, &ticks) == 2)
            kiln_runner_kill_stale((pid_t)pgid, (uint64_t)ticks);
        unlinkat(dirfd(d), e->d_name, 0);
    }
}

static void on_phase(void *opaque, const char *status)
{
    job_state_t *j = opaque;
    send_event(j, json_pack("{s:s,s:s}", "type", "phase", "status", status));
}

static void on_commit(void *opaque, const char *sha)
{
    job_state_t *j = opaque;
    send_event(j, json_pack("{s:s,s:s}", "type", "commit", "commit", sha));
}

static void on_source(void *opaque, const char *author, const char *message)
{
    job_state_t *j = opaque;
    json_t *ev = json_pack("{s:s}", "type", "source");
    if (author)
        json_object_set_new(ev, "author", json_string(author));
    if (message)
        json_object_set_new(ev, "message", json_string(message));
    send_event(j, ev);
}

/* Stops builds when a drain ran out of time or the build was canceled. */
static int on_should_stop(void *opaque)
{
    job_state_t *j = opaque;
    return j->w->stop_builds || *j->canceled;
}

/* The last LOG_TAIL bytes of the log. */
static char *log_tail(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    char *buf;
    off_t off;
    ssize_t n;

    if (fd < 0 || fstat(fd, &sb) < 0)
        return kiln_xstrdup("");
    off = sb.st_size > LOG_TAIL ? sb.st_size - LOG_TAIL : 0;
    buf = kiln_xmalloc(LOG_TAIL + 1);
    n = pread(fd, buf, LOG_TAIL, off);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    return buf;
}

/* A JSON string for text that may not be UTF-8 (a cut at the start, binary output): when
 * it is not, bytes outside ASCII become '?'. */
static json_t *json_text(char *text)
{
    json_t *s = json_string(text);
    if (s)
        return s;
    for (char *p = text; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    return json_string(text);
}

/* Fetches the tarball of the uploaded context ctx (checked "ctx-<hex>" by the job codec)
 * the server staged in S3 into ROOT/contexts/BUILD/CTX.tar, BUILD/ being the job's own
 * contexts directory (*dir, malloc'ed; two builds of one upload never share a file), where
 * the job finds it (kiln job run --contexts-dir) and unpacks it with the default caps (serve
 * checked its own when it was uploaded). */
static int fetch_context(kiln_sqs_worker_t *w, kiln_aws_t *aws, const char *build, const char *ctx,
                         const char *url, char **dir, kiln_error_t *err)
{
    _cleanup_free_ char *d = kiln_xasprintf("%s/contexts/%s", w->o.root, build);
    _cleanup_free_ char *t = kiln_xasprintf("%s/%s.tar", d, ctx);

    if (url == NULL)
        return kiln_error_set(err, 0, "the job has an uploaded context but no context_url");
    if (kiln_fs_rm_rf(d, err) < 0 || kiln_fs_mkdir_p(d, 0700, err) < 0 ||
        kiln_s3_context_get(aws, url, t, CONTEXT_CAP, err) < 0) {
        kiln_fs_rm_rf(d, NULL);
        return -1;
    }
    *dir = steal_pointer(&d);
    return 0;
}

/* Looks for the job's shared done marker (written by whichever worker built it). Returns 1
 * when it exists (copied to the local marker path done), 0 when it does not, -1 when the
 * store could not be asked or read (the caller must not build). */
static int fetch_done(kiln_sqs_worker_t *w, kiln_aws_t *aws, const kiln_remote_job_t *job,
                      const char *done)
{
    _cleanup_free_ char *tmp = kiln_xasprintf("%s.s3", done);
    kiln_error_t err = {0};
    int have = kiln_s3_context_exists(aws, job->done_url, &err);

    if (have == 1) {
        unlink(tmp);
        if (kiln_s3_context_get(aws, job->done_url, tmp, 1 << 20, &err) == 0 &&
            rename(tmp, done) == 0) {
            fprintf(stderr,
                    "kiln worker: build %s was built already (done marker); not built again\n",
                    job->id);
            return 1;
        }
        unlink(tmp);
        have = -1;
    }
    if (have < 0)
        fprintf(stderr, "kiln worker: build %s: cannot read its done marker, left for later: %s\n",
                job->id, err.msg);
    return have;
}

/* Claims id for this process; 0 when it is already being built here. */
static int claim_id(kiln_sqs_worker_t *w, int slot, const char *id)
{
    int ok = 1;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->o.concurrency; i++)
        if (w->running[i] && strcmp(w->running[i], id) == 0)
            ok = 0;
    if (ok)
        w->running[slot] = kiln_xstrdup(id);
    pthread_mutex_unlock(&w->lock);
    return ok;
}

static void release_id(kiln_sqs_worker_t *w, int slot)
{
    pthread_mutex_lock(&w->lock);
    free(w->running[slot]);
    w->running[slot] = NULL;
    pthread_mutex_unlock(&w->lock);
}

/* Opens the job's sealed secrets into its request ("secrets": {name: value}), where request
 * validation expects them. */
/* A job of a tenant this worker's --config knows is held to that tenant's outputs again
 * (serve checked them at submit; the queue is the only way in, so this is a second line). */
static int check_tenant_outputs(const kiln_sqs_worker_t *w, json_t *stored, kiln_error_t *err)
{
    const kiln_tenant_t *t =
        kiln_config_tenant_named(w->o.config, json_string_value(json_object_get(stored, "tenant")));
    unsigned status = 0;

    return t ? kiln_tenant_check_outputs(t, stored, &status, err) : 0;
}

/* What a job of tenant may "allow": with --config, only what both its tenant (tenants[].
 * entitlements) and this worker (--allow: what the host offers) grant, nothing for a tenant
 * the config does not know; without --config, the worker's --allow. */
static unsigned job_entitlements(const kiln_sqs_worker_t *w, const char *tenant)
{
    const kiln_tenant_t *t;

    if (w->o.config == NULL)
        return w->o.entitlements;
    t = kiln_config_tenant_named(w->o.config, tenant ? tenant : KILN_TENANT_DEFAULT);
    return t ? t->entitlements & w->o.entitlements : 0;
}

/* Refuses a job asking for an entitlement its tenant or this worker does not grant. */
static int check_job_allow(const kiln_sqs_worker_t *w, json_t *stored, kiln_error_t *err)
{
    const char *tenant = json_string_value(json_object_get(stored, "tenant"));

    if (kiln_request_check_allow(stored, job_entitlements(w, tenant), err) < 0)
        return kiln_error_prefix(err, "tenant '%s'", tenant ? tenant : KILN_TENANT_DEFAULT);
    return 0;
}

static int unseal_secrets(kiln_sqs_worker_t *w, kiln_remote_job_t *job, kiln_error_t *err)
{
    char *plain = NULL;
    size_t len = 0;
    json_t *values;

    if (job->sealed == NULL)
        return 0;
    if (w->o.job_key == NULL)
        return kiln_error_set(err, 0,
                              "the job carries sealed secrets but this worker has no job key "
                              "(--job-key-file or KILN_JOB_KEY_FILE)");
    if (kiln_jobkey_open(w->o.job_key, job->id, job->sealed, &plain, &len, err) < 0)
        return -1;
    values = json_loadb(plain, len, 0, NULL);
    OPENSSL_cleanse(plain, len);
    free(plain);
    if (!json_is_object(values)) {
        json_decref(values);
        return kiln_error_set(err, 0, "the job's sealed secrets are not a JSON object");
    }
    json_object_set_new(job->request, "secrets", values);
    return 0;
}

/* Handles one received job message. */
static void handle(kiln_sqs_worker_t *w, int slot, kiln_aws_t *aws, kiln_sqs_received_t *m,
                   const char *lease_url)
{
    _cleanup_free_ char *log = NULL, *work = NULL, *done = NULL, *secrets = NULL;
    _cleanup_free_ char *contexts = NULL; /* the job's uploaded context, when it has one */
    kiln_remote_job_t job = {0};
    json_t *files = NULL;
    const char *id;
    kiln_request_t valid = {0};
    kiln_error_t err = {0};
    kiln_job_outcome_t out = {0};
    job_state_t j = {.w = w, .aws = aws, .receipt = m->receipt, .attempt = m->receive_count};
    kiln_job_hooks_t hooks = {.started = on_started,
                              .phase = on_phase,
                              .commit = on_commit,
                              .source = on_source,
                              .should_stop = on_should_stop,
                              .opaque = &j};
    struct stat sb;
    kiln_sqs_heartbeat_t hb;
    char note[160];
    int sent;

    if (kiln_remote_parse_job(m->body, &job, &err) < 0) {
        fprintf(stderr, "kiln worker: dropping message %s: %s\n", m->message_id, err.msg);
        kiln_sqs_jobs_delete(aws, w->o.queue_url, m->receipt, NULL);
        return;
    }
    id = j.id = job.id;
    if (!claim_id(w, slot, id)) {
        /* The same job is being built by this process: leave the copy hidden for later. */
        kiln_remote_job_clear(&job);
        return;
    }
    if (kiln_sqs_heartbeat_start(&hb, w->o.queue_url, m->receipt, job.cancel_url, w->o.visibility_s,
                                 lease_url, w->host) < 0) {
        release_id(w, slot);
        kiln_remote_job_clear(&job);
        return;
    }
    j.canceled = &hb.canceled;
    done = kiln_xasprintf("%s/done/%s", w->o.root, id);
    if (stat(done, &sb) == 0 || (job.done_url && fetch_done(w, aws, &job, done) != 0)) {
        /* Built already (here, or by a worker that died before the delete: the shared
         * marker); its finished event (kept in the marker) may not have gone out: send it
         * again, then the message goes. Never build twice. When the shared store cannot be
         * asked, the message is left for later rather than risk a second build. */
        _cleanup_free_ char *text = NULL;
        size_t len;
        json_t *ev = NULL;
        if (stat(done, &sb) == 0 && kiln_fs_read_file(done, 1 << 20, &text, &len, NULL) == 0)
            ev = json_loadb(text, len, 0, NULL);
        sent = stat(done, &sb) == 0 && (ev ? send_event(&j, ev) == 0 : 1);
        kiln_sqs_heartbeat_stop(&hb);
        if (sent)
            kiln_sqs_jobs_delete(aws, w->o.queue_url, m->receipt, NULL);
        release_id(w, slot);
        kiln_remote_job_clear(&job);
        return;
    }
    log = kiln_xasprintf("%s/logs/%s.log", w->o.root, id);
    work = kiln_xasprintf("%s/builds/%s", w->o.root, id);
    secrets = kiln_xasprintf("%s/secrets/%s", w->o.root, id);
    snprintf(note, sizeof(note), "[kiln] build %s: attempt %d on %s", id, m->receive_count,
             w->host);
    kiln_runner_log_note(log, note, NULL);

    if (job.cancel_url && kiln_s3_context_exists(aws, job.cancel_url, NULL) == 1) {
        /* Canceled while it waited in the queue: nothing to build. */
        hb.canceled = 1;
        snprintf(out.status, sizeof(out.status), "stopped");
    } else if (unseal_secrets(w, &job, &err) < 0 ||
               kiln_request_from_json(job.request, &valid, &err) < 0 ||
               check_tenant_outputs(w, valid.stored, &err) < 0 ||
               check_job_allow(w, valid.stored, &err) < 0 ||
               kiln_limits_apply(valid.stored, &w->o.limits, &err) < 0 ||
               (json_object_get(json_object_get(valid.stored, "source"), "context") &&
                fetch_context(w, aws, id,
                              json_string_value(json_object_get(
                                  json_object_get(valid.stored, "source"), "context")),
                              job.context_url, &contexts, &err) < 0)) {
        snprintf(out.status, sizeof(out.status), "failed");
        snprintf(out.reason, sizeof(out.reason), "invalid_job");
        snprintf(out.error, sizeof(out.error), "%s", err.msg);
    } else {
        const char *first = json_object_get(json_object_get(valid.stored, "source"), "git")
                                ? "cloning"
                                : "building";
        const char *tenant = json_string_value(json_object_get(valid.stored, "tenant"));
        const kiln_tenant_t *t = kiln_config_tenant_named(w->o.config, tenant);
        _cleanup_strv_ char **child_env = NULL;
        int bad_creds = 0;
        if ((valid.secrets &&
             kiln_worker_write_secrets(secrets, valid.secrets, &files, &err) < 0) ||
            (bad_creds =
                 kiln_tenantcreds_prepare(t ? json_object_get(t->raw, "credentials") : NULL, tenant,
                                          secrets, environ, &child_env, &err) < 0)) {
            snprintf(out.status, sizeof(out.status), "failed");
            snprintf(out.reason, sizeof(out.reason), "%s", bad_creds ? "credentials" : "error");
            snprintf(out.error, sizeof(out.error), "%s", err.msg);
        } else {
            kiln_job_env_t env = {.build_cmd = w->o.build_cmd,
                                  .kiln_root = w->o.kiln_root,
                                  .build_options = w->o.build_options,
                                  .work_dir = work,
                                  .log_path = log,
                                  .log_cap = w->o.log_cap,
                                  .timeout_s = w->o.timeout_s,
                                  .entitlements = job_entitlements(w, tenant),
                                  .child_env = child_env,
                                  .build_id = id,
                                  .trigger = job.trigger};
            send_event(&j, json_pack("{s:s,s:s}", "type", "started", "status", first));
            kiln_server_job_run(&env, valid.stored, files, contexts, &hooks, &out);
        }
        kiln_fs_rm_rf(secrets, NULL);
    }
    if (contexts)
        kiln_fs_rm_rf(contexts, NULL);

    if (strcmp(out.status, "stopped") == 0 && hb.canceled) {
        /* Canceled: the steps are gone; the build ends here, as canceled. */
        snprintf(out.status, sizeof(out.status), "canceled");
        snprintf(out.reason, sizeof(out.reason), "canceled");
    }
    if (strcmp(out.status, "stopped") == 0) {
        /* Drain ran out of time: release the message for another worker now. */
        kiln_runner_log_note(log, "[kiln] stopped by shutdown; released to the queue", NULL);
        send_event(&j, json_pack("{s:s}", "type", "requeued"));
        kiln_sqs_heartbeat_stop(&hb);
        kiln_sqs_jobs_extend(aws, w->o.queue_url, m->receipt, 0, NULL);
    } else {
        json_t *ev;
        _cleanup_free_ char *tail = NULL;
        snprintf(note, sizeof(note), "[kiln] %s%s%s", out.status, out.error[0] ? ": " : "",
                 out.error);
        kiln_runner_log_note(log, note, NULL);
        tail = log_tail(log);
        ev = json_pack("{s:s,s:s,s:o}", "type", "finished", "status", out.status, "log",
                       json_text(tail));
        if (out.reason[0])
            json_object_set_new(ev, "reason", json_string(out.reason));
        if (out.error[0])
            json_object_set_new(ev, "error", json_string(out.error));
        if (out.result)
            json_object_set_new(ev, "result", json_loads(out.result, 0, NULL));
        /* The result is recorded first (the marker keeps the event); the message goes only
         * once the event is out, else it comes back and the event is sent again. */
        {
            _cleanup_free_ char *text = json_dumps(ev, JSON_COMPACT);
            kiln_error_t merr = {0};
            if (text)
                kiln_fs_write_file_atomic(done, text, strlen(text), 0600, NULL);
            /* The shared marker lets any worker that gets this message again answer it. */
            if (text && job.done_url && kiln_s3_context_mark(aws, job.done_url, text, &merr) < 0)
                fprintf(stderr, "kiln worker: build %s: done marker: %s\n", id, merr.msg);
        }
        sent = send_event(&j, ev) == 0;
        kiln_sqs_heartbeat_stop(&hb);
        if (sent && getenv("KILN_WORKER_TEST_PAUSE_BEFORE_DELETE")) {
            /* Test hook: the window between a finished build and its delete, held open so a
             * test can kill the worker in it. */
            fprintf(stderr, "kiln worker: build %s: pausing before delete\n", id);
            for (;;)
                pause();
        }
        if (sent)
            kiln_sqs_jobs_delete(aws, w->o.queue_url, m->receipt, NULL);
    }
    kiln_job_outcome_free(&out);
    kiln_request_free(&valid);
    json_decref(files);
    kiln_remote_job_clear(&job);
    {
        _cleanup_free_ char *running = kiln_xasprintf("%s/running/%s", w->o.root, id);
        unlink(running);
    }
    release_id(w, slot);
}

typedef struct thread_arg {
    kiln_sqs_worker_t *w;
    int slot;
} thread_arg_t;

/* The tenant a job message names (malloc'ed), or NULL (tenant default, or not a job: handle()
 * drops it). */
static char *message_tenant(const char *body)
{
    json_t *o = json_loads(body, 0, NULL);
    const char *t = json_string_value(json_object_get(json_object_get(o, "request"), "tenant"));
    char *name = t ? kiln_xstrdup(t) : NULL;

    json_decref(o);
    return name;
}

/* Takes a lease for the job in m when its tenant has a max_concurrent (kiln worker --config):
 * counts the tenant's live leases, writes the job's own, counts again. Returns 1 when the job
 * may start (*lease_url set when a lease was taken), 0 when the tenant is at its limit, -1
 * when the store could not be asked (the job waits too: never start over the limit). */
static int lease_take(kiln_sqs_worker_t *w, kiln_aws_t *aws, const kiln_sqs_received_t *m,
                      char **lease_url)
{
    kiln_remote_job_t job = {0};
    const kiln_tenant_t *t;
    const char *tenant;
    _cleanup_free_ char *prefix = NULL, *url = NULL;
    kiln_error_t err = {0};
    int n, ret = 1;

    if (w->o.config == NULL || kiln_remote_parse_job(m->body, &job, NULL) < 0)
        return 1; /* no limits known here, or not a job (handle() drops it) */
    tenant = json_string_value(json_object_get(job.request, "tenant"));
    t = kiln_config_tenant_named(w->o.config, tenant ? tenant : KILN_TENANT_DEFAULT);
    if (t == NULL || t->max_concurrent <= 0)
        goto out;
    prefix = kiln_qfair_lease_prefix(job.done_url, job.id, t->name);
    if (prefix == NULL) {
        fprintf(stderr,
                "kiln worker: build %s: tenant '%s' has max_concurrent but the job has no "
                "shared store (kiln serve --context-store): not enforced\n",
                job.id, t->name);
        goto out;
    }
    url = kiln_xasprintf("%s%s", prefix, job.id);
    if ((n = kiln_qlease_count(aws, prefix, job.id, (int)t->max_concurrent, &err)) < 0 ||
        (n < t->max_concurrent &&
         (kiln_qlease_write(aws, url, w->o.visibility_s, w->host, &err) < 0 ||
          (n = kiln_qlease_count(aws, prefix, job.id, (int)t->max_concurrent, &err)) < 0))) {
        fprintf(stderr, "kiln worker: build %s: tenant '%s' leases: %s; left for later\n", job.id,
                t->name, err.msg);
        kiln_s3_context_delete(aws, url, NULL);
        ret = -1;
    } else if (n >= t->max_concurrent) {
        fprintf(stderr,
                "kiln worker: build %s: tenant '%s' runs %d of its max_concurrent %lld; "
                "left for later\n",
                job.id, t->name, n, t->max_concurrent);
        kiln_s3_context_delete(aws, url, NULL);
        ret = 0;
    } else {
        *lease_url = steal_pointer(&url);
    }
out:
    kiln_remote_job_clear(&job);
    return ret;
}

/* Of a received batch, the message to start now: the next tenant's in round robin after the
 * tenant this worker started last, passing over tenants at their max_concurrent (their
 * messages come back after a short backoff). The others are made visible again at once for
 * any worker (none is held while this one builds). Returns its index, -1 for none. */
static int pick_fair(kiln_sqs_worker_t *w, kiln_aws_t *aws, kiln_sqs_received_t *m, int n,
                     char **lease_url)
{
    char *tenants[KILN_QFAIR_BATCH] = {0};
    unsigned char skip[KILN_QFAIR_BATCH] = {0};
    int pick;

    for (int i = 0; i < n; i++)
        tenants[i] = message_tenant(m[i].body);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        pick = w->draining
                   ? -1
                   : kiln_qfair_pick((const char *const *)tenants, skip, (size_t)n, w->last_tenant);
        pthread_mutex_unlock(&w->lock);
        if (pick < 0 || lease_take(w, aws, &m[pick], lease_url) > 0)
            break;
        for (int i = 0; i < n; i++) /* that tenant's other jobs wait as well */
            if (!skip[i] && strcmp(tenants[i] ? tenants[i] : KILN_TENANT_DEFAULT,
                                   tenants[pick] ? tenants[pick] : KILN_TENANT_DEFAULT) == 0)
                skip[i] = 1;
    }
    if (pick >= 0) {
        pthread_mutex_lock(&w->lock);
        free(w->last_tenant);
        w->last_tenant = kiln_xstrdup(tenants[pick] ? tenants[pick] : KILN_TENANT_DEFAULT);
        pthread_mutex_unlock(&w->lock);
    }
    for (int i = 0; i < n; i++) {
        /* a short backoff, varied so that racing workers do not retry in step */
        int backoff = 2 + (int)((unsigned)(mono_now() * 1000) % 3);
        if (i != pick)
            kiln_sqs_jobs_extend(
                aws, w->o.queue_url, m[i].receipt,
                skip[i] ? (backoff < w->o.visibility_s ? backoff : w->o.visibility_s) : 0, NULL);
        free(tenants[i]);
    }
    return pick;
}

static void *thread_main(void *arg)
{
    thread_arg_t *a = arg;
    kiln_sqs_worker_t *w = a->w;
    int slot = a->slot;
    kiln_aws_t *aws = kiln_aws_new(NULL);

    free(a);
    while (!w->draining) {
        kiln_sqs_received_t m[KILN_QFAIR_BATCH] = {0};
        kiln_error_t err = {0};
        _cleanup_free_ char *lease_url = NULL;
        int got = kiln_sqs_jobs_receive_batch(aws, w->o.queue_url, KILN_QFAIR_BATCH, w->o.wait_s,
                                              w->o.visibility_s, m, &err);
        int pick;
        if (got < 0) {
            fprintf(stderr, "kiln worker: %s\n", err.msg);
            sleep(1);
            continue;
        }
        pick = pick_fair(w, aws, m, got, &lease_url);
        if (pick >= 0)
            handle(w, slot, aws, &m[pick], lease_url);
        /* the job ended (or went back to the queue): its slot is free for the tenant */
        if (lease_url)
            kiln_s3_context_delete(aws, lease_url, NULL);
        for (int i = 0; i < got; i++)
            kiln_sqs_received_free(&m[i]);
    }
    kiln_aws_free(aws);
    return NULL;
}

int kiln_sqs_worker_start(const kiln_sqs_worker_opts_t *opts, kiln_sqs_worker_t **out,
                          kiln_error_t *err)
{
    kiln_sqs_worker_t *w = kiln_xzalloc(sizeof(*w));
    static const char *const dirs[] = {"logs", "builds", "done", "secrets", "contexts", "running"};

    w->o = *opts;
    if (w->o.concurrency < 1)
        w->o.concurrency = 1;
    gethostname(w->host, sizeof(w->host) - 16);
    snprintf(w->host + strlen(w->host), 16, ":%d", (int)getpid());
    if (kiln_server_secure_root(opts->root, err) < 0) {
        free(w);
        return -1;
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        _cleanup_free_ char *d = kiln_xasprintf("%s/%s", opts->root, dirs[i]);
        if (kiln_fs_mkdir_p(d, 0700, err) < 0) {
            free(w);
            return -1;
        }
    }
    {
        /* a killed worker's secrets: each job writes its own again from its sealed message */
        _cleanup_free_ char *d = kiln_xasprintf("%s/secrets", opts->root);
        if (kiln_fs_rm_rf(d, err) < 0 || kiln_fs_mkdir_p(d, 0700, err) < 0) {
            free(w);
            return -1;
        }
    }
    sweep_running(opts->root);
    pthread_mutex_init(&w->lock, NULL);
    w->running = kiln_xzalloc((size_t)w->o.concurrency * sizeof(char *));
    w->threads = kiln_xzalloc((size_t)w->o.concurrency * sizeof(pthread_t));
    for (int i = 0; i < w->o.concurrency; i++) {
        thread_arg_t *a = kiln_xmalloc(sizeof(*a));
        int rc;
        a->w = w;
        a->slot = i;
        rc = pthread_create(&w->threads[i], NULL, thread_main, a);
        if (rc != 0) {
            free(a);
            w->o.concurrency = i;
            kiln_sqs_worker_stop(w);
            return kiln_error_set(err, rc, "starting worker thread");
        }
    }
    *out = w;
    return 0;
}

/* True while some thread still builds a job. */
static int busy(kiln_sqs_worker_t *w)
{
    int b = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->o.concurrency; i++)
        b |= w->running[i] != NULL;
    pthread_mutex_unlock(&w->lock);
    return b;
}

void kiln_sqs_worker_stop(kiln_sqs_worker_t *w)
{
    double end;

    if (w == NULL)
        return;
    w->draining = 1;
    end = mono_now() + w->o.drain_s;
    while (busy(w) && mono_now() < end)
        usleep(100 * 1000);
    w->stop_builds = 1;
    for (int i = 0; i < w->o.concurrency; i++)
        pthread_join(w->threads[i], NULL);
    for (int i = 0; i < w->o.concurrency; i++)
        free(w->running[i]);
    free(w->running);
    free(w->threads);
    free(w->last_tenant);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
