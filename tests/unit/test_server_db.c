/* Unit tests for the server's store (src/server/db*.c): a build's way through the local
 * queue (claim order, phases, commit, cancel, requeue, recovery after a restart), final
 * writes that kiln.db refuses, webhook deliveries and idempotency keys recorded with their
 * build, and a kiln.db of an older schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "src/server/db.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Runs SQL on a second connection to the test database (installs write-failing triggers). */
static void side_sql(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

/* A refused final write never leaves a build running: it is recorded failed with a reason,
 * and when kiln.db refuses every write the failure is still what get/status/list show. */
static void test_db_finish_write_fails(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-dbfail-XXXXXX";
    _cleanup_free_ char *path = NULL;
    kiln_db_t *db = NULL;
    kiln_db_job_t job = {0};
    kiln_error_t err = {0};
    json_t *o = NULL, *list = NULL;
    int64_t next = 0;
    char st[32];

    assert_non_null(mkdtemp(dir));
    path = kiln_xasprintf("%s/kiln.db", dir);
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    assert_int_equal(kiln_db_build_insert(db, "b1", "r", "{}", NULL, NULL, &err), 0);
    assert_int_equal(kiln_db_build_insert(db, "b2", "r", "{}", NULL, NULL, &err), 0);
    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 1);
    kiln_db_job_free(&job);
    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 1);
    kiln_db_job_free(&job);

    /* Only the full outcome is refused: the smaller failure record lands. */
    side_sql(path, "CREATE TRIGGER no_success BEFORE UPDATE ON builds WHEN "
                   "NEW.status = 'succeeded' BEGIN SELECT RAISE(FAIL, 'database or disk is full'); "
                   "END;");
    assert_int_equal(kiln_db_finish_or_fail(db, "b1", "succeeded", NULL, NULL, "{}", 0, &err), 1);
    assert_int_equal(kiln_db_build_get(db, "b1", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "state_write_failed");
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")),
                           "outcome (succeeded) could not be recorded: "));
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "disk is full"));
    json_decref(o);

    /* Every write refused: the failure lives in memory and the API view shows it. */
    side_sql(path, "CREATE TRIGGER no_write BEFORE UPDATE ON builds BEGIN "
                   "SELECT RAISE(FAIL, 'database or disk is full'); END;");
    assert_int_equal(kiln_db_finish_or_fail(db, "b2", "failed", "error", "x", NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "build b2: "));
    assert_non_null(strstr(err.msg, "disk is full"));
    assert_int_equal(kiln_db_build_status(db, "b2", st, sizeof(st), &err), 0);
    assert_string_equal(st, "failed");
    assert_int_equal(kiln_db_build_get(db, "b2", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "state_write_failed");
    json_decref(o);
    assert_int_equal(kiln_db_build_list(db, NULL, NULL, 0, 10, &list, &next, &err), 0);
    assert_int_equal(json_array_size(list), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, i), "status")),
                            "failed");
    json_decref(list);

    /* Once kiln.db takes writes again the kept failure is written to it. */
    side_sql(path, "DROP TRIGGER no_write; DROP TRIGGER no_success;");
    kiln_db_flush_unrecorded(db);
    kiln_db_close(db);
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    assert_int_equal(kiln_db_build_get(db, "b2", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "state_write_failed");
    json_decref(o);
    kiln_db_close(db);
    assert_int_equal(kiln_fs_rm_rf(dir, NULL), 0);
}

/* Opens a new kiln.db in a fresh directory (dir: a mkdtemp template, filled in). */
static kiln_db_t *scratch_db(char *dir)
{
    _cleanup_free_ char *path = NULL;
    kiln_error_t err = {0};
    kiln_db_t *db = NULL;

    assert_non_null(mkdtemp(dir));
    path = kiln_xasprintf("%s/kiln.db", dir);
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    return db;
}

/* Records build id with origin o: a new build when want is NULL, else the build want
 * answered for the same key (nothing inserted). */
static void insert_expect(kiln_db_t *db, const char *id, const kiln_db_origin_t *o,
                          const char *want)
{
    kiln_error_t err = {0};
    char *existing = NULL;

    assert_int_equal(kiln_db_build_insert(db, id, "r", "{}", o, &existing, &err), want ? 1 : 0);
    if (want)
        assert_string_equal(existing, want);
    else
        assert_null(existing);
    free(existing);
}

/* Counts the process groups recovery asks to end. */
static void count_kill(pid_t pgid, uint64_t start_ticks, void *opaque)
{
    (void)start_ticks;
    if (pgid == 4242)
        (*(int *)opaque)++;
}

