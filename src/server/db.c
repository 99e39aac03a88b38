/* kiln server — the SQLite store. One connection, guarded by a mutex: SQLite in
 * WAL mode answers a point query in microseconds, so one writer/reader is enough
 * and keeps "claim the next build" trivially atomic. */
#include "src/server/db.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/git.h"
#include "utils/mem.h"

const char *const kiln_db_statuses[8] = {"queued",    "cloning",   "building", "pushing",
                                         "uploading", "succeeded", "failed",   "canceled"};
const double kiln_db_hist_bounds[KILN_DB_HIST_BUCKETS] = {1,   5,   10,  30,   60,
                                                          120, 300, 600, 1800, 3600};

#define RUNNING_SQL "('cloning','building','pushing','uploading')"
/* The tenant of a build (its validated request names it, and the column keeps it). */
#define TENANT_SQL "tenant"

/* A read-only connection of one thread: WAL readers do not block each other or the writer,
 * so the hot GET paths do not queue behind the shared connection's lock. */
typedef struct db_reader {
    sqlite3 *h;
    sqlite3_stmt *get;
    sqlite3_stmt *phases;
    sqlite3_stmt *status;
    sqlite3_stmt *owner;
} db_reader_t;

struct kiln_db {
    char *path;
    pthread_key_t readers;
    sqlite3 *h;
    pthread_mutex_t lock;
    sqlite3_stmt *get;
    sqlite3_stmt *phases;
    sqlite3_stmt *insert;
    sqlite3_stmt *status;
    pthread_mutex_t mem_lock; /* guards unrecorded */
    json_t *unrecorded;       /* id -> {status, reason, error}: finals the file refused */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS builds("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT UNIQUE NOT NULL,"
    " repo TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " reason TEXT, error TEXT,"
    " request TEXT NOT NULL,"
    " commit_sha TEXT,"
    " created REAL NOT NULL, started REAL, finished REAL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " pgid INTEGER, pstart INTEGER,"
    " result TEXT, bytes_pushed INTEGER NOT NULL DEFAULT 0, audit TEXT,"
    " tenant TEXT NOT NULL DEFAULT 'default');"
    "CREATE INDEX IF NOT EXISTS builds_status ON builds(status, seq);"
    "CREATE INDEX IF NOT EXISTS builds_repo ON builds(repo, status);"
    "CREATE TABLE IF NOT EXISTS phases("
    " build_seq INTEGER NOT NULL, name TEXT NOT NULL, started REAL NOT NULL, finished REAL);"
    "CREATE INDEX IF NOT EXISTS phases_build ON phases(build_seq);"
    /* webhook deliveries and idempotency keys already seen, and the build each started */
    "CREATE TABLE IF NOT EXISTS deliveries("
    " key TEXT PRIMARY KEY, build_id TEXT NOT NULL, created REAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries(created);"
    /* uploaded contexts and the tenant that uploaded each */
    "CREATE TABLE IF NOT EXISTS contexts("
    " id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created REAL NOT NULL);";

/* The columns row_to_json reads, in its order. */
#define ROW_COLUMNS                                                                                \
    "seq, id, repo, status, reason, error, request, commit_sha, created, started, finished, "      \
    "attempts, result, audit, tenant"

static const char get_sql[] = "SELECT " ROW_COLUMNS " FROM builds WHERE id = ?1";

static const char status_sql[] = "SELECT status FROM builds WHERE id = ?1";
static const char owner_sql[] = "SELECT tenant FROM builds WHERE id = ?1";
static const char phases_sql[] =
    "SELECT name, started, finished FROM phases WHERE build_seq = ?1 ORDER BY rowid";

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kiln_db_format_time(double t, char *buf, size_t len)
{
    struct tm tm;
    time_t s = (time_t)t;
    int ms = (int)((t - (double)s) * 1000.0);
    char tmp[32];

    gmtime_r(&s, &tm);
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", tmp, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

int kiln_db_status_running(const char *s)
{
    return s && (strcmp(s, "cloning") == 0 || strcmp(s, "building") == 0 ||
                 strcmp(s, "pushing") == 0 || strcmp(s, "uploading") == 0);
}

int kiln_db_status_final(const char *s)
{
    return s &&
           (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0);
}

int kiln_db_status_valid(const char *s)
{
    for (size_t i = 0; i < 8; i++)
        if (s && strcmp(s, kiln_db_statuses[i]) == 0)
            return 1;
    return 0;
}

/* Store errors carry code EIO (callers tell them from bad input) but no strerror text. */
static int db_fail(kiln_db_t *db, kiln_error_t *err, const char *what)
{
    kiln_error_set(err, 0, "database: %s: %s", what, sqlite3_errmsg(db->h));
    if (err)
        err->code = EIO;
    return -1;
}

/* Runs SQL without results; the caller holds the lock. */
static int exec_sql(kiln_db_t *db, const char *sql, kiln_error_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        kiln_error_set(err, 0, "database: %s", msg ? msg : sqlite3_errmsg(db->h));
        if (err)
            err->code = EIO;
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int prepare(kiln_db_t *db, const char *sql, sqlite3_stmt **st, kiln_error_t *err)
{
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(db, err, "prepare");
    return 0;
}

/* Adds column `name` (of type `decl`) to builds in a database made before it existed.
 * Returns 1 when it was added, 0 when it was there, -1 on a store error. */
static int add_column(kiln_db_t *db, const char *name, const char *decl, kiln_error_t *err)
{
    _cleanup_free_ char *probe = kiln_xasprintf("SELECT %s FROM builds LIMIT 0", name);
    _cleanup_free_ char *alter = kiln_xasprintf("ALTER TABLE builds ADD COLUMN %s %s", name, decl);
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db->h, probe, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_finalize(st);
        return 0;
    }
    return exec_sql(db, alter, err) < 0 ? -1 : 1;
}

/* The tenant column in a database made before it: old builds are the tenant their request
 * names, else the single-tenant server's ("default"); then its index. */
static int migrate_tenant(kiln_db_t *db, kiln_error_t *err)
{
    int added = add_column(db, "tenant", "TEXT NOT NULL DEFAULT 'default'", err);
    if (added < 0 ||
        (added > 0 &&
         exec_sql(db,
                  "UPDATE builds SET tenant = coalesce(json_extract(request, '$.tenant'), "
                  "'default')",
                  err) < 0))
        return -1;
    return exec_sql(db, "CREATE INDEX IF NOT EXISTS builds_tenant ON builds(tenant, seq);", err);
}

static void reader_free(void *p)
{
    db_reader_t *r = p;
    if (r == NULL)
        return;
    sqlite3_finalize(r->get);
    sqlite3_finalize(r->phases);
    sqlite3_finalize(r->status);
    sqlite3_finalize(r->owner);
    sqlite3_close(r->h);
    free(r);
}

/* This thread's reader, opened on first use; NULL when it cannot be opened (the caller then
 * uses the shared connection). */
static db_reader_t *reader_get(kiln_db_t *db)
{
    db_reader_t *r = pthread_getspecific(db->readers);

    if (r)
        return r;
    r = kiln_xzalloc(sizeof(*r));
    if (sqlite3_open_v2(db->path, &r->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(r->h, get_sql, -1, &r->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->h, phases_sql, -1, &r->phases, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->h, status_sql, -1, &r->status, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->h, owner_sql, -1, &r->owner, NULL) != SQLITE_OK) {
        reader_free(r);
        return NULL;
    }
    sqlite3_busy_timeout(r->h, 5000);
    /* Many connection threads may each hold a reader: keep their page caches small. */
    sqlite3_exec(r->h, "PRAGMA cache_size = -256", NULL, NULL, NULL);
    pthread_setspecific(db->readers, r);
    return r;
}

int kiln_db_open(const char *path, kiln_db_t **out, kiln_error_t *err)
{
    kiln_db_t *db = kiln_xzalloc(sizeof(*db));

    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->mem_lock, NULL);
    db->unrecorded = json_object();
    pthread_key_create(&db->readers, reader_free);
    db->path = kiln_xstrdup(path);
    if (sqlite3_open_v2(path, &db->h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        kiln_error_set(err, 0, "database %s: %s", path,
                       db->h ? sqlite3_errmsg(db->h) : "cannot open");
        kiln_db_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db->h, 5000);
    /* WAL + synchronous=NORMAL: a process crash loses nothing that was committed. */
    if (exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err) < 0 ||
        exec_sql(db, schema, err) < 0 || add_column(db, "audit", "TEXT", err) < 0 ||
        migrate_tenant(db, err) < 0 || prepare(db, get_sql, &db->get, err) < 0 ||
        prepare(db, phases_sql, &db->phases, err) < 0 ||
        prepare(db,
                "INSERT INTO builds(id, repo, status, request, created, audit, tenant) "
                "VALUES(?1, ?2, 'queued', ?3, ?4, ?5, "
                "coalesce(json_extract(?3, '$.tenant'), 'default'))",
                &db->insert, err) < 0 ||
        prepare(db, status_sql, &db->status, err) < 0) {
        kiln_error_prefix(err, "database %s", path);
        kiln_db_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void kiln_db_close(kiln_db_t *db)
{
    if (db == NULL)
        return;
    sqlite3_finalize(db->get);
    sqlite3_finalize(db->phases);
    sqlite3_finalize(db->insert);
    sqlite3_finalize(db->status);
    if (db->h)
        sqlite3_close(db->h);
    reader_free(pthread_getspecific(db->readers));
    pthread_setspecific(db->readers, NULL);
    pthread_key_delete(db->readers);
    free(db->path);
    json_decref(db->unrecorded);
    pthread_mutex_destroy(&db->mem_lock);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

static void set_time(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
    char buf[40];
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        json_object_set_new(o, key, json_null());
        return;
    }
    kiln_db_format_time(sqlite3_column_double(st, col), buf, sizeof(buf));
    json_object_set_new(o, key, json_string(buf));
}

static void set_text(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    json_object_set_new(o, key, s ? json_string(s) : json_null());
}

/* A text column with the userinfo of any URL in it replaced by "***": rows stored before
 * credentials were taken out of source URLs never show them. */
static void set_redacted(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    _cleanup_free_ char *r = s ? kiln_git_redact(s) : NULL;
    json_object_set_new(o, key, r ? json_string(r) : json_null());
}

/* Builds the API object for the row `st` is on (columns as get_sql); caller holds the lock. */
static json_t *row_to_json(sqlite3_stmt *phases_st, sqlite3_stmt *st)
{
    json_t *o = json_object(), *phases = json_array();
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *req = (const char *)sqlite3_column_text(st, 6);
    const char *res = (const char *)sqlite3_column_text(st, 12);
    json_t *reqj = req ? json_loads(req, 0, NULL) : NULL;
    json_t *resj = res ? json_loads(res, 0, NULL) : NULL;
    double started = sqlite3_column_double(st, 9), finished = sqlite3_column_double(st, 10);

    json_object_set_new(o, "id", json_string(id));
    set_text(o, "status", st, 3);
    set_text(o, "tenant", st, 14);
    set_redacted(o, "repo", st, 2);
    set_text(o, "commit", st, 7);
    set_text(o, "reason", st, 4);
    set_redacted(o, "error", st, 5);
    set_time(o, "created_at", st, 8);
    set_time(o, "started_at", st, 9);
    set_time(o, "finished_at", st, 10);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL && sqlite3_column_type(st, 10) != SQLITE_NULL)
        json_object_set_new(o, "duration_seconds", json_real(finished - started));
    else
        json_object_set_new(o, "duration_seconds", json_null());
    json_object_set_new(o, "attempts", json_integer(sqlite3_column_int(st, 11)));
    if (reqj) {
        json_t *v = json_object_get(reqj, "source");
        const char *git = json_string_value(json_object_get(v, "git"));
        if (git) {
            _cleanup_free_ char *red = kiln_git_redact(git);
            json_object_set_new(v, "git", json_string(red));
        }
        if (v)
            json_object_set(o, "source", v);
        v = json_object_get(reqj, "outputs");
        json_object_set_new(o, "outputs", v ? json_incref(v) : json_array());
        v = json_object_get(reqj, "limits");
        json_object_set_new(o, "limits", v ? json_incref(v) : json_object());
        v = json_object_get(reqj, "allow");
        json_object_set_new(o, "allow", v ? json_incref(v) : json_array());
    }
    {
        /* how the steps were confined, as the build itself reported it */
        json_t *iso = json_object_get(json_object_get(resj, "kiln.event"), "isolation");
        json_object_set_new(o, "isolation", iso ? json_incref(iso) : json_null());
    }
    json_object_set_new(
        o, "bytes_pushed",
        json_integer(json_integer_value(json_object_get(resj, "kiln.bytes_pushed"))));
    json_object_set_new(o, "result", resj ? resj : json_null());
    {
        /* who triggered the build (the audit trail); null for builds recorded before it */
        const char *audit = (const char *)sqlite3_column_text(st, 13);
        json_t *a = audit ? json_loads(audit, 0, NULL) : NULL;
        json_object_set_new(o, "triggered_by", a ? a : json_null());
    }

    sqlite3_reset(phases_st);
    sqlite3_bind_int64(phases_st, 1, sqlite3_column_int64(st, 0));
    while (sqlite3_step(phases_st) == SQLITE_ROW) {
        json_t *p = json_object();
        set_text(p, "name", phases_st, 0);
        set_time(p, "started_at", phases_st, 1);
        set_time(p, "finished_at", phases_st, 2);
        if (sqlite3_column_type(phases_st, 2) != SQLITE_NULL)
            json_object_set_new(p, "seconds",
                                json_real(sqlite3_column_double(phases_st, 2) -
                                          sqlite3_column_double(phases_st, 1)));
        json_array_append_new(phases, p);
    }
    sqlite3_reset(phases_st);
    json_object_set_new(o, "phases", phases);
    json_decref(reqj);
    return o;
}

/* With the lock held and a transaction open: forgets keys older than the retention (and the
 * oldest past KILN_DB_MAX_DELIVERIES), then records key for build id. Returns 1 with
 * *existing set when key is already recorded, 0 once recorded, -1 on a store error. */
static int delivery_claim(kiln_db_t *db, const char *key, const char *id, double retention,
                          double now, char **existing, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (prepare(db, "DELETE FROM deliveries WHERE created < ?1", &st, err) < 0)
        return -1;
    sqlite3_bind_double(st, 1, now - retention);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE ||
        prepare(db, "SELECT build_id FROM deliveries WHERE key = ?1", &st, err) < 0)
        return db_fail(db, err, "forget old deliveries");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        *existing = kiln_xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc != SQLITE_DONE ||
        prepare(db, "INSERT INTO deliveries(key, build_id, created) VALUES(?1, ?2, ?3)", &st, err) <
            0)
        return db_fail(db, err, "look up delivery");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE ||
        prepare(db,
                "DELETE FROM deliveries WHERE key IN (SELECT key FROM deliveries ORDER BY "
                "created DESC LIMIT -1 OFFSET ?1)",
                &st, err) < 0)
        return db_fail(db, err, "record delivery");
    sqlite3_bind_int(st, 1, KILN_DB_MAX_DELIVERIES);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(db, err, "forget old deliveries");
}

int kiln_db_build_insert(kiln_db_t *db, const char *id, const char *repo, const char *request_json,
                         const kiln_db_origin_t *origin, char **existing, kiln_error_t *err)
{
    const char *key = origin ? origin->dedupe_key : NULL;
    double now = now_seconds();
    int rc, claimed = 0;

    pthread_mutex_lock(&db->lock);
    /* the key and the build are recorded together: a replay arriving at the same time finds
     * either both or neither */
    if (key &&
        (exec_sql(db, "BEGIN IMMEDIATE", err) < 0 ||
         (claimed = delivery_claim(db, key, id, origin->key_retention, now, existing, err)) != 0)) {
        if (claimed != 0)
            exec_sql(db, claimed > 0 ? "COMMIT" : "ROLLBACK", NULL);
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
    if (rc != SQLITE_DONE || (key && exec_sql(db, "COMMIT", err) < 0)) {
        if (rc != SQLITE_DONE)
            db_fail(db, err, "insert build");
        if (key)
            exec_sql(db, "ROLLBACK", NULL);
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
    if (prepare(db, "DELETE FROM deliveries WHERE key = ?1", &st, NULL) == 0) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&db->lock);
}

/* Overlays the in-memory final state of a build whose final write failed: the API shows the
 * build ended (status, reason, error) even though kiln.db still says it is running. */
static void overlay_unrecorded(kiln_db_t *db, json_t *o)
{
    json_t *m;

    pthread_mutex_lock(&db->mem_lock);
    m = json_object_get(db->unrecorded, json_string_value(json_object_get(o, "id")));
    if (m)
        json_object_update(o, m);
    pthread_mutex_unlock(&db->mem_lock);
}

int kiln_db_build_get(kiln_db_t *db, const char *id, json_t **out, kiln_error_t *err)
{
    db_reader_t *r = reader_get(db);
    sqlite3_stmt *get = r ? r->get : db->get, *phases = r ? r->phases : db->phases;
    json_t *o = NULL;

    if (r == NULL)
        pthread_mutex_lock(&db->lock);
    sqlite3_bind_text(get, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(get) == SQLITE_ROW)
        o = row_to_json(phases, get);
    sqlite3_reset(get);
    sqlite3_clear_bindings(get);
    if (r == NULL)
        pthread_mutex_unlock(&db->lock);
    if (o == NULL) {
        kiln_error_set(err, 0, "no build with id '%s'", id);
        if (err)
            err->code = ENOENT;
        return -1;
    }
    overlay_unrecorded(db, o);
    *out = o;
    return 0;
}

int kiln_db_build_status(kiln_db_t *db, const char *id, char *buf, size_t len, kiln_error_t *err)
{
    db_reader_t *r = reader_get(db);
    sqlite3_stmt *st = r ? r->status : db->status;
    int found = 0;

    if (r == NULL)
        pthread_mutex_lock(&db->lock);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
        found = 1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (r == NULL)
        pthread_mutex_unlock(&db->lock);
    if (!found) {
        kiln_error_set(err, 0, "no build with id '%s'", id);
        if (err)
            err->code = ENOENT;
        return -1;
    }
    pthread_mutex_lock(&db->mem_lock);
    if (json_object_get(db->unrecorded, id))
        snprintf(buf, len, "%s",
                 json_string_value(json_object_get(json_object_get(db->unrecorded, id), "status")));
    pthread_mutex_unlock(&db->mem_lock);
    return 0;
}

int kiln_db_build_list(kiln_db_t *db, const char *status, const char *repo, int64_t before,
                       int limit, json_t **out, int64_t *next, kiln_error_t *err)
{
    return kiln_db_build_list_tenant(db, NULL, status, repo, before, limit, out, next, err);
}

int kiln_db_build_list_tenant(kiln_db_t *db, const char *tenant, const char *status,
                              const char *repo, int64_t before, int limit, json_t **out,
                              int64_t *next, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int64_t last = 0;
    int n = 0, more = 0, rc;

    pthread_mutex_lock(&db->lock);
    if (prepare(db,
                "SELECT " ROW_COLUMNS " FROM builds WHERE (?1 IS NULL OR status = ?1) AND (?2 IS "
                "NULL OR repo = ?2) AND (?3 = 0 OR seq < ?3) AND (?5 IS NULL OR tenant = ?5) "
                "ORDER BY seq DESC LIMIT ?4",
                &st, err) < 0) {
        pthread_mutex_unlock(&db->lock);
        json_decref(arr);
        return -1;
    }
    if (status)
        sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    if (repo)
        sqlite3_bind_text(st, 2, repo, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, before);
    sqlite3_bind_int(st, 4, limit + 1);
    if (tenant)
        sqlite3_bind_text(st, 5, tenant, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            more = 1;
            break;
        }
        json_t *o = row_to_json(db->phases, st);
        overlay_unrecorded(db, o);
        json_array_append_new(arr, o);
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_fail(db, err, "list builds");
        sqlite3_finalize(st);
        pthread_mutex_unlock(&db->lock);
        json_decref(arr);
        return -1;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    *out = arr;
    *next = more ? last : 0;
    return 0;
}

/* Runs one parameterised statement that returns no rows; caller holds the lock.
 * Binds: 't' text, 'd' double, 'i' int64, 'n' null. */
static int run(kiln_db_t *db, kiln_error_t *err, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc;

    if (prepare(db, sql, &st, err) < 0)
        return -1;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        switch (types[i]) {
        case 't': {
            const char *s = va_arg(ap, const char *);
            if (s)
                sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, i + 1);
            break;
        }
        case 'd':
            sqlite3_bind_double(st, i + 1, va_arg(ap, double));
            break;
        case 'i':
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
            break;
        default:
            sqlite3_bind_null(st, i + 1);
        }
    }
    va_end(ap);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_fail(db, err, sql);
    return sqlite3_changes(db->h);
}

