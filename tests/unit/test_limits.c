/* The build limits policy (config defaults and maxima, tenant overrides, requests checked
 * against them) and the fair scheduler of the local queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/server/cli.h"
#include "src/server/db.h"
#include "src/server/limits.h"
#include "src/server/sched.h"
#include "utils/fs.h"

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)

/* A request's "limits" as the job codec reads it (job/limits), normalized (memory "2g"). */
static int limits_norm(json_t *v, json_t **out, kiln_error_t *err)
{
    kiln_job_limits_t l;

    if (kiln_job_limits_from_json(v, "limits", 1, &l, err) < 0)
        return -1;
    *out = kiln_job_limits_to_json(&l);
    return 0;
}

static json_t *js(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

/* The server policy of a config (limits, max_limits as JSON text, "" = absent), no
 * command-line values, as `kiln serve` builds it with --build-timeout 3600. */
static int server_policy(const char *limits, const char *max, kiln_limits_policy_t *p,
                         kiln_error_t *err)
{
    json_t *l = limits[0] ? js(limits) : NULL, *m = max[0] ? js(max) : NULL;
    int r;

    memset(p, 0, sizeof(*p));
    r = kiln_server_limits_policy(p, l, m, 0, 3600, 1, err);
    json_decref(l);
    json_decref(m);
    return r;
}

/* Applies a policy to a request's limits (JSON text, "" = none, or a whole request body when
 * it starts with "{\"timeout"): 0 with the stored limits in *out, -1 with err. */
static int apply(const kiln_limits_policy_t *p, const char *req, json_t **out, kiln_error_t *err)
{
    json_t *stored = json_object(), *norm = NULL;
    int r;

    if (strncmp(req, "{\"timeout", 9) == 0) {
        json_decref(stored);
        stored = js(req);
    } else if (req[0]) {
        json_t *v = js(req);
        r = limits_norm(v, &norm, err);
        json_decref(v);
        if (r < 0) {
            json_decref(stored);
            return -1;
        }
        json_object_set_new(stored, "limits", norm);
    }
    r = kiln_limits_apply(stored, p, err);
    *out = r == 0 ? json_incref(json_object_get(stored, "limits")) : NULL;
    json_decref(stored);
    return r;
}

/* The clamping table: server config (defaults, maxima), a tenant's limits, a request's, and
 * the stored limits or the field a refusal names. */
static const struct limits_case {
    const char *limits, *max, *tenant, *request;
    const char *stored; /* the stored limits, or NULL when refused */
    const char *names;  /* what the refusal names (refused cases) */
} cases[] = {
    /* nothing configured: the built-in defaults bound every build, and are the maxima */
    {"", "", "", "", "{\"disk\":\"20g\",\"memory\":\"4g\",\"pids\":4096,\"wall_time\":3600}", NULL},
    {"", "", "", "{\"pids\":100}",
     "{\"disk\":\"20g\",\"memory\":\"4g\",\"pids\":100,\"wall_time\":3600}", NULL},
    {"", "", "", "{\"memory\":\"8g\"}", NULL, "'limits.memory'"},
    {"", "", "", "{\"wall_time\":7200}", NULL, "'limits.wall_time'"},
    {"", "", "", "{\"timeout_seconds\":7200}", NULL, "'timeout_seconds'"},
    {"", "", "", "{\"timeout_seconds\":60}",
     "{\"disk\":\"20g\",\"memory\":\"4g\",\"pids\":4096,\"wall_time\":60}", NULL},
    /* config defaults and maxima */
    {"{\"memory\":\"1g\",\"pids\":64,\"cpu_time\":600,\"wall_time\":900}",
     "{\"memory\":\"2g\",\"pids\":256,\"wall_time\":1800}", "", "",
     "{\"disk\":\"20g\",\"memory\":\"1g\",\"pids\":64,\"cpu_time\":600,\"wall_time\":900}", NULL},
    {"{\"memory\":\"1g\",\"pids\":64}", "{\"memory\":\"2g\",\"pids\":256}", "",
     "{\"memory\":\"2g\",\"pids\":256}",
     "{\"disk\":\"20g\",\"memory\":\"2g\",\"pids\":256,\"wall_time\":3600}", NULL},
    {"{\"memory\":\"1g\"}", "{\"memory\":\"2g\"}", "", "{\"memory\":\"3g\"}", NULL,
     "'limits.memory'"},
    {"{\"pids\":64}", "", "", "{\"pids\":65}", NULL, "'limits.pids'"},
    {"{\"cpu_time\":60}", "", "", "{\"cpu_time\":61}", NULL, "'limits.cpu_time'"},
    /* a maximum below a built-in default lowers the default */
    {"", "{\"memory\":\"512m\"}", "", "",
     "{\"disk\":\"20g\",\"memory\":\"512m\",\"pids\":4096,\"wall_time\":3600}", NULL},
    /* a tenant's limits replace the defaults within the maxima; requests still ask up to the
     * maximum */
    {"{\"memory\":\"1g\",\"pids\":64}", "{\"memory\":\"4g\",\"pids\":512}",
     "{\"memory\":\"2g\",\"pids\":128}", "",
     "{\"disk\":\"20g\",\"memory\":\"2g\",\"pids\":128,\"wall_time\":3600}", NULL},
    {"{\"memory\":\"1g\"}", "{\"memory\":\"4g\"}", "{\"memory\":\"2g\"}", "{\"memory\":\"4g\"}",
     "{\"disk\":\"20g\",\"memory\":\"4g\",\"pids\":4096,\"wall_time\":3600}", NULL},
    {"{\"memory\":\"1g\"}", "{\"memory\":\"4g\"}", "{\"memory\":\"2g\"}", "{\"memory\":\"5g\"}",
     NULL, "'limits.memory'"},
    {"{\"memory\":\"1g\"}", "{\"memory\":\"4g\"}", "{\"memory\":\"8g\"}", "", NULL,
     "limits.memory: 8g is above the server's maximum 4g"},
    {"", "", "{\"wall_time\":60}", "",
     "{\"disk\":\"20g\",\"memory\":\"4g\",\"pids\":4096,\"wall_time\":60}", NULL},
    {"", "", "{\"bogus\":1}", "", NULL, "limits.bogus: unknown limit"},
    /* disk: a size like memory, built-in 20g, a request above the maximum refused */
    {"{\"disk\":\"1g\"}", "{\"disk\":\"2g\"}", "", "{\"disk\":\"1500m\"}",
     "{\"disk\":\"1500m\",\"memory\":\"4g\",\"pids\":4096,\"wall_time\":3600}", NULL},
    {"", "", "", "{\"disk\":\"21g\"}", NULL, "'limits.disk'"},
    {"", "", "", "{\"disk\":\"ten\"}", NULL, "'limits.disk'"},
};

static void test_limits_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct limits_case *c = &cases[i];
        kiln_limits_policy_t server, tenant;
        kiln_error_t err = {0};
        json_t *out = NULL, *t = c->tenant[0] ? js(c->tenant) : NULL;
        int r;

        assert_int_equal(server_policy(c->limits, c->max, &server, &err), 0);
        r = kiln_limits_policy_tenant(&server, t, &tenant, &err);
        json_decref(t);
        if (r == 0)
            r = apply(&tenant, c->request, &out, &err);
        if (c->stored == NULL) {
            if (r != -1 || strstr(err.msg, c->names) == NULL) {
                print_error("case %zu: want a refusal naming %s, got %d (%s)\n", i, c->names, r,
                            err.msg);
                fail();
            }
            continue;
        }
        if (r != 0) {
            print_error("case %zu: refused: %s\n", i, err.msg);
            fail();
        }
        {
            json_t *want = js(c->stored);
            if (!json_equal(want, out)) {
                char *got = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
                print_error("case %zu: stored %s, want %s\n", i, got, c->stored);
                free(got);
                fail();
            }
            json_decref(want);
        }
        json_decref(out);
    }
}