/* The names of build id's phases, comma-separated (malloc'ed). */
static char *phase_names(kiln_db_t *db, const char *id)
{
    kiln_error_t err = {0};
    json_t *o = NULL, *p;
    size_t i;
    char *out = kiln_xstrdup("");

    assert_int_equal(kiln_db_build_get(db, id, &o, &err), 0);
    json_array_foreach(json_object_get(o, "phases"), i, p)
    {
        char *n = kiln_xasprintf("%s%s%s", out, i ? "," : "",
                                 json_string_value(json_object_get(p, "name")));
        free(out);
        out = n;
    }
    json_decref(o);
    return out;
}

/* Claims the next build; asserts one was there and returns its id (malloc'ed). */
static char *claim(kiln_db_t *db)
{
    kiln_db_job_t job = {0};
    kiln_error_t err = {0};
    char *id;

    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 1);
    id = kiln_xstrdup(job.id);
    kiln_db_job_free(&job);
    return id;
}

/* Claim order (a repository with nothing running first, then the oldest), a git source
 * starting by cloning, phases, the commit, cancel of queued/finished/unknown builds, requeue,
 * queue depth, and recovery: the running build's process group is ended, and it is requeued
 * once, then failed as interrupted. */
static void test_db_lifecycle(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-dbq-XXXXXX";
    _cleanup_free_ char *first = NULL, *second = NULL, *phases = NULL;
    const char *git = "{\"source\": {\"git\": \"https://x/a\"}}";
    kiln_db_t *db = NULL;
    kiln_db_job_t job = {0};
    kiln_error_t err = {0};
    json_t *o = NULL;
    int was_running = -1, killed = 0;
    char st[32];

    db = scratch_db(dir);
    assert_int_equal(kiln_db_build_insert(db, "a1", "repo-a", git, NULL, NULL, &err), 0);
    assert_int_equal(kiln_db_build_insert(db, "a2", "repo-a", "{}", NULL, NULL, &err), 0);
    assert_int_equal(kiln_db_build_insert(db, "b1", "repo-b", "{}", NULL, NULL, &err), 0);
    assert_int_equal(kiln_db_queue_depth(db), 3);

    first = claim(db);
    assert_string_equal(first, "a1");
    assert_int_equal(kiln_db_build_status(db, "a1", st, sizeof(st), &err), 0);
    assert_string_equal(st, "cloning");
    /* repo-a has a build running: repo-b's goes first although a2 is older */
    second = claim(db);
    assert_string_equal(second, "b1");
    assert_int_equal(kiln_db_build_status(db, "b1", st, sizeof(st), &err), 0);
    assert_string_equal(st, "building");

    assert_int_equal(kiln_db_phase(db, "a1", "building", &err), 0);
    assert_int_equal(kiln_db_phase(db, "a1", "pushing", &err), 0);
    assert_int_equal(kiln_db_set_commit(db, "a1", "0123abcd", &err), 0);
    assert_int_equal(kiln_db_set_process(db, "a1", 4242, 7, &err), 0);
    phases = phase_names(db, "a1");
    assert_string_equal(phases, "cloning,building,pushing");
    assert_int_equal(kiln_db_build_get(db, "a1", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "commit")), "0123abcd");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
    json_decref(o);

    /* cancel: a queued build, then the same again, then one that does not exist */
    assert_int_equal(kiln_db_cancel(db, "a2", &was_running, &err), 0);
    assert_int_equal(was_running, 0);
    assert_int_equal(kiln_db_cancel(db, "a2", &was_running, &err), -1);
    assert_int_equal(err.code, EALREADY);
    assert_non_null(strstr(err.msg, "already canceled"));
    assert_int_equal(kiln_db_cancel(db, "nope", &was_running, &err), -1);
    assert_int_equal(err.code, ENOENT);
    assert_int_equal(kiln_db_queue_depth(db), 0);

    assert_int_equal(kiln_db_requeue(db, "b1", &err), 0);
    assert_int_equal(kiln_db_queue_depth(db), 1);
    assert_int_equal(kiln_db_finish(db, "b1", "succeeded", NULL, NULL, "{}", 0, &err), 0);
    assert_int_equal(kiln_db_build_status(db, "b1", st, sizeof(st), &err), 0);
    assert_string_equal(st, "succeeded"); /* a requeued build that had finished stays final */

    /* restart: a1 was running (pgid recorded) on its first attempt: requeued, its group ended */
    assert_int_equal(kiln_db_recover(db, 1, count_kill, &killed, &err), 1);
    assert_int_equal(killed, 1);
    assert_int_equal(kiln_db_build_status(db, "a1", st, sizeof(st), &err), 0);
    assert_string_equal(st, "queued");
    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 1);
    assert_int_equal(job.attempts, 2);
    kiln_db_job_free(&job);
    /* second restart: no more requeues, the build failed as interrupted */
    assert_int_equal(kiln_db_recover(db, 1, NULL, NULL, &err), 1);
    assert_int_equal(kiln_db_build_get(db, "a1", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "interrupted");
    json_decref(o);
    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 0);
    kiln_db_close(db);
    assert_int_equal(kiln_fs_rm_rf(dir, NULL), 0);
}

