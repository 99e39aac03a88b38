/* kiln server — scale-out over SQS (see remote.h): each build sent as a job message, uploaded
 * contexts staged, cancel markers written, and the events `kiln worker`s send back applied to
 * kiln.db. */
#include "src/server/remote.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "src/server/job.h"
#include "src/server/jobkey.h"
#include "src/server/request.h"
#include "src/server/s3_context.h"
#include "src/server/sqs_jobs.h"
#include "utils/aws/client.h"
#include "utils/aws/sqs.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/git.h"
#include "utils/mem.h"

struct kiln_remote {
    kiln_server_t *srv;
    char *jobs_url;
    char *events_url;
    char *context_store;
    kiln_aws_t *send_aws;
    pthread_mutex_t send_lock;
    pthread_t reader;
    volatile int stop;
};

/* An optional s3:// URL field of a job message (malloc'ed, NULL when absent). */
static int job_url(json_t *o, const char *field, char **out, kiln_error_t *err)
{
    const char *u = json_string_value(json_object_get(o, field));
    if (u && strncmp(u, "s3://", 5) != 0)
        return kiln_error_set(err, 0, "job message: %s must be an s3:// URL", field);
    *out = u ? kiln_xstrdup(u) : NULL;
    return 0;
}

void kiln_remote_job_clear(kiln_remote_job_t *job)
{
    free(job->id);
    json_decref(job->request);
    free(job->context_url);
    free(job->cancel_url);
    free(job->done_url);
    free(job->trigger);
    json_decref(job->sealed);
    memset(job, 0, sizeof(*job));
}