static void rollback(kiln_db_t *db)
{
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int kiln_db_tenant_load(kiln_db_t *db, json_t **out, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *o = json_object();
    int rc;

    pthread_mutex_lock(&db->lock);
    if (prepare(db,
                "SELECT " TENANT_SQL ", sum(status = 'queued'), sum(status IN " RUNNING_SQL
                ") FROM builds WHERE status = 'queued' OR status IN " RUNNING_SQL " GROUP BY 1",
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
        db_fail(db, err, "tenant load");
        pthread_mutex_unlock(&db->lock);
        json_decref(o);
        return -1;
    }
    pthread_mutex_unlock(&db->lock);
    *out = o;
    return 0;
}

int kiln_db_claim(kiln_db_t *db, const char *first_status, kiln_db_job_t *job, kiln_error_t *err)
{
    return kiln_db_claim_tenant(db, NULL, first_status, job, err);
}

int kiln_db_claim_tenant(kiln_db_t *db, const char *tenant, const char *first_status,
                         kiln_db_job_t *job, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    kiln_db_job_t j = {0};
    double now = now_seconds();
    int rc;

    pthread_mutex_lock(&db->lock);
    if (exec_sql(db, "BEGIN IMMEDIATE", err) < 0)
        goto fail_unlocked;
    if (prepare(db,
                "SELECT b.id, b.repo, b.request, b.attempts, b.seq FROM builds b "
                "WHERE b.status = 'queued' AND (?1 IS NULL OR " TENANT_SQL " = ?1) ORDER BY "
                "(SELECT count(*) FROM builds r WHERE "
                "r.repo = b.repo AND r.status IN " RUNNING_SQL "), b.seq LIMIT 1",
                &st, err) < 0)
        goto fail;
    if (tenant)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        exec_sql(db, "COMMIT", NULL);
        pthread_mutex_unlock(&db->lock);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        db_fail(db, err, "claim");
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
    if (run(db, err,
            "UPDATE builds SET status = coalesce(?1, CASE WHEN json_extract(request, "
            "'$.source.git') IS NOT NULL THEN 'cloning' ELSE 'building' END), started = ?2, "
            "finished = NULL, reason = NULL, error = NULL, attempts = attempts + 1 WHERE id = ?3",
            "tdt", first_status, now, j.id) < 0 ||
        run(db, err,
            "INSERT INTO phases(build_seq, name, started) SELECT ?1, status, ?2 FROM builds "
            "WHERE seq = ?1",
            "id", seq, now) < 0 ||
        exec_sql(db, "COMMIT", err) < 0)
        goto fail;
    pthread_mutex_unlock(&db->lock);
    *job = j;
    return 1;
fail:
    sqlite3_finalize(st);
    rollback(db);
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
    rc = run(db, err, "UPDATE builds SET pgid = ?1, pstart = ?2 WHERE id = ?3", "iit",
             (int64_t)pgid, (int64_t)start_ticks, id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

/* Closes the open phase of build `id`; caller holds the lock. */
static int close_phase(kiln_db_t *db, const char *id, double now, kiln_error_t *err)
{
    return run(db, err,
               "UPDATE phases SET finished = ?1 WHERE finished IS NULL AND build_seq = "
               "(SELECT seq FROM builds WHERE id = ?2)",
               "dt", now, id);
}

int kiln_db_remote_start(kiln_db_t *db, const char *id, const char *status, kiln_error_t *err)
{
    double now = now_seconds();
    int rc;

    pthread_mutex_lock(&db->lock);
    rc =
        run(db, err,
            "UPDATE builds SET status = ?1, started = ?2, finished = NULL, attempts = attempts + 1 "
            "WHERE id = ?3 AND status NOT IN ('succeeded', 'failed', 'canceled')",
            "tdt", status, now, id);
    if (rc > 0 && (close_phase(db, id, now, err) < 0 ||
                   run(db, err,
                       "INSERT INTO phases(build_seq, name, started) SELECT seq, ?1, ?2 FROM "
                       "builds WHERE id = ?3",
                       "tdt", status, now, id) < 0))
        rc = -1;
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_phase(kiln_db_t *db, const char *id, const char *status, kiln_error_t *err)
{
    double now = now_seconds();
    int rc;

    pthread_mutex_lock(&db->lock);
    rc = run(
        db, err,
        "UPDATE builds SET status = ?1 WHERE id = ?2 AND status != ?1 AND status IN " RUNNING_SQL,
        "tt", status, id);
    if (rc > 0) {
        if (close_phase(db, id, now, err) < 0 ||
            run(db, err,
                "INSERT INTO phases(build_seq, name, started) SELECT seq, ?1, ?2 FROM builds "
                "WHERE id = ?3",
                "tdt", status, now, id) < 0)
            rc = -1;
    }
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_set_commit(kiln_db_t *db, const char *id, const char *commit, kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = run(db, err, "UPDATE builds SET commit_sha = ?1 WHERE id = ?2", "tt", commit, id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_finish(kiln_db_t *db, const char *id, const char *status, const char *reason,
                   const char *error, const char *result_json, int64_t bytes_pushed,
                   kiln_error_t *err)
{
    double now = now_seconds();
    int rc;

    pthread_mutex_lock(&db->lock);
    rc = close_phase(db, id, now, err);
    if (rc >= 0)
        rc = run(db, err,
                 "UPDATE builds SET status = ?1, reason = ?2, error = ?3, result = ?4, "
                 "bytes_pushed = ?5, finished = ?6, pgid = NULL WHERE id = ?7 AND status != "
                 "'canceled'",
                 "tttt"
                 "idt",
                 status, reason, error, result_json, (int64_t)bytes_pushed, now, id);
    if (rc >= 0)
        rc = run(db, err,
                 "UPDATE builds SET pgid = NULL, result = coalesce(result, ?1) WHERE id = ?2", "tt",
                 result_json, id);
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
    rc = close_phase(db, id, now_seconds(), err);
    if (rc >= 0)
        rc = run(db, err,
                 "UPDATE builds SET status = 'queued', pgid = NULL, started = NULL WHERE id = ?1 "
                 "AND status IN " RUNNING_SQL,
                 "t", id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_cancel(kiln_db_t *db, const char *id, int *was_running, kiln_error_t *err)
{
    char status[32];
    double now = now_seconds();
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
        rc = run(db, err,
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
    double now = now_seconds();
    size_t i;
    json_t *v;
    int n = 0;

    pthread_mutex_lock(&db->lock);
    if (prepare(db, "SELECT id, pgid, pstart, attempts FROM builds WHERE status IN " RUNNING_SQL,
                &st, err) < 0)
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
            if (run(db, err,
                    "UPDATE builds SET status = 'queued', pgid = NULL, started = NULL WHERE id = "
                    "?1",
                    "t", id) < 0)
                goto fail;
        } else if (run(db, err,
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
    if (prepare(db,
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
    if (prepare(db, sql, &st, err) < 0)
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

int kiln_db_finished_before(kiln_db_t *db, double cutoff, int max, json_t **out, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();

    pthread_mutex_lock(&db->lock);
    if (prepare(db,
                "SELECT id FROM builds WHERE status IN ('succeeded','failed','canceled') AND "
                "finished < ?1 ORDER BY seq LIMIT ?2",
                &st, err) < 0) {
        pthread_mutex_unlock(&db->lock);
        json_decref(arr);
        return -1;
    }
    sqlite3_bind_double(st, 1, cutoff);
    sqlite3_bind_int(st, 2, max);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(arr, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    *out = arr;
    return 0;
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

/* Reads one text column of the row `sql` (one ?1 parameter) finds into buf; returns 1 when a
 * row was found, 0 when none, -1 on a store error. */
static int query_text(kiln_db_t *db, const char *sql, const char *key, char *buf, size_t len,
                      kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&db->lock);
    if (prepare(db, sql, &st, err) < 0) {
        pthread_mutex_unlock(&db->lock);
        return -1;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_DONE)
        db_fail(db, err, "query");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int kiln_db_build_owned(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err)
{
    /* asked before every per-build route: on this thread's reader, as the GETs themselves */
    db_reader_t *r = reader_get(db);
    char owner[KILN_DB_TENANT_MAX + 1];
    int rc;

    if (r == NULL) {
        rc = query_text(db, owner_sql, id, owner, sizeof(owner), err);
    } else {
        sqlite3_bind_text(r->owner, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(r->owner);
        if (rc == SQLITE_ROW)
            snprintf(owner, sizeof(owner), "%s", (const char *)sqlite3_column_text(r->owner, 0));
        else if (rc != SQLITE_DONE)
            kiln_error_set(err, 0, "database: owner of build %s: %s", id, sqlite3_errmsg(r->h));
        sqlite3_reset(r->owner);
        sqlite3_clear_bindings(r->owner);
        rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    }
    if (rc < 0)
        return -1;
    return rc == 1 && tenant && strcmp(owner, tenant) == 0;
}

int kiln_db_context_insert(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err)
{
    int rc;
    pthread_mutex_lock(&db->lock);
    rc = run(db, err, "INSERT INTO contexts(id, tenant, created) VALUES(?1, ?2, ?3)", "ttd", id,
             tenant, now_seconds());
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}

int kiln_db_context_owned(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err)
{
    char owner[KILN_DB_TENANT_MAX + 1];
    int rc =
        query_text(db, "SELECT tenant FROM contexts WHERE id = ?1", id, owner, sizeof(owner), err);
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
    rc = run(db, err, "DELETE FROM contexts WHERE id = ?1", "t", id);
    pthread_mutex_unlock(&db->lock);
    return rc < 0 ? -1 : 0;
}