/* A delivery key is recorded with its build: a replay finds that build (also after a
 * reopen), nothing new is inserted; a key past its retention is forgotten; the audit record
 * comes back as "triggered_by". */
static void test_db_deliveries(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-deliveries-XXXXXX";
    kiln_db_t *db = scratch_db(dir);
    _cleanup_free_ char *path = kiln_xasprintf("%s/kiln.db", dir);
    kiln_error_t err = {0};
    kiln_db_origin_t o = {.audit_json = "{\"via\":\"github\",\"delivery\":\"d-1\"}",
                          .dedupe_key = "github:app:d-1",
                          .key_retention = 3600};
    json_t *b = NULL, *list = NULL;
    int64_t next = 0;

    insert_expect(db, "b1", &o, NULL);
    insert_expect(db, "b2", &o, "b1");
    assert_int_equal(kiln_db_build_get(db, "b2", &b, &err), -1);
    assert_int_equal(kiln_db_build_get(db, "b1", &b, &err), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(b, "triggered_by"), "delivery")), "d-1");
    json_decref(b);
    kiln_db_close(db);

    /* durable: a restarted server still knows the delivery */
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    insert_expect(db, "b3", &o, "b1");
    /* another key starts a build; no key: no dedupe, no audit */
    o.dedupe_key = "github:app:d-2";
    insert_expect(db, "b4", &o, NULL);
    insert_expect(db, "b5", NULL, NULL);
    assert_int_equal(kiln_db_build_get(db, "b5", &b, &err), 0);
    assert_true(json_is_null(json_object_get(b, "triggered_by")));
    json_decref(b);
    assert_int_equal(kiln_db_build_list(db, NULL, NULL, 0, 10, &list, &next, &err), 0);
    assert_int_equal(json_array_size(list), 3);
    assert_non_null(json_object_get(json_array_get(list, 1), "triggered_by"));
    json_decref(list);
    /* a forgotten key (its build could not be queued) starts a new build */
    insert_expect(db, "b7", &o, "b4");
    kiln_db_delivery_forget(db, "github:app:d-2");
    insert_expect(db, "b7", &o, NULL);
    /* past its retention (0 s here) the key is forgotten: a new build starts */
    o.dedupe_key = "github:app:d-1";
    o.key_retention = 0;
    insert_expect(db, "b6", &o, NULL);
    kiln_db_close(db);
    kiln_fs_rm_rf(dir, NULL);
}

/* Opens a kiln.db (in a fresh directory, dir a mkdtemp template) made with the schema before
 * the audit and tenant columns, holding build id in status. */
static kiln_db_t *old_schema_db_req(char *dir, const char *id, const char *status,
                                    const char *request)
{
    _cleanup_free_ char *path = NULL, *sql = NULL;
    kiln_error_t err = {0};
    kiln_db_t *db = NULL;
    sqlite3 *h = NULL;

    assert_non_null(mkdtemp(dir));
    path = kiln_xasprintf("%s/kiln.db", dir);
    sql = kiln_xasprintf("CREATE TABLE builds(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT "
                         "UNIQUE NOT NULL, repo TEXT NOT NULL, status TEXT NOT NULL, reason "
                         "TEXT, error TEXT, request TEXT NOT NULL, commit_sha TEXT, created REAL "
                         "NOT NULL, started REAL, finished REAL, attempts INTEGER NOT NULL "
                         "DEFAULT 0, pgid INTEGER, pstart INTEGER, result TEXT, bytes_pushed "
                         "INTEGER NOT NULL DEFAULT 0);"
                         "INSERT INTO builds(id, repo, status, request, created) "
                         "VALUES('%s', 'r', '%s', '%s', 1);",
                         id, status, request);
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    return db;
}