/* Bad server settings are refused naming the key; the command line wins over the config;
 * a queue front end (no builds of its own) adds no built-in defaults. */
static void test_limits_policy(void **state)
{
    kiln_limits_policy_t p = {0};
    kiln_error_t err = {0};
    json_t *l, *m;
    (void)state;

    assert_int_equal(server_policy("{\"memory\":\"lots\"}", "", &p, &err), -1);
    assert_non_null(strstr(err.msg, "limits.memory"));
    assert_int_equal(server_policy("", "{\"pids\":0}", &p, &err), -1);
    assert_non_null(strstr(err.msg, "max_limits.pids"));
    assert_int_equal(server_policy("{\"bogus\":1}", "", &p, &err), -1);
    assert_non_null(strstr(err.msg, "limits.bogus"));
    assert_int_equal(server_policy("[]", "", &p, &err), -1);
    assert_int_equal(server_policy("{\"memory\":\"2g\"}", "{\"memory\":\"1g\"}", &p, &err), -1);
    assert_non_null(strstr(err.msg, "default memory 2g"));
    assert_non_null(strstr(err.msg, "max_limits"));

    /* --build-memory 256m and --build-timeout 60 win over the config */
    memset(&p, 0, sizeof(p));
    assert_int_equal(kiln_limits_opt(&p, KILN_LIMITS_OPT_BASE, "256m", &err), 1);
    l = js("{\"memory\":\"1g\",\"wall_time\":900}");
    m = js("{\"memory\":\"2g\"}");
    assert_int_equal(kiln_server_limits_policy(&p, l, m, 1, 60, 1, &err), 0);
    assert_int_equal(p.def.memory, 256 * MIB);
    assert_int_equal(p.max.memory, 2 * GIB);
    assert_int_equal(p.def.wall_time, 60);
    assert_int_equal(p.def.pids, KILN_LIMITS_BUILTIN_PIDS);
    /* a queue front end: only what is configured */
    memset(&p, 0, sizeof(p));
    assert_int_equal(kiln_server_limits_policy(&p, l, m, 0, 3600, 0, &err), 0);
    assert_int_equal(p.def.memory, GIB);
    assert_int_equal(p.def.pids, 0);
    assert_int_equal(p.def.wall_time, 900);
    json_decref(l);
    json_decref(m);
    /* --build-timeout 0: no wall time at all */
    memset(&p, 0, sizeof(p));
    assert_int_equal(kiln_server_limits_policy(&p, NULL, NULL, 1, 0, 1, &err), 0);
    assert_int_equal(p.def.wall_time, 0);
    assert_int_equal(p.max.wall_time, 0);
}

