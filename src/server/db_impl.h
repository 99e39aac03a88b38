/* kiln server — what the parts of the store share (db.c opens it; db_builds, db_queue,
 * db_intake and db_stats each answer one kind of question): the connection, the per-thread
 * readers, and statement helpers. Not for use outside src/server/db*.c. */
#ifndef KILN_SERVER_DB_IMPL_H
#define KILN_SERVER_DB_IMPL_H

#include <pthread.h>
#include <sqlite3.h>

#include "src/server/db.h"

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
    pthread_mutex_t mem_lock;   /* guards unrecorded */
    json_t *unrecorded;         /* id -> {status, reason, error}: finals the file refused */
    struct kiln_bodymemo *memo; /* the last API bodies, by the rows they were made from */
};

/* The columns row_to_json reads, in its order. */
#define ROW_COLUMNS                                                                                \
    "seq, id, repo, status, reason, error, request, commit_sha, created, started, finished, "      \
    "attempts, result, audit, tenant, commit_author, commit_message"

/* The tenant owning a build. */
#define KILN_DB_OWNER_SQL "SELECT tenant FROM builds WHERE id = ?1"

/* The wall clock in seconds, as the rows store it. */
double kiln_db_now(void);
/* Fills err from the connection's last error (code EIO) about `what`; returns -1. */
int kiln_db_fail(kiln_db_t *db, kiln_error_t *err, const char *what);
/* Runs SQL without results; the caller holds the lock. Returns -1 on a store error. */
int kiln_db_exec(kiln_db_t *db, const char *sql, kiln_error_t *err);
/* Prepares sql on the shared connection; the caller holds the lock. */
int kiln_db_prepare(kiln_db_t *db, const char *sql, sqlite3_stmt **st, kiln_error_t *err);
/* Runs one parameterised statement that returns no rows; caller holds the lock.
 * Binds: 't' text, 'd' double, 'i' int64, 'n' null. Returns the rows changed, -1 on error. */
int kiln_db_run(kiln_db_t *db, kiln_error_t *err, const char *sql, const char *types, ...);
/* Rolls back the open transaction; caller holds the lock. */
void kiln_db_rollback(kiln_db_t *db);
/* This thread's read-only connection, opened on first use; NULL when it cannot be opened
 * (the caller then uses the shared connection under the lock). */
db_reader_t *kiln_db_reader(kiln_db_t *db);
/* Reads one text column of the row `sql` (one ?1 parameter) finds into buf, taking the lock;
 * returns 1 when a row was found, 0 when none, -1 on a store error. */
int kiln_db_query_text(kiln_db_t *db, const char *sql, const char *key, char *buf, size_t len,
                       kiln_error_t *err);

#endif