static kiln_db_t *old_schema_db(char *dir, const char *id, const char *status)
{
    return old_schema_db_req(dir, id, status, "{}");
}

/* The ids of a filtered list, comma-joined (malloc'ed). */
static char *list_ids(kiln_db_t *db, const kiln_db_build_filter_t *f)
{
    kiln_error_t err = {0};
    json_t *list = NULL, *b;
    int64_t next = 0;
    size_t i;
    char *all = kiln_xstrdup("");

    assert_int_equal(kiln_db_build_list_filtered(db, f, 0, 10, &list, &next, &err), 0);
    json_array_foreach(list, i, b)
    {
        char *n = kiln_xasprintf("%s%s%s", all, *all ? "," : "",
                                 json_string_value(json_object_get(b, "id")));
        free(all);
        all = n;
    }
    json_decref(list);
    return all;
}

/* A kiln.db made before the branch column gets it from each request's source.ref; lists are
 * narrowed by repo and branch, exactly or by a prefix ending in '*', per tenant, through
 * the (tenant, column, seq) indexes; the commit's author and message are on the record. */
static void test_db_filters(void **state)
{
    char dir[] = "/tmp/kiln-filter-db-XXXXXX";
    kiln_db_t *db = old_schema_db_req(dir, "b-old", "succeeded", "{\"source\":{\"ref\":\"main\"}}");
    _cleanup_free_ char *path = kiln_xasprintf("%s/kiln.db", dir);
    kiln_error_t err = {0};
    json_t *o = NULL;
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    const char *reqs[][3] = {
        {"b-1", "https://git.test/acme/app", "{\"source\":{\"ref\":\"main\"}}"},
        {"b-2", "https://git.test/acme/app", "{\"source\":{\"ref\":\"feature/x\"}}"},
        {"b-3", "https://git.test/acme/lib", "{\"source\":{\"ref\":\"feature/y\"}}"},
        {"b-4", "https://git.test/acme/app",
         "{\"tenant\":\"globex\",\"source\":{\"ref\":\"main\"}}"},
    };
    (void)state;

    for (size_t i = 0; i < 4; i++)
        assert_int_equal(
            kiln_db_build_insert(db, reqs[i][0], reqs[i][1], reqs[i][2], NULL, NULL, &err), 0);
    {
        _cleanup_free_ char *a = list_ids(db, &(kiln_db_build_filter_t){.branch = "main"});
        assert_string_equal(a, "b-4,b-1,b-old"); /* the old build's branch from its request */
    }
    {
        _cleanup_free_ char *a =
            list_ids(db, &(kiln_db_build_filter_t){.tenant = "default", .branch = "main"});
        assert_string_equal(a, "b-1,b-old");
    }
    {
        _cleanup_free_ char *a = list_ids(db, &(kiln_db_build_filter_t){.branch = "feature/*"});
        assert_string_equal(a, "b-3,b-2");
    }
    {
        _cleanup_free_ char *a = list_ids(db, &(kiln_db_build_filter_t){.branch = "feature"});
        assert_string_equal(a, ""); /* exact unless it ends with '*' */
    }
    {
        _cleanup_free_ char *a = list_ids(
            db, &(kiln_db_build_filter_t){.repo = "https://git.test/acme/a*", .branch = "f*"});
        assert_string_equal(a, "b-2");
    }
    {
        _cleanup_free_ char *a = list_ids(db, &(kiln_db_build_filter_t){.repo = "*"});
        assert_string_equal(a, "b-4,b-3,b-2,b-1,b-old");
    }
    /* the commit's author and message */
    assert_int_equal(kiln_db_set_commit_info(db, "b-1", "Ada Lovelace", "fix: it", &err), 0);
    assert_int_equal(kiln_db_build_get(db, "b-1", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "commit_author")), "Ada Lovelace");
    assert_string_equal(json_string_value(json_object_get(o, "commit_message")), "fix: it");
    json_decref(o);
    kiln_db_close(db);
    /* the filters are answered by the indexes, not a scan of every build */
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    {
        static const char *const plans[][2] = {
            {"SELECT id FROM builds WHERE tenant = 'default' AND branch = 'main' ORDER BY seq "
             "DESC",
             "builds_tenant_branch"},
            {"SELECT id FROM builds WHERE tenant = 'default' AND repo = 'r' ORDER BY seq DESC",
             "builds_tenant_repo"},
            {"SELECT id FROM builds WHERE tenant = 'default' AND branch >= 'f' AND branch < 'f' || "
             "char(1114111) ORDER BY seq DESC",
             "INDEX"},
        };
        for (size_t i = 0; i < 3; i++) {
            _cleanup_free_ char *q = kiln_xasprintf("EXPLAIN QUERY PLAN %s", plans[i][0]);
            int seen = 0;
            assert_int_equal(sqlite3_prepare_v2(h, q, -1, &st, NULL), SQLITE_OK);
            while (sqlite3_step(st) == SQLITE_ROW) {
                const char *d = (const char *)sqlite3_column_text(st, 3);
                assert_string_not_equal(d, "SCAN builds"); /* never a plain table scan */
                if (strstr(d, plans[i][1]))
                    seen = 1;
            }
            sqlite3_finalize(st);
            assert_true(seen);
        }
    }
    sqlite3_close(h);
    kiln_fs_rm_rf(dir, NULL);
}

