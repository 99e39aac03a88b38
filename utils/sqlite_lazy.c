/* kiln — SQLite loaded on first use (utils/lazylib): only the server's
 * database (src/server/db*) and the access log use it, but linking it made
 * every command bind its ~1,600 symbol relocations at start-up (the biggest
 * share of what was left of `kiln run`'s start). A missing library ends kiln
 * at first use naming it, as the loader did when it was linked. */
#include <sqlite3.h>

#include "utils/lazylib.h"

typedef sqlite3_stmt S;

#define SQLITE_FUNCS(F, V)                                                                         \
    F(const char *, sqlite3_libversion, (void), (), 0)                                             \
    F(int, sqlite3_close, (sqlite3 * db), (db), 0)                                                 \
    F(int, sqlite3_busy_timeout, (sqlite3 * db, int ms), (db, ms), 0)                              \
    F(int, sqlite3_changes, (sqlite3 * db), (db), 0)                                               \
    F(const char *, sqlite3_errmsg, (sqlite3 * db), (db), 0)                                       \
    F(int, sqlite3_exec,                                                                           \
      (sqlite3 * db, const char *sql, int (*cb)(void *, int, char **, char **), void *data,        \
       char **errmsg),                                                                             \
      (db, sql, cb, data, errmsg), 0)                                                              \
    V(sqlite3_free, (void *p), (p))                                                                \
    F(int, sqlite3_prepare_v2,                                                                     \
      (sqlite3 * db, const char *sql, int n, S **stmt, const char **tail),                         \
      (db, sql, n, stmt, tail), 0)                                                                 \
    F(int, sqlite3_step, (S * s), (s), 0)                                                          \
    F(int, sqlite3_reset, (S * s), (s), 0)                                                         \
    F(int, sqlite3_finalize, (S * s), (s), 0)                                                      \
    F(int, sqlite3_clear_bindings, (S * s), (s), 0)                                                \
    F(int, sqlite3_bind_double, (S * s, int i, double v), (s, i, v), 0)                            \
    F(int, sqlite3_bind_int, (S * s, int i, int v), (s, i, v), 0)                                  \
    F(int, sqlite3_bind_int64, (S * s, int i, sqlite3_int64 v), (s, i, v), 0)                      \
    F(int, sqlite3_bind_null, (S * s, int i), (s, i), 0)                                           \
    F(int, sqlite3_bind_text, (S * s, int i, const char *v, int n, void (*del)(void *)),           \
      (s, i, v, n, del), 0)                                                                        \
    F(double, sqlite3_column_double, (S * s, int i), (s, i), 0)                                    \
    F(int, sqlite3_column_int, (S * s, int i), (s, i), 0)                                          \
    F(sqlite3_int64, sqlite3_column_int64, (S * s, int i), (s, i), 0)                              \
    F(const unsigned char *, sqlite3_column_text, (S * s, int i), (s, i), 0)                       \
    F(int, sqlite3_column_type, (S * s, int i), (s, i), 0)                                         \
    F(const void *, sqlite3_column_blob, (S * s, int i), (s, i), 0)                                \
    F(int, sqlite3_column_bytes, (S * s, int i), (s, i), 0)                                        \
    F(int, sqlite3_column_count, (S * s), (s), 0)                                                  \
    F(sqlite3 *, sqlite3_db_handle, (S * s), (s), 0)

/* the opens are written by hand below (they set SQLite up first); sqlite3_config is variadic */
#define SQLITE_HANDWRITTEN(F, V)                                                                   \
    F(int, sqlite3_open, (const char *name, sqlite3 **db), (name, db), 0)                          \
    F(int, sqlite3_open_v2, (const char *name, sqlite3 **db, int flags, const char *vfs),          \
      (name, db, flags, vfs), 0)                                                                   \
    F(int, sqlite3_config, (int op, ...), (op), 0)

KILN_LAZYLIB_DEFINE_REQUIRED(SQLITE_FUNCS, SQLITE_HANDWRITTEN, "libsqlite3.so.0",
                             "for the build server's database and access log")
KILN_LAZYLIB_PRELOADER(sqlite)

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

/* Before SQLite initialises (its first open): no memory statistics. They take one
 * process-wide mutex around every allocation SQLite makes, which the server's connection
 * threads, each reading on its own connection, would otherwise all queue on (kiln reads no
 * statistics and sets no heap limit). */
static void setup(void)
{
    lazy_require();
    lazy_fn.sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int sqlite3_open(const char *name, sqlite3 **db)
{
    pthread_once(&setup_once, setup);
    return lazy_fn.sqlite3_open(name, db);
}

int sqlite3_open_v2(const char *name, sqlite3 **db, int flags, const char *vfs)
{
    pthread_once(&setup_once, setup);
    return lazy_fn.sqlite3_open_v2(name, db, flags, vfs);
}