int kiln_remote_parse_job(const char *body, kiln_remote_job_t *job, kiln_error_t *err)
{
    json_t *o = json_loads(body, 0, NULL), *req, *sealed;
    kiln_remote_job_t j = {0};
    const char *i;

    if (!json_is_object(o)) {
        json_decref(o);
        return kiln_error_set(err, 0, "job message is not a JSON object");
    }
    i = json_string_value(json_object_get(o, "id"));
    req = json_object_get(o, "request");
    if (i == NULL || strlen(i) > 64 ||
        strspn(i, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(i) || !json_is_object(req)) {
        json_decref(o);
        return kiln_error_set(err, 0, "job message needs an 'id' and a 'request' object");
    }
    sealed = json_object_get(o, "secrets");
    if (job_url(o, "context_url", &j.context_url, err) < 0 ||
        job_url(o, "cancel_url", &j.cancel_url, err) < 0 ||
        job_url(o, "done_url", &j.done_url, err) < 0 ||
        (sealed && !json_is_object(sealed) &&
         kiln_error_set(err, 0, "job message: secrets must be a sealed object") < 0)) {
        kiln_remote_job_clear(&j);
        json_decref(o);
        return -1;
    }
    j.id = kiln_xstrdup(i);
    {
        /* a short name; the job spec checks its characters */
        const char *tr = json_string_value(json_object_get(o, "trigger"));
        j.trigger = tr && strlen(tr) <= 32 ? kiln_xstrdup(tr) : NULL;
    }
    j.request = json_incref(req);
    j.sealed = sealed ? json_incref(sealed) : NULL;
    json_decref(o);
    *job = j;
    return 0;
}

/* Where an uploaded context is staged (malloc'ed). */
static char *context_url(const kiln_remote_t *r, const char *ctx_id)
{
    size_t n = strlen(r->context_store);
    return kiln_xasprintf("%s%s%s.tar", r->context_store,
                          n && r->context_store[n - 1] == '/' ? "" : "/", ctx_id);
}

/* Where a marker of build id goes under the context store: kind/id (malloc'ed). */
static char *marker_url(const kiln_remote_t *r, const char *kind, const char *id)
{
    size_t n = strlen(r->context_store);
    return kiln_xasprintf("%s%s%s/%s", r->context_store,
                          n && r->context_store[n - 1] == '/' ? "" : "/", kind, id);
}

/* Where the cancel marker of build id goes (malloc'ed). */
static char *cancel_url(const kiln_remote_t *r, const char *id)
{
    return marker_url(r, "cancel", id);
}

int kiln_remote_cancel(kiln_remote_t *r, const char *id, kiln_error_t *err)
{
    _cleanup_free_ char *url = NULL;
    int ret;

    if (r->context_store == NULL)
        return kiln_error_set(err, 0, "no --context-store: the worker running %s cannot be told",
                              id);
    url = cancel_url(r, id);
    pthread_mutex_lock(&r->send_lock);
    ret = kiln_s3_context_mark(r->send_aws, url, "canceled\n", err);
    pthread_mutex_unlock(&r->send_lock);
    return ret;
}

int kiln_remote_has_context_store(const kiln_remote_t *r)
{
    return r->context_store != NULL;
}

int kiln_remote_stage_context(kiln_remote_t *r, const char *tarball, const char *ctx_id,
                              kiln_error_t *err)
{
    _cleanup_free_ char *url = NULL;
    int ret;

    if (r->context_store == NULL)
        return kiln_error_set(err, 0,
                              "uploaded contexts need --context-store when builds go "
                              "to a queue");
    url = context_url(r, ctx_id);
    pthread_mutex_lock(&r->send_lock);
    ret = kiln_s3_context_put(r->send_aws, tarball, url, err);
    pthread_mutex_unlock(&r->send_lock);
    return ret;
}

int kiln_remote_enqueue(kiln_remote_t *r, const char *id, json_t *stored, json_t *secrets,
                        const char *trigger, kiln_error_t *err)
{
    json_t *job = json_pack("{s:s,s:O}", "id", id, "request", stored);

    if (trigger)
        json_object_set_new(job, "trigger", json_string(trigger));
    const char *ctx =
        json_string_value(json_object_get(json_object_get(stored, "source"), "context"));
    _cleanup_free_ char *text = NULL;

    if (ctx && r->context_store) {
        _cleanup_free_ char *url = context_url(r, ctx);
        json_object_set_new(job, "context_url", json_string(url));
    }
    if (r->context_store) {
        _cleanup_free_ char *url = cancel_url(r, id);
        _cleanup_free_ char *done = marker_url(r, "done", id);
        json_object_set_new(job, "cancel_url", json_string(url));
        json_object_set_new(job, "done_url", json_string(done));
    }
    if (json_object_size(secrets) > 0) {
        json_t *sealed = NULL;
        char *plain = json_dumps(secrets, JSON_COMPACT);
        int ret = r->srv->job_key
                      ? kiln_jobkey_seal(r->srv->job_key, id, plain, strlen(plain), &sealed, err)
                      : kiln_error_set(err, 0, "secrets need a job key (--job-key-file)");
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
        if (ret < 0) {
            json_decref(job);
            return -1;
        }
        json_object_set_new(job, "secrets", sealed);
    }
    text = json_dumps(job, JSON_COMPACT);
    kiln_msg_attr_t attr = {"kiln-build-id", id};
    kiln_sqs_message_t msg = {.body = text, .attrs = &attr, .n_attrs = 1};
    size_t n = strlen(r->jobs_url);
    int ret;

    if (n > 5 && strcmp(r->jobs_url + n - 5, ".fifo") == 0) {
        msg.group_id = "kiln";
        msg.dedup_id = id;
    }
    json_decref(job);
    pthread_mutex_lock(&r->send_lock);
    ret = kiln_sqs_send(r->send_aws, r->jobs_url, &msg, NULL, err);
    pthread_mutex_unlock(&r->send_lock);
    return ret;
}

/* Replaces the build's log with what the worker sent (its tail), atomically. */
static void write_log(kiln_server_t *s, const char *id, const char *text)
{
    _cleanup_free_ char *path = kiln_server_log_path(s, id);
    kiln_fs_write_file_atomic(path, text, strlen(text), 0640, NULL);
}

int kiln_remote_apply_event(kiln_server_t *s, const char *body, kiln_error_t *err)
{
    json_t *ev = json_loads(body, 0, NULL);
    const char *type, *id, *status;
    int ret = 0;

    if (!json_is_object(ev)) {
        json_decref(ev);
        return kiln_error_set(err, 0, "event is not a JSON object");
    }
    type = json_string_value(json_object_get(ev, "type"));
    id = json_string_value(json_object_get(ev, "id"));
    status = json_string_value(json_object_get(ev, "status"));
    if (type == NULL || id == NULL) {
        json_decref(ev);
        return kiln_error_set(err, 0, "event without type or id");
    }
    if (strcmp(type, "started") == 0 && kiln_db_status_running(status)) {
        ret = kiln_db_remote_start(s->db, id, status, err);
    } else if (strcmp(type, "phase") == 0 && kiln_db_status_running(status)) {
        ret = kiln_db_phase(s->db, id, status, err);
    } else if (strcmp(type, "commit") == 0) {
        const char *c = json_string_value(json_object_get(ev, "commit"));
        if (c)
            ret = kiln_db_set_commit(s->db, id, c, err);
    } else if (strcmp(type, "source") == 0) {
        /* a worker's: capped like the job's own (the columns never hold more) */
        const char *a = json_string_value(json_object_get(ev, "author"));
        const char *m = json_string_value(json_object_get(ev, "message"));
        if ((a == NULL || strlen(a) <= KILN_GIT_AUTHOR_MAX) &&
            (m == NULL || strlen(m) <= KILN_GIT_MESSAGE_MAX))
            ret = kiln_db_set_commit_info(s->db, id, a, m, err);
    } else if (strcmp(type, "requeued") == 0) {
        ret = kiln_db_requeue(s->db, id, err);
    } else if (strcmp(type, "finished") == 0 && kiln_db_status_final(status)) {
        json_t *res = json_object_get(ev, "result");
        _cleanup_free_ char *res_text = json_is_object(res) ? json_dumps(res, JSON_COMPACT) : NULL;
        const char *log = json_string_value(json_object_get(ev, "log"));
        if (log)
            write_log(s, id, log);
        ret = kiln_db_finish(s->db, id, status, json_string_value(json_object_get(ev, "reason")),
                             json_string_value(json_object_get(ev, "error")), res_text,
                             kiln_job_bytes_pushed(res_text), err);
    }
    json_decref(ev);
    return ret;
}

/* Reads the events queue until stopped; each event is deleted once applied. */
static void *reader_main(void *arg)
{
    kiln_remote_t *r = arg;
    kiln_aws_t *aws = kiln_aws_new(NULL);

    while (!r->stop) {
        kiln_sqs_received_t m = {0};
        kiln_error_t err = {0};
        int got = kiln_sqs_jobs_receive(aws, r->events_url, 1, 30, &m, &err);
        if (got < 0) {
            sleep(1);
            continue;
        }
        if (got == 0)
            continue;
        /* An event that cannot apply now (e.g. a store error) comes back after 30 s. */
        if (kiln_remote_apply_event(r->srv, m.body, &err) == 0 || err.code == 0)
            kiln_sqs_jobs_delete(aws, r->events_url, m.receipt, NULL);
        kiln_sqs_received_free(&m);
    }
    kiln_aws_free(aws);
    return NULL;
}

int kiln_remote_start(kiln_server_t *s, const char *jobs_url, const char *events_url,
                      const char *context_store, kiln_remote_t **out, kiln_error_t *err)
{
    kiln_remote_t *r = kiln_xzalloc(sizeof(*r));
    int rc;

    r->srv = s;
    r->jobs_url = kiln_xstrdup(jobs_url);
    r->events_url = events_url ? kiln_xstrdup(events_url) : NULL;
    r->context_store = context_store ? kiln_xstrdup(context_store) : NULL;
    r->send_aws = kiln_aws_new(NULL);
    pthread_mutex_init(&r->send_lock, NULL);
    if (r->events_url && (rc = pthread_create(&r->reader, NULL, reader_main, r)) != 0) {
        r->events_url = (free(r->events_url), NULL);
        kiln_remote_stop(r);
        return kiln_error_set(err, rc, "starting the events reader");
    }
    *out = r;
    return 0;
}

void kiln_remote_stop(kiln_remote_t *r)
{
    if (r == NULL)
        return;
    r->stop = 1;
    if (r->events_url)
        pthread_join(r->reader, NULL);
    kiln_aws_free(r->send_aws);
    pthread_mutex_destroy(&r->send_lock);
    free(r->jobs_url);
    free(r->events_url);
    free(r->context_store);
    free(r);
}