/* A kiln.db made before the audit column existed opens (the column is added) and keeps its
 * builds. */
static void test_db_old_schema(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-oldschema-XXXXXX";
    kiln_db_t *db = old_schema_db(dir, "old", "succeeded");
    kiln_error_t err = {0};
    json_t *b = NULL;

    assert_int_equal(kiln_db_build_get(db, "old", &b, &err), 0);
    assert_true(json_is_null(json_object_get(b, "triggered_by")));
    json_decref(b);
    kiln_db_close(db);
    kiln_fs_rm_rf(dir, NULL);
}

/* A kiln.db made before tenants gets the column (old builds are "default"'s); a new build's
 * tenant is its request's; lists, stats and ownership are per tenant. */
static void test_db_tenants(void **state)
{
    char dir[] = "/tmp/kiln-tenant-db-XXXXXX";
    kiln_db_t *db = old_schema_db(dir, "b-old", "queued");
    _cleanup_free_ char *path = kiln_xasprintf("%s/kiln.db", dir);
    kiln_error_t err = {0};
    kiln_db_stats_t st;
    json_t *list = NULL, *o = NULL;
    int64_t next = 0;
    (void)state;

    assert_int_equal(kiln_db_build_get(db, "b-old", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "default");
    json_decref(o);
    assert_int_equal(
        kiln_db_build_insert(db, "b-a1", "r", "{\"tenant\": \"acme\"}", NULL, NULL, &err), 0);
    assert_int_equal(
        kiln_db_build_insert(db, "b-g1", "r", "{\"tenant\": \"globex\"}", NULL, NULL, &err), 0);
    assert_int_equal(
        kiln_db_build_insert(db, "b-a2", "r", "{\"tenant\": \"acme\"}", NULL, NULL, &err), 0);

    assert_int_equal(kiln_db_build_owned(db, "b-a1", "acme", &err), 1);
    assert_int_equal(kiln_db_build_owned(db, "b-a1", "globex", &err), 0);
    assert_int_equal(kiln_db_build_owned(db, "b-none", "acme", &err), 0);
    assert_int_equal(kiln_db_build_owned(db, "b-old", "default", &err), 1);

    assert_int_equal(kiln_db_build_list_filtered(db, &(kiln_db_build_filter_t){.tenant = "acme"}, 0,
                                                 10, &list, &next, &err),
                     0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), "b-a2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "id")), "b-a1");
    json_decref(list);
    assert_int_equal(
        kiln_db_build_list_filtered(db, &(kiln_db_build_filter_t){0}, 0, 10, &list, &next, &err),
        0);
    assert_int_equal(json_array_size(list), 4);
    json_decref(list);

    assert_int_equal(kiln_db_stats_tenant(db, "globex", &st, &err), 0);
    assert_int_equal(st.by_status[0], 1);
    assert_int_equal(kiln_db_stats_tenant(db, NULL, &st, &err), 0);
    assert_int_equal(st.by_status[0], 4);

    /* contexts: the uploader's; one with no record is the old single tenant's */
    assert_int_equal(kiln_db_context_insert(db, "ctx-1", "acme", &err), 0);
    assert_int_equal(kiln_db_context_owned(db, "ctx-1", "acme", &err), 1);
    assert_int_equal(kiln_db_context_owned(db, "ctx-1", "globex", &err), 0);
    assert_int_equal(kiln_db_context_owned(db, "ctx-old", "default", &err), 1);
    assert_int_equal(kiln_db_context_owned(db, "ctx-old", "acme", &err), 0);
    assert_int_equal(kiln_db_context_forget(db, "ctx-1", &err), 0);
    assert_int_equal(kiln_db_context_owned(db, "ctx-1", "acme", &err), 0);
    kiln_db_close(db);

    /* opening again does not migrate twice */
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    assert_int_equal(kiln_db_build_owned(db, "b-g1", "globex", &err), 1);
    kiln_db_close(db);
    kiln_fs_rm_rf(dir, NULL);
}

/* GET's body: the owner read from the row answered (another tenant's build and an unknown
 * one both 0), the same bytes as the API object, and never stale: a phase, a status change
 * made on another connection (another process), and the in-memory final state each show at
 * once although the body before was kept. */
static void test_db_build_body(void **state)
{
    char dir[] = "/tmp/kiln-body-db-XXXXXX";
    kiln_db_t *db = scratch_db(dir);
    _cleanup_free_ char *path = kiln_xasprintf("%s/kiln.db", dir);
    kiln_error_t err = {0};
    kiln_db_job_t job = {0};
    char *body = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    json_t *o = NULL, *b = NULL;
    (void)state;

    assert_int_equal(kiln_db_build_insert(db, "b-a1", "r",
                                          "{\"tenant\": \"acme\", \"source\": {\"git\": "
                                          "\"https://u:secret@x.test/a\"}}",
                                          NULL, NULL, &err),
                     0);
    assert_int_equal(kiln_db_build_body(db, "b-a1", "globex", &body, &len, &err), 0);
    assert_int_equal(kiln_db_build_body(db, "b-none", "acme", &body, &len, &err), 0);
    assert_int_equal(kiln_db_build_body(db, "b-a1", NULL, &body, &len, &err), 0);
    assert_int_equal(kiln_db_build_body(db, "b-a1", "acme", &body, &len, &err), 1);
    assert_int_equal(len, strlen(body));
    assert_int_equal(body[len - 1], '\n');
    assert_null(strstr(body, "secret"));
    assert_int_equal(kiln_db_build_get(db, "b-a1", &o, &err), 0);
    b = json_loads(body, 0, NULL);
    assert_true(json_equal(o, b));
    json_decref(o);
    json_decref(b);
    /* kept: the same bytes again; still not globex's */
    assert_int_equal(kiln_db_build_body(db, "b-a1", "acme", &again, &len2, &err), 1);
    assert_int_equal(len2, len);
    assert_memory_equal(again, body, len);
    free(again);
    assert_int_equal(kiln_db_build_body(db, "b-a1", "globex", &again, &len2, &err), 0);

    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 1);
    kiln_db_job_free(&job);
    assert_int_equal(kiln_db_phase(db, "b-a1", "building", &err), 0);
    assert_int_equal(kiln_db_build_body(db, "b-a1", "acme", &again, &len2, &err), 1);
    assert_non_null(strstr(again, "\"status\":\"building\""));
    assert_non_null(strstr(again, "\"name\":\"building\""));
    free(again);
    side_sql(path, "UPDATE builds SET commit_sha = 'c0ffee' WHERE id = 'b-a1'");
    assert_int_equal(kiln_db_build_body(db, "b-a1", "acme", &again, &len2, &err), 1);
    assert_non_null(strstr(again, "\"commit\":\"c0ffee\""));
    free(again);

    /* every write refused: the final state kept in memory shows, and is not kept as the body */
    side_sql(path, "CREATE TRIGGER no_write BEFORE UPDATE ON builds BEGIN "
                   "SELECT RAISE(FAIL, 'database or disk is full'); END;");
    assert_int_equal(kiln_db_finish_or_fail(db, "b-a1", "failed", "error", "x", NULL, 0, &err), -1);
    assert_int_equal(kiln_db_build_body(db, "b-a1", "acme", &again, &len2, &err), 1);
    assert_non_null(strstr(again, "state_write_failed"));
    free(again);
    side_sql(path, "DROP TRIGGER no_write;");
    kiln_db_flush_unrecorded(db);
    assert_int_equal(kiln_db_build_body(db, "b-a1", "acme", &again, &len2, &err), 1);
    assert_non_null(strstr(again, "\"status\":\"failed\""));
    free(again);
    free(body);
    kiln_db_close(db);
    kiln_fs_rm_rf(dir, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_lifecycle),  cmocka_unit_test(test_db_finish_write_fails),
        cmocka_unit_test(test_db_deliveries), cmocka_unit_test(test_db_old_schema),
        cmocka_unit_test(test_db_tenants),    cmocka_unit_test(test_db_filters),
        cmocka_unit_test(test_db_build_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
