/* kiln server — the SQLite store opened: schema and migrations, the shared connection and
 * the per-thread readers, statement helpers, status names. One connection, guarded by a
 * mutex: SQLite in WAL mode answers a point query in microseconds, so one writer/reader is
 * enough and keeps "claim the next build" trivially atomic. */
#include "src/server/db.h"
#include "src/server/bodymemo.h"
#include "src/server/db_impl.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

const char *const kiln_db_statuses[8] = {"queued",    "cloning",   "building", "pushing",
                                         "uploading", "succeeded", "failed",   "canceled"};
const double kiln_db_hist_bounds[KILN_DB_HIST_BUCKETS] = {1,   5,   10,  30,   60,
                                                          120, 300, 600, 1800, 3600};

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
    " tenant TEXT NOT NULL DEFAULT 'default',"
    " branch TEXT, commit_author TEXT, commit_message TEXT);"
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

static const char get_sql[] = "SELECT " ROW_COLUMNS " FROM builds WHERE id = ?1";

static const char status_sql[] = "SELECT status FROM builds WHERE id = ?1";
static const char phases_sql[] =
    "SELECT name, started, finished FROM phases WHERE build_seq = ?1 ORDER BY rowid";

double kiln_db_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kiln_db_format_time(double t, char *buf, size_t len)
{
    /* the last second formatted on this thread: an access-log line and a build's times ask
     * for the same few seconds over and over (gmtime_r + strftime are most of the cost) */
    static __thread time_t last = (time_t)-1;
    static __thread char last_text[32];
    time_t s = (time_t)t;
    int ms = (int)((t - (double)s) * 1000.0);

    if (s != last) {
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(last_text, sizeof(last_text), "%Y-%m-%dT%H:%M:%S", &tm);
        last = s;
    }
    snprintf(buf, len, "%s.%03dZ", last_text, ms < 0 ? 0 : ms > 999 ? 999 : ms);
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
int kiln_db_fail(kiln_db_t *db, kiln_error_t *err, const char *what)
{
    kiln_error_set(err, 0, "database: %s: %s", what, sqlite3_errmsg(db->h));
    if (err)
        err->code = EIO;
    return -1;
}

/* Runs SQL without results; the caller holds the lock. */
int kiln_db_exec(kiln_db_t *db, const char *sql, kiln_error_t *err)
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

int kiln_db_prepare(kiln_db_t *db, const char *sql, sqlite3_stmt **st, kiln_error_t *err)
{
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK)
        return kiln_db_fail(db, err, "prepare");
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
    return kiln_db_exec(db, alter, err) < 0 ? -1 : 1;
}

/* The tenant column in a database made before it: old builds are the tenant their request
 * names, else the single-tenant server's ("default"); then its index. */
static int migrate_tenant(kiln_db_t *db, kiln_error_t *err)
{
    int added = add_column(db, "tenant", "TEXT NOT NULL DEFAULT 'default'", err);
    if (added < 0 ||
        (added > 0 &&
         kiln_db_exec(db,
                      "UPDATE builds SET tenant = coalesce(json_extract(request, '$.tenant'), "
                      "'default')",
                      err) < 0))
        return -1;
    return kiln_db_exec(db, "CREATE INDEX IF NOT EXISTS builds_tenant ON builds(tenant, seq);",
                        err);
}

/* The branch (the request's source.ref, what the dashboard shows and filters by) and the
 * checked-out commit's author and message in a database made before them; then the
 * indexes of the list's repository and branch filters (per tenant, newest first). */
static int migrate_filters(kiln_db_t *db, kiln_error_t *err)
{
    int added = add_column(db, "branch", "TEXT", err);
    if (added < 0 ||
        (added > 0 &&
         kiln_db_exec(db, "UPDATE builds SET branch = json_extract(request, '$.source.ref')", err) <
             0) ||
        add_column(db, "commit_author", "TEXT", err) < 0 ||
        add_column(db, "commit_message", "TEXT", err) < 0)
        return -1;
    return kiln_db_exec(db,
                        "CREATE INDEX IF NOT EXISTS builds_tenant_repo ON builds(tenant, repo, "
                        "seq);"
                        "CREATE INDEX IF NOT EXISTS builds_tenant_branch ON builds(tenant, branch, "
                        "seq);",
                        err);
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
db_reader_t *kiln_db_reader(kiln_db_t *db)
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
        sqlite3_prepare_v2(r->h, KILN_DB_OWNER_SQL, -1, &r->owner, NULL) != SQLITE_OK) {
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
    db->memo = kiln_bodymemo_new();
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
    if (kiln_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err) < 0 ||
        kiln_db_exec(db, schema, err) < 0 || add_column(db, "audit", "TEXT", err) < 0 ||
        migrate_tenant(db, err) < 0 || migrate_filters(db, err) < 0 ||
        kiln_db_prepare(db, get_sql, &db->get, err) < 0 ||
        kiln_db_prepare(db, phases_sql, &db->phases, err) < 0 ||
        kiln_db_prepare(db,
                        "INSERT INTO builds(id, repo, status, request, created, audit, tenant, "
                        "branch) VALUES(?1, ?2, 'queued', ?3, ?4, ?5, "
                        "coalesce(json_extract(?3, '$.tenant'), 'default'), "
                        "json_extract(?3, '$.source.ref'))",
                        &db->insert, err) < 0 ||
        kiln_db_prepare(db, status_sql, &db->status, err) < 0) {
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
    kiln_bodymemo_free(db->memo);
    pthread_mutex_destroy(&db->mem_lock);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

/* Runs one parameterised statement that returns no rows; caller holds the lock.
 * Binds: 't' text, 'd' double, 'i' int64, 'n' null. */
int kiln_db_run(kiln_db_t *db, kiln_error_t *err, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc;

    if (kiln_db_prepare(db, sql, &st, err) < 0)
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
        return kiln_db_fail(db, err, sql);
    return sqlite3_changes(db->h);
}

void kiln_db_rollback(kiln_db_t *db)
{
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* Reads one text column of the row `sql` (one ?1 parameter) finds into buf; returns 1 when a
 * row was found, 0 when none, -1 on a store error. */
int kiln_db_query_text(kiln_db_t *db, const char *sql, const char *key, char *buf, size_t len,
                       kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&db->lock);
    if (kiln_db_prepare(db, sql, &st, err) < 0) {
        pthread_mutex_unlock(&db->lock);
        return -1;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_DONE)
        kiln_db_fail(db, err, "query");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}
