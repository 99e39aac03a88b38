/* kiln server — a build's way through the local queue: claimed by a worker (fewest running
 * builds of its repository first), its process and phases recorded, finished (or failed when
 * the result cannot be written), requeued, canceled, and recovered after a restart. Each
 * transition is one transaction under the store's lock. */
#include "src/server/db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/server/db_impl.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

int kiln_db_claim(kiln_db_t *db, const char *first_status, kiln_db_job_t *job, kiln_error_t *err)
{
    return kiln_db_claim_tenant(db, NULL, first_status, job, err);
}

int kiln_db_claim_tenant(kiln_db_t *db, const char *tenant, const char *first_status,
                         kiln_db_job_t *job, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    kiln_db_job_t j = {0};
    double now = kiln_db_now();
    int rc;

    pthread_mutex_lock(&db->lock);
    if (kiln_db_exec(db, "BEGIN IMMEDIATE", err) < 0)
        goto fail_unlocked;
    if (kiln_db_prepare(db,
                        "SELECT b.id, b.repo, b.request, b.attempts, b.seq FROM builds b "
                        "WHERE b.status = 'queued' AND (?1 IS NULL OR " TENANT_SQL
                        " = ?1) ORDER BY "
                        "(SELECT count(*) FROM builds r WHERE "
                        "r.repo = b.repo AND r.status IN " RUNNING_SQL "), b.seq LIMIT 1",
                        &st, err) < 0)
        goto fail;
    if (tenant)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        kiln_db_exec(db, "COMMIT", NULL);
        pthread_mutex_unlock(&db->lock);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        kiln_db_fail(db, err, "claim");
        goto fail;
    }
    j.id = kiln_xstrdup((const char *)sqlite3_column_text(st, 0));
    j.repo = kiln_xstrdup((const char *)sqlite3_column_text(st, 1));
    j.request = kiln_xstrdup((const char *)sqlite3_column_text(st, 2));
    j.attempts = sqlite3_column_int(st, 3) + 1;
    int64_t seq = sqlite3_column_int64(st, 4);
    sqlite3_finalize(st);
    st = NULL;
    /* Without an explicit first status a git source starts by cloning. */
    if (kiln_db_run(
            db, err,
            "UPDATE builds SET status = coalesce(?1, CASE WHEN json_extract(request, "
            "'$.source.git') IS NOT NULL THEN 'cloning' ELSE 'building' END), started = ?2, "
            "finished = NULL, reason = NULL, error = NULL, attempts = attempts + 1 WHERE id = ?3",
            "tdt", first_status, now, j.id) < 0 ||
        kiln_db_run(
            db, err,
            "INSERT INTO phases(build_seq, name, started) SELECT ?1, status, ?2 FROM builds "
            "WHERE seq = ?1",
            "id", seq, now) < 0 ||
        kiln_db_exec(db, "COMMIT", err) < 0)
        goto fail;
    pthread_mutex_unlock(&db->lock);
    *job = j;
    return 1;
fail:
    sqlite3_finalize(st);
    kiln_db_rollback(db);
fail_unlocked:
    pthread_mutex_unlock(&db->lock);
    kiln_db_job_free(&j);
    return -1;
}

void kiln_db_job_free(kiln_db_job_t *job)
{
    free(job->id);
    free(job->repo);
    free(job->request);
    memset(job, 0, sizeof(*job));
}