/* The wall time of a stored request: the smallest of the runner's cap, limits.wall_time and
 * timeout_seconds. */
static void test_limits_wall_time(void **state)
{
    json_t *r = js("{\"limits\":{\"wall_time\":900},\"timeout_seconds\":1200}");
    (void)state;
    assert_int_equal(kiln_limits_wall_time(r, 3600), 900);
    assert_int_equal(kiln_limits_wall_time(r, 600), 600);
    assert_int_equal(kiln_limits_wall_time(r, 0), 900);
    json_object_set_new(r, "timeout_seconds", json_integer(30));
    assert_int_equal(kiln_limits_wall_time(r, 0), 30);
    json_decref(r);
    r = json_object();
    assert_int_equal(kiln_limits_wall_time(r, 0), 0);
    json_decref(r);
}

/* Runs the scheduler like the worker pool does: `workers` slots, builds queued per tenant,
 * each started build running until `finish_every` more have started. Writes the order of
 * starts (one letter per tenant) to order. */
static void simulate(kiln_sched_tenant_t *t, size_t n, int workers, size_t starts, char *order)
{
    char last[32] = "";
    int running[64] = {0}, slots = 0; /* tenant index of each running build, oldest first */

    for (size_t k = 0; k < starts; k++) {
        int i;
        if (slots == workers) {
            /* the oldest running build finishes */
            t[running[0]].running--;
            memmove(running, running + 1, (size_t)(slots - 1) * sizeof(int));
            slots--;
        }
        i = kiln_sched_pick(t, n, last);
        if (i < 0) {
            order[k] = '\0';
            return;
        }
        order[k] = t[i].name[0];
        t[i].queued--;
        t[i].running++;
        running[slots++] = i;
        strcpy(last, t[i].name);
    }
    order[starts] = '\0';
}

static void test_sched_order(void **state)
{
    char order[64];
    (void)state;

    /* a flood of 50 from one tenant, one build from another: the other starts on the next
     * free slot, not after the 50 */
    {
        kiln_sched_tenant_t t[] = {{"acme", 50, 0, 0}, {"beta", 1, 0, 0}};
        simulate(t, 2, 1, 5, order);
        assert_string_equal(order, "abaaa");
    }
    /* round robin in name order among tenants with queued builds */
    {
        kiln_sched_tenant_t t[] = {{"cyan", 3, 0, 0}, {"acme", 3, 0, 0}, {"blue", 1, 0, 0}};
        simulate(t, 3, 2, 7, order);
        assert_string_equal(order, "abcacac");
    }
    /* nothing queued: nothing starts */
    {
        kiln_sched_tenant_t t[] = {{"acme", 0, 2, 0}};
        assert_int_equal(kiln_sched_pick(t, 1, NULL), -1);
        assert_int_equal(kiln_sched_pick(t, 0, NULL), -1);
    }
    /* last no longer among the tenants: the next name after it */
    {
        kiln_sched_tenant_t t[] = {{"acme", 1, 0, 0}, {"cyan", 1, 0, 0}};
        assert_int_equal(kiln_sched_pick(t, 2, "beta"), 1);
        assert_int_equal(kiln_sched_pick(t, 2, "zulu"), 0);
        assert_int_equal(kiln_sched_pick(t, 2, ""), 0);
    }
}

