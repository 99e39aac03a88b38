/* kiln server — aggregates over the builds: queue depth, queued and running builds per
 * tenant (for the scheduler), and counts by status with a duration histogram (/metrics). */
#include "src/server/db.h"

#include <stdio.h>
#include <string.h>

#include "src/server/db_impl.h"

int kiln_db_tenant_load(kiln_db_t *db, json_t **out, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *o = json_object();
    int rc;

    pthread_mutex_lock(&db->lock);
    if (kiln_db_prepare(db,
                        "SELECT " TENANT_SQL ", sum(status = 'queued'), sum(status IN " RUNNING_SQL
                        ") FROM builds WHERE status = 'queued' OR status IN " RUNNING_SQL
                        " GROUP BY 1",
                        &st, err) < 0) {
        pthread_mutex_unlock(&db->lock);
        json_decref(o);
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(o, (const char *)sqlite3_column_text(st, 0),
                            json_pack("[I,I]", (json_int_t)sqlite3_column_int64(st, 1),
                                      (json_int_t)sqlite3_column_int64(st, 2)));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        kiln_db_fail(db, err, "tenant load");
        pthread_mutex_unlock(&db->lock);
        json_decref(o);
        return -1;
    }
    pthread_mutex_unlock(&db->lock);
    *out = o;
    return 0;
}

int64_t kiln_db_queue_depth(kiln_db_t *db)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;

    pthread_mutex_lock(&db->lock);
    if (sqlite3_prepare_v2(db->h, "SELECT count(*) FROM builds WHERE status = 'queued'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return n;
}

int kiln_db_stats(kiln_db_t *db, kiln_db_stats_t *out, kiln_error_t *err)
{
    return kiln_db_stats_tenant(db, NULL, out, err);
}

int kiln_db_stats_tenant(kiln_db_t *db, const char *tenant, kiln_db_stats_t *out, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    kiln_db_stats_t s = {0};
    char sql[1024];
    size_t off;

    pthread_mutex_lock(&db->lock);
    if (kiln_db_prepare(
            db,
            "SELECT status, count(*), sum(bytes_pushed) FROM builds WHERE (?1 IS NULL OR "
            "tenant = ?1) GROUP BY status",
            &st, err) < 0)
        goto fail;
    if (tenant)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        for (size_t i = 0; i < 8; i++)
            if (strcmp(name, kiln_db_statuses[i]) == 0)
                s.by_status[i] = sqlite3_column_int64(st, 1);
        s.bytes_pushed += sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    st = NULL;
    off = (size_t)snprintf(sql, sizeof(sql), "SELECT count(*), total(finished - started)");
    for (size_t i = 0; i < KILN_DB_HIST_BUCKETS; i++)
        off += (size_t)snprintf(sql + off, sizeof(sql) - off, ", total(finished - started <= %g)",
                                kiln_db_hist_bounds[i]);
    snprintf(sql + off, sizeof(sql) - off,
             " FROM builds WHERE status IN ('succeeded', 'failed') AND started IS NOT NULL AND "
             "finished IS NOT NULL AND (?1 IS NULL OR tenant = ?1)");
    if (kiln_db_prepare(db, sql, &st, err) < 0)
        goto fail;
    if (tenant)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        s.duration_count = sqlite3_column_int64(st, 0);
        s.duration_sum = sqlite3_column_double(st, 1);
        for (int i = 0; i < KILN_DB_HIST_BUCKETS; i++)
            s.duration_buckets[i] = (int64_t)sqlite3_column_double(st, 2 + i);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    *out = s;
    return 0;
fail:
    pthread_mutex_unlock(&db->lock);
    return -1;
}