int kiln_db_set_process(kiln_db_t *db, const char *id, pid_t pgid, uint64_t start_ticks,
                        kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = kiln_db_run(db, err, "UPDATE builds SET pgid = ?1, pstart = ?2 WHERE id = ?3", "iit",
                     (int64_t)pgid, (int64_t)start_ticks, id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

/* Closes the open phase of build `id`; caller holds the lock. */
static int close_phase(kiln_db_t *db, const char *id, double now, kiln_error_t *err)
{
    return kiln_db_run(db, err,
                       "UPDATE phases SET finished = ?1 WHERE finished IS NULL AND build_seq = "
                       "(SELECT seq FROM builds WHERE id = ?2)",
                       "dt", now, id);
}

/* Moves build `id` to status with `update` (an UPDATE of builds binding ?1 status, ?2 now,
 * ?3 id); when it changed a row, closes the open phase and opens one named status. */
static int enter_phase(kiln_db_t *db, const char *id, const char *status, const char *update,
                       kiln_error_t *err)
{
    double now = kiln_db_now();
    int rc;

    pthread_mutex_lock(&db->lock);
    rc = kiln_db_run(db, err, update, "tdt", status, now, id);
    if (rc > 0 &&
        (close_phase(db, id, now, err) < 0 ||
         kiln_db_run(db, err,
                     "INSERT INTO phases(build_seq, name, started) SELECT seq, ?1, ?2 FROM "
                     "builds WHERE id = ?3",
                     "tdt", status, now, id) < 0))
        rc = -1;
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_remote_start(kiln_db_t *db, const char *id, const char *status, kiln_error_t *err)
{
    return enter_phase(
        db, id, status,
        "UPDATE builds SET status = ?1, started = ?2, finished = NULL, attempts = attempts + 1 "
        "WHERE id = ?3 AND status NOT IN ('succeeded', 'failed', 'canceled')",
        err);
}

int kiln_db_phase(kiln_db_t *db, const char *id, const char *status, kiln_error_t *err)
{
    /* ?2 (the time) is bound but unused: only the phase rows carry it */
    return enter_phase(db, id, status,
                       "UPDATE builds SET status = ?1 WHERE id = ?3 AND ?2 IS NOT NULL AND status "
                       "!= ?1 AND status IN " RUNNING_SQL,
                       err);
}

int kiln_db_set_commit(kiln_db_t *db, const char *id, const char *commit, kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = kiln_db_run(db, err, "UPDATE builds SET commit_sha = ?1 WHERE id = ?2", "tt", commit, id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_set_commit_info(kiln_db_t *db, const char *id, const char *author, const char *message,
                            kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = kiln_db_run(db, err,
                     "UPDATE builds SET commit_author = ?1, commit_message = ?2 WHERE id = ?3",
                     "ttt", author, message, id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_finish(kiln_db_t *db, const char *id, const char *status, const char *reason,
                   const char *error, const char *result_json, int64_t bytes_pushed,
                   kiln_error_t *err)
{
    double now = kiln_db_now();
    int rc;

    pthread_mutex_lock(&db->lock);
    rc = close_phase(db, id, now, err);
    if (rc >= 0)
        rc =
            kiln_db_run(db, err,
                        "UPDATE builds SET status = ?1, reason = ?2, error = ?3, result = ?4, "
                        "bytes_pushed = ?5, finished = ?6, pgid = NULL WHERE id = ?7 AND status != "
                        "'canceled'",
                        "tttt"
                        "idt",
                        status, reason, error, result_json, (int64_t)bytes_pushed, now, id);
    if (rc >= 0)
        rc = kiln_db_run(
            db, err, "UPDATE builds SET pgid = NULL, result = coalesce(result, ?1) WHERE id = ?2",
            "tt", result_json, id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_finish_or_fail(kiln_db_t *db, const char *id, const char *status, const char *reason,
                           const char *error, const char *result_json, int64_t bytes_pushed,
                           kiln_error_t *err)
{
    _cleanup_free_ char *why = NULL;
    kiln_error_t e = {0};

    for (int attempt = 0; attempt < 3; attempt++) {
        if (attempt > 0)
            sleep(1); /* a full disk or a locked file may clear: gc, another writer */
        kiln_error_clear(&e);
        if (kiln_db_finish(db, id, status, reason, error, result_json, bytes_pushed, &e) == 0)
            return 0;
    }
    /* The smaller write (no result document) may still fit where the full one did not. */
    why = kiln_xasprintf("the build's outcome (%s) could not be recorded: %s", status, e.msg);
    kiln_error_clear(&e);
    if (kiln_db_finish(db, id, "failed", "state_write_failed", why, NULL, 0, &e) == 0)
        return 1;
    pthread_mutex_lock(&db->mem_lock);
    json_object_set_new(db->unrecorded, id,
                        json_pack("{s:s,s:s,s:s}", "status", "failed", "reason",
                                  "state_write_failed", "error", why));
    pthread_mutex_unlock(&db->mem_lock);
    kiln_error_set(err, 0, "build %s: %s", id, why);
    kiln_error_clear(&e);
    return -1;
}

void kiln_db_flush_unrecorded(kiln_db_t *db)
{
    json_t *pending, *v;
    const char *id;

    pthread_mutex_lock(&db->mem_lock);
    pending = json_object_size(db->unrecorded) ? json_deep_copy(db->unrecorded) : NULL;
    pthread_mutex_unlock(&db->mem_lock);
    json_object_foreach(pending, id, v)
    {
        if (kiln_db_finish(db, id, json_string_value(json_object_get(v, "status")),
                           json_string_value(json_object_get(v, "reason")),
                           json_string_value(json_object_get(v, "error")), NULL, 0, NULL) < 0)
            continue;
        pthread_mutex_lock(&db->mem_lock);
        json_object_del(db->unrecorded, id);
        pthread_mutex_unlock(&db->mem_lock);
    }
    json_decref(pending);
}

int kiln_db_requeue(kiln_db_t *db, const char *id, kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = close_phase(db, id, kiln_db_now(), err);
    if (rc >= 0)
        rc = kiln_db_run(
            db, err,
            "UPDATE builds SET status = 'queued', pgid = NULL, started = NULL WHERE id = ?1 "
            "AND status IN " RUNNING_SQL,
            "t", id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_cancel(kiln_db_t *db, const char *id, int *was_running, kiln_error_t *err)
{
    char status[32];
    double now = kiln_db_now();
    int rc;

    pthread_mutex_lock(&db->lock);
    sqlite3_reset(db->status);
    sqlite3_bind_text(db->status, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(db->status);
    if (rc == SQLITE_ROW)
        snprintf(status, sizeof(status), "%s", (const char *)sqlite3_column_text(db->status, 0));
    sqlite3_reset(db->status);
    sqlite3_clear_bindings(db->status);
    if (rc != SQLITE_ROW) {
        pthread_mutex_unlock(&db->lock);
        kiln_error_set(err, 0, "no build with id '%s'", id);
        if (err)
            err->code = ENOENT;
        return -1;
    }
    if (kiln_db_status_final(status)) {
        pthread_mutex_unlock(&db->lock);
        kiln_error_set(err, 0, "build '%s' already %s", id, status);
        if (err)
            err->code = EALREADY;
        return -1;
    }
    rc = close_phase(db, id, now, err);
    if (rc >= 0)
        rc =
            kiln_db_run(db, err,
                        "UPDATE builds SET status = 'canceled', reason = 'canceled', finished = ?1 "
                        "WHERE id = ?2",
                        "dt", now, id);
    pthread_mutex_unlock(&db->lock);
    if (rc < 0)
        return -1;
    *was_running = kiln_db_status_running(status);
    return 0;
}

int kiln_db_recover(kiln_db_t *db, int requeue_once,
                    void (*kill_cb)(pid_t pgid, uint64_t start_ticks, void *opaque), void *opaque,
                    kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *ids = json_array();
    double now = kiln_db_now();
    size_t i;
    json_t *v;
    int n = 0;

    pthread_mutex_lock(&db->lock);
    if (kiln_db_prepare(
            db, "SELECT id, pgid, pstart, attempts FROM builds WHERE status IN " RUNNING_SQL, &st,
            err) < 0)
        goto fail;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 1) != SQLITE_NULL && kill_cb)
            kill_cb((pid_t)sqlite3_column_int64(st, 1), (uint64_t)sqlite3_column_int64(st, 2),
                    opaque);
        json_array_append_new(ids, json_pack("{s:s,s:i}", "id", sqlite3_column_text(st, 0),
                                             "attempts", sqlite3_column_int(st, 3)));
    }
    sqlite3_finalize(st);
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        int attempts = (int)json_integer_value(json_object_get(v, "attempts"));
        if (close_phase(db, id, now, err) < 0)
            goto fail;
        if (requeue_once && attempts < 2) {
            if (kiln_db_run(
                    db, err,
                    "UPDATE builds SET status = 'queued', pgid = NULL, started = NULL WHERE id = "
                    "?1",
                    "t", id) < 0)
                goto fail;
        } else if (kiln_db_run(
                       db, err,
                       "UPDATE builds SET status = 'failed', reason = 'interrupted', error = "
                       "'the server stopped while the build was running', finished = ?1, pgid = "
                       "NULL WHERE id = ?2",
                       "dt", now, id) < 0) {
            goto fail;
        }
        n++;
    }
    pthread_mutex_unlock(&db->lock);
    json_decref(ids);
    return n;
fail:
    pthread_mutex_unlock(&db->lock);
    json_decref(ids);
    return -1;
}