static void test_sched_max_concurrent(void **state)
{
    char order[64];
    (void)state;

    /* acme may run 1 at a time: with 3 workers, beta fills the other slots */
    {
        kiln_sched_tenant_t t[] = {{"acme", 10, 0, 1}, {"beta", 10, 0, 0}};
        assert_int_equal(kiln_sched_pick(t, 2, "acme"), 1);
        t[0].running = 1;
        assert_int_equal(kiln_sched_pick(t, 2, "beta"), 1);
        t[1].queued = 0;
        assert_int_equal(kiln_sched_pick(t, 2, "beta"), -1);
    }
    /* never more than max_concurrent at once, whatever the order of finishing */
    {
        kiln_sched_tenant_t t[] = {{"acme", 20, 0, 2}, {"beta", 3, 0, 0}};
        char last[8] = "";
        for (int k = 0; k < 10; k++) {
            int i = kiln_sched_pick(t, 2, last);
            if (i < 0)
                break;
            t[i].queued--;
            t[i].running++;
            strcpy(last, t[i].name);
            assert_true(t[0].running <= 2);
        }
        assert_int_equal(t[0].running, 2);
        assert_int_equal(t[1].running, 3);
    }
    /* a lone tenant at its max waits even with free workers */
    {
        kiln_sched_tenant_t t[] = {{"acme", 5, 0, 2}};
        simulate(t, 1, 4, 4, order);
        assert_string_equal(order, "aa");
    }
}

/* The store's side of the scheduler: the load of each tenant (queued, running; "default"
 * for a build whose request names none) and a claim within one tenant. */
static void test_db_tenant_claim(void **state)
{
    char dir[] = "/tmp/kiln-sched-XXXXXX", path[64];
    kiln_db_t *db = NULL;
    kiln_db_job_t job = {0};
    kiln_error_t err = {0};
    json_t *load = NULL;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/kiln.db", dir);
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    assert_int_equal(kiln_db_build_insert(db, "a1", "r", "{\"tenant\":\"acme\"}", NULL, NULL, &err),
                     0);
    assert_int_equal(kiln_db_build_insert(db, "a2", "r", "{\"tenant\":\"acme\"}", NULL, NULL, &err),
                     0);
    assert_int_equal(kiln_db_build_insert(db, "b1", "r", "{\"tenant\":\"beta\"}", NULL, NULL, &err),
                     0);
    assert_int_equal(kiln_db_build_insert(db, "d1", "r", "{}", NULL, NULL, &err), 0);

    assert_int_equal(kiln_db_claim_tenant(db, "beta", NULL, &job, &err), 1);
    assert_string_equal(job.id, "b1");
    kiln_db_job_free(&job);
    assert_int_equal(kiln_db_claim_tenant(db, "beta", NULL, &job, &err), 0);
    assert_int_equal(kiln_db_claim_tenant(db, "acme", NULL, &job, &err), 1);
    assert_string_equal(job.id, "a1");
    kiln_db_job_free(&job);

    assert_int_equal(kiln_db_tenant_load(db, &load, &err), 0);
    assert_int_equal(json_object_size(load), 3);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(load, "acme"), 0)), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(load, "acme"), 1)), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(load, "beta"), 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(load, "beta"), 1)), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(load, "default"), 0)), 1);
    json_decref(load);

    assert_int_equal(kiln_db_claim_tenant(db, "default", NULL, &job, &err), 1);
    assert_string_equal(job.id, "d1");
    kiln_db_job_free(&job);
    kiln_db_close(db);
    assert_int_equal(kiln_fs_rm_rf(dir, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_table),         cmocka_unit_test(test_limits_policy),
        cmocka_unit_test(test_limits_wall_time),     cmocka_unit_test(test_sched_order),
        cmocka_unit_test(test_sched_max_concurrent), cmocka_unit_test(test_db_tenant_claim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
