/* kiln server — build records as the API shows them: one build by id (on this thread's
 * read-only connection), its status and owner, pages of builds, and the finished ones past a
 * cutoff. Every URL in a record has its credentials redacted; a build whose final write
 * failed shows the final state kept in memory. */
#include "src/server/db.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/server/bodymemo.h"
#include "src/server/db_impl.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/git.h"
#include "utils/mem.h"

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

/* Appends the columns of the row st is on to the memo key: each its type, then its 8 bytes
 * (numbers) or length and bytes (text, blobs), so two different rows never give one key. */
static void key_row(kiln_buf_t *k, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        unsigned char type = (unsigned char)sqlite3_column_type(st, i);
        kiln_buf_append(k, &type, 1, NULL);
        if (type == SQLITE_INTEGER) {
            int64_t v = sqlite3_column_int64(st, i);
            kiln_buf_append(k, &v, sizeof(v), NULL);
        } else if (type == SQLITE_FLOAT) {
            double v = sqlite3_column_double(st, i);
            kiln_buf_append(k, &v, sizeof(v), NULL);
        } else if (type != SQLITE_NULL) {
            const void *b = type == SQLITE_BLOB ? sqlite3_column_blob(st, i)
                                                : (const void *)sqlite3_column_text(st, i);
            uint32_t len = (uint32_t)sqlite3_column_bytes(st, i);
            kiln_buf_append(k, &len, sizeof(len), NULL);
            kiln_buf_append(k, b, len, NULL);
        }
    }
}

/* Builds the API object for the row `st` is on (columns as get_sql); caller holds the lock.
 * The phases it reads are appended to key (unless NULL). */
static json_t *row_to_json(sqlite3_stmt *phases_st, sqlite3_stmt *st, kiln_buf_t *key)
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
    /* the checked-out commit's author and message (read from the commit, capped) */
    set_text(o, "commit_author", st, 15);
    set_text(o, "commit_message", st, 16);
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
        if (key)
            key_row(key, phases_st);
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

/* Overlays the in-memory final state of a build whose final write failed: the API shows the
 * build ended (status, reason, error) even though kiln.db still says it is running. Whether
 * there was one. */
static bool overlay_unrecorded(kiln_db_t *db, json_t *o)
{
    json_t *m;

    pthread_mutex_lock(&db->mem_lock);
    m = json_object_get(db->unrecorded, json_string_value(json_object_get(o, "id")));
    if (m)
        json_object_update(o, m);
    pthread_mutex_unlock(&db->mem_lock);
    return m != NULL;
}

int kiln_db_build_get(kiln_db_t *db, const char *id, json_t **out, kiln_error_t *err)
{
    db_reader_t *r = kiln_db_reader(db);
    sqlite3_stmt *get = r ? r->get : db->get, *phases = r ? r->phases : db->phases;
    json_t *o = NULL;

    if (r == NULL)
        pthread_mutex_lock(&db->lock);
    sqlite3_bind_text(get, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(get) == SQLITE_ROW)
        o = row_to_json(phases, get, NULL);
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

/* Whether the in-memory final state covers build id (its body is then not memoized). */
static bool is_unrecorded(kiln_db_t *db, const char *id)
{
    bool r;
    pthread_mutex_lock(&db->mem_lock);
    r = json_object_size(db->unrecorded) > 0 && json_object_get(db->unrecorded, id) != NULL;
    pthread_mutex_unlock(&db->mem_lock);
    return r;
}

int kiln_db_build_body(kiln_db_t *db, const char *id, const char *tenant, char **body, size_t *len,
                       kiln_error_t *err)
{
    db_reader_t *r = kiln_db_reader(db);
    sqlite3_stmt *get = r ? r->get : db->get, *phases = r ? r->phases : db->phases;
    json_t *o = NULL;
    kiln_buf_t key;
    char *text = NULL;
    int found = 0, rc;

    if (tenant == NULL)
        return 0;
    kiln_buf_init(&key, 0);
    if (r == NULL)
        pthread_mutex_lock(&db->lock);
    sqlite3_bind_text(get, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        const char *owner = (const char *)sqlite3_column_text(get, 14);
        /* the owner read from the very row answered: another tenant's build is unknown */
        found = owner != NULL && strcmp(owner, tenant) == 0;
    } else if (rc != SQLITE_DONE) {
        kiln_error_set(err, EIO, "database: build %s: %s", id,
                       sqlite3_errmsg(sqlite3_db_handle(get)));
        found = -1;
    }
    if (found == 1) {
        size_t row_len;
        key_row(&key, get);
        row_len = key.len;
        if (!is_unrecorded(db, id)) {
            sqlite3_reset(phases);
            sqlite3_bind_int64(phases, 1, sqlite3_column_int64(get, 0));
            while (sqlite3_step(phases) == SQLITE_ROW)
                key_row(&key, phases);
            sqlite3_reset(phases);
            kiln_bodymemo_get(db->memo, id, key.data, key.len, &text, len);
        }
        if (text == NULL) {
            /* the key again from the phases the body is made of (they may have grown) */
            key.len = row_len;
            o = row_to_json(phases, get, &key);
        }
    }
    sqlite3_reset(get);
    sqlite3_clear_bindings(get);
    if (r == NULL)
        pthread_mutex_unlock(&db->lock);
    if (o != NULL) {
        size_t n;
        char *s;
        bool overlaid = overlay_unrecorded(db, o);
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s == NULL) {
            kiln_buf_free(&key);
            return kiln_error_set(err, ENOMEM, "build %s: formatting its record", id);
        }
        n = strlen(s);
        text = kiln_xrealloc(s, n + 2);
        text[n] = '\n';
        text[n + 1] = '\0';
        *len = n + 1;
        if (!overlaid)
            kiln_bodymemo_put(db->memo, id, key.data, key.len, text, *len);
    }
    kiln_buf_free(&key);
    if (found == 1)
        *body = text;
    return found;
}

