/* kiln server — what arrives before a build runs: a new build recorded together with its
 * webhook delivery or idempotency key (a replay answers the first build), and uploaded
 * contexts with the tenant that owns each. */
#include "src/server/db.h"

#include <stdio.h>
#include <string.h>

#include "src/server/db_impl.h"
#include "utils/mem.h"

/* With the lock held and a transaction open: forgets keys older than the retention (and the
 * oldest past KILN_DB_MAX_DELIVERIES), then records key for build id. Returns 1 with
 * *existing set when key is already recorded, 0 once recorded, -1 on a store error. */
static int delivery_claim(kiln_db_t *db, const char *key, const char *id, double retention,
                          double now, char **existing, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (kiln_db_prepare(db, "DELETE FROM deliveries WHERE created < ?1", &st, err) < 0)
        return -1;
    sqlite3_bind_double(st, 1, now - retention);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE ||
        kiln_db_prepare(db, "SELECT build_id FROM deliveries WHERE key = ?1", &st, err) < 0)
        return kiln_db_fail(db, err, "forget old deliveries");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        *existing = kiln_xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc != SQLITE_DONE ||
        kiln_db_prepare(db, "INSERT INTO deliveries(key, build_id, created) VALUES(?1, ?2, ?3)",
                        &st, err) < 0)
        return kiln_db_fail(db, err, "look up delivery");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE ||
        kiln_db_prepare(db,
                        "DELETE FROM deliveries WHERE key IN (SELECT key FROM deliveries ORDER BY "
                        "created DESC LIMIT -1 OFFSET ?1)",
                        &st, err) < 0)
        return kiln_db_fail(db, err, "record delivery");
    sqlite3_bind_int(st, 1, KILN_DB_MAX_DELIVERIES);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : kiln_db_fail(db, err, "forget old deliveries");
}

int kiln_db_build_insert(kiln_db_t *db, const char *id, const char *repo, const char *request_json,
                         const kiln_db_origin_t *origin, char **existing, kiln_error_t *err)
{
    const char *key = origin ? origin->dedupe_key : NULL;
    double now = kiln_db_now();
    int rc, claimed = 0;

    pthread_mutex_lock(&db->lock);
    /* the key and the build are recorded together: a replay arriving at the same time finds
     * either both or neither */
    if (key &&
        (kiln_db_exec(db, "BEGIN IMMEDIATE", err) < 0 ||
         (claimed = delivery_claim(db, key, id, origin->key_retention, now, existing, err)) != 0)) {
        if (claimed != 0)
            kiln_db_exec(db, claimed > 0 ? "COMMIT" : "ROLLBACK", NULL);
        pthread_mutex_unlock(&db->lock);
        return claimed > 0 ? 1 : -1;
    }
    sqlite3_reset(db->insert);
    sqlite3_bind_text(db->insert, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(db->insert, 2, repo, -1, SQLITE_STATIC);
    sqlite3_bind_text(db->insert, 3, request_json, -1, SQLITE_STATIC);
    sqlite3_bind_double(db->insert, 4, now);
    if (origin && origin->audit_json)
        sqlite3_bind_text(db->insert, 5, origin->audit_json, -1, SQLITE_STATIC);
    rc = sqlite3_step(db->insert);
    sqlite3_reset(db->insert);
    sqlite3_clear_bindings(db->insert);
    if (rc != SQLITE_DONE || (key && kiln_db_exec(db, "COMMIT", err) < 0)) {
        if (rc != SQLITE_DONE)
            kiln_db_fail(db, err, "insert build");
        if (key)
            kiln_db_exec(db, "ROLLBACK", NULL);
        pthread_mutex_unlock(&db->lock);
        return -1;
    }
    pthread_mutex_unlock(&db->lock);
    return 0;
}

void kiln_db_delivery_forget(kiln_db_t *db, const char *key)
{
    sqlite3_stmt *st = NULL;

    pthread_mutex_lock(&db->lock);
    if (kiln_db_prepare(db, "DELETE FROM deliveries WHERE key = ?1", &st, NULL) == 0) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&db->lock);
}

int kiln_db_context_insert(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = kiln_db_run(db, err, "INSERT INTO contexts(id, tenant, created) VALUES(?1, ?2, ?3)", "ttd",
                     id, tenant, kiln_db_now());
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_context_owned(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err)
{
    char owner[KILN_DB_TENANT_MAX + 1];
    int rc = kiln_db_query_text(db, "SELECT tenant FROM contexts WHERE id = ?1", id, owner,
                                sizeof(owner), err);
    if (rc < 0)
        return -1;
    /* uploaded before contexts had owners: the single-tenant server's */
    if (rc == 0)
        snprintf(owner, sizeof(owner), "default");
    return tenant && strcmp(owner, tenant) == 0;
}

int kiln_db_context_forget(kiln_db_t *db, const char *id, kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = kiln_db_run(db, err, "DELETE FROM contexts WHERE id = ?1", "t", id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_context_in_use(kiln_db_t *db, const char *ctx_id)
{
    sqlite3_stmt *st = NULL;
    int used = 1; /* on a store error, keep the context */

    pthread_mutex_lock(&db->lock);
    if (sqlite3_prepare_v2(
            db->h,
            "SELECT count(*) FROM builds WHERE status NOT IN ('succeeded', "
            "'failed', 'canceled') AND json_extract(request, '$.source.context') = ?1",
            -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ctx_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            used = sqlite3_column_int(st, 0) > 0;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return used;
}