int kiln_db_build_status(kiln_db_t *db, const char *id, char *buf, size_t len, kiln_error_t *err)
{
    db_reader_t *r = kiln_db_reader(db);
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
    kiln_db_build_filter_t f = {.status = status, .repo = repo};
    return kiln_db_build_list_filtered(db, &f, before, limit, out, next, err);
}

/* The condition on column for a filter value v into sql: exact, or a prefix before a final
 * '*' (a range an index answers); its value bound as ?(*n + 2) (?1 is the cursor), *n
 * counted. Nothing for NULL. */
static void filter_cond(kiln_buf_t *sql, const char *column, const char *v, const char **vals,
                        size_t *n, char **owned)
{
    size_t len;

    if (v == NULL)
        return;
    len = strlen(v);
    if (owned && len > 0 && v[len - 1] == '*') {
        /* [prefix, prefix + U+10FFFF): every text starting with it, in byte order */
        *owned = kiln_xstrndup(v, len - 1);
        vals[(*n)++] = *owned;
        kiln_buf_appendf(sql, NULL, " AND %s >= ?%zu AND %s < ?%zu || char(1114111)", column,
                         *n + 1, column, *n + 1);
    } else {
        vals[(*n)++] = v;
        kiln_buf_appendf(sql, NULL, " AND %s = ?%zu", column, *n + 1);
    }
}

int kiln_db_build_list_filtered(kiln_db_t *db, const kiln_db_build_filter_t *f, int64_t before,
                                int limit, json_t **out, int64_t *next, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int64_t last = 0;
    int n = 0, more = 0, rc;
    const char *vals[4];
    _cleanup_free_ char *repo_prefix = NULL, *branch_prefix = NULL;
    size_t nv = 0;
    kiln_buf_t sql;

    kiln_buf_init(&sql, 0);
    kiln_buf_appendf(&sql, NULL, "SELECT " ROW_COLUMNS " FROM builds WHERE (?1 = 0 OR seq < ?1)");
    filter_cond(&sql, "tenant", f->tenant, vals, &nv, NULL);
    filter_cond(&sql, "status", f->status, vals, &nv, NULL);
    filter_cond(&sql, "repo", f->repo, vals, &nv, &repo_prefix);
    filter_cond(&sql, "branch", f->branch, vals, &nv, &branch_prefix);
    kiln_buf_appendf(&sql, NULL, " ORDER BY seq DESC LIMIT %d", limit + 1);
    pthread_mutex_lock(&db->lock);
    rc = kiln_db_prepare(db, sql.data, &st, err);
    kiln_buf_free(&sql);
    if (rc < 0) {
        pthread_mutex_unlock(&db->lock);
        json_decref(arr);
        return -1;
    }
    sqlite3_bind_int64(st, 1, before);
    for (size_t i = 0; i < nv; i++)
        sqlite3_bind_text(st, (int)i + 2, vals[i], -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            more = 1;
            break;
        }
        json_t *o = row_to_json(db->phases, st, NULL);
        overlay_unrecorded(db, o);
        json_array_append_new(arr, o);
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        kiln_db_fail(db, err, "list builds");
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

int kiln_db_build_owned(kiln_db_t *db, const char *id, const char *tenant, kiln_error_t *err)
{
    /* asked before every per-build route: on this thread's reader, as the GETs themselves */
    db_reader_t *r = kiln_db_reader(db);
    char owner[KILN_DB_TENANT_MAX + 1];
    int rc;

    if (r == NULL) {
        rc = kiln_db_query_text(db, KILN_DB_OWNER_SQL, id, owner, sizeof(owner), err);
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

int kiln_db_finished_before(kiln_db_t *db, double cutoff, int max, json_t **out, kiln_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();

    pthread_mutex_lock(&db->lock);
    if (kiln_db_prepare(
            db,
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
