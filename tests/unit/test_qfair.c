/* Unit tests for the queue's fair pick across tenants (src/server/qfair.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/server/qfair.h"

/* A batch: the first message of the tenant after `last` in name order, wrapping around. */
static void test_pick_round_robin(void **state)
{
    (void)state;
    const char *b[] = {"acme", "acme", "cyan", "beta", "acme"};

    assert_int_equal(kiln_qfair_pick(b, NULL, 5, NULL), 0);   /* acme: the first name */
    assert_int_equal(kiln_qfair_pick(b, NULL, 5, "acme"), 3); /* beta, behind acme's two */
    assert_int_equal(kiln_qfair_pick(b, NULL, 5, "beta"), 2);
    assert_int_equal(kiln_qfair_pick(b, NULL, 5, "cyan"), 0); /* wraps around */
    assert_int_equal(kiln_qfair_pick(b, NULL, 5, "zulu"), 0);
    assert_int_equal(kiln_qfair_pick(b, NULL, 5, "bz"), 2); /* last need not be in the batch */
}

/* One tenant only: its first message, whoever was served last (work is never held back). */
static void test_pick_one_tenant(void **state)
{
    (void)state;
    const char *b[] = {"acme", "acme"};

    assert_int_equal(kiln_qfair_pick(b, NULL, 2, "acme"), 0);
    assert_int_equal(kiln_qfair_pick(b, NULL, 0, NULL), -1);
}

/* NULL is tenant default; skipped messages (a tenant at its max_concurrent) are passed over. */
static void test_pick_default_and_skip(void **state)
{
    (void)state;
    const char *b[] = {NULL, "acme", NULL, "beta"};
    unsigned char skip[] = {0, 1, 0, 0};
    unsigned char all[] = {1, 1, 1, 1};

    assert_int_equal(kiln_qfair_pick(b, NULL, 4, "beta"), 0); /* "default" after beta */
    assert_int_equal(kiln_qfair_pick(b, skip, 4, NULL), 3);   /* acme skipped: beta */
    assert_int_equal(kiln_qfair_pick(b, skip, 4, "beta"), 0);
    assert_int_equal(kiln_qfair_pick(b, all, 4, NULL), -1);
}

/* A flood of one tenant ahead of another's single job, as a worker sees it: each turn it
 * takes one and hands the rest back to the end of the queue. The single job starts on the
 * second turn, not after the flood. */
static void test_flood_simulation(void **state)
{
    (void)state;
    const char *queue[32];
    size_t n = 0, turn, lone_turn = 0;
    char *last = NULL;

    for (int i = 0; i < 20; i++)
        queue[n++] = "acme";
    queue[n++] = "beta";
    for (turn = 1; n > 0 && lone_turn == 0; turn++) {
        size_t batch = n < KILN_QFAIR_BATCH ? n : KILN_QFAIR_BATCH;
        const char *rest[32];
        size_t m = 0;
        int pick = kiln_qfair_pick(queue, NULL, batch, last);
        assert_true(pick >= 0);
        last = (char *)queue[pick];
        if (strcmp(queue[pick], "beta") == 0)
            lone_turn = turn;
        /* unreceived messages first, then the batch's others (made visible again) */
        for (size_t i = batch; i < n; i++)
            rest[m++] = queue[i];
        for (size_t i = 0; i < batch; i++)
            if ((int)i != pick)
                rest[m++] = queue[i];
        memcpy(queue, rest, m * sizeof(*rest));
        n = m;
    }
    assert_true(lone_turn > 0 && lone_turn <= 3);
}

/* The lease prefix comes from the job's done_url (the shared store), per tenant. */
static void test_lease_prefix(void **state)
{
    (void)state;
    char *p = kiln_qfair_lease_prefix("s3://b/store/done/b-1", "b-1", "cyan");

    assert_string_equal(p, "s3://b/store/running/cyan/");
    free(p);
    p = kiln_qfair_lease_prefix("s3://b/done/b-1", "b-1", NULL);
    assert_string_equal(p, "s3://b/running/default/");
    free(p);
    assert_null(kiln_qfair_lease_prefix(NULL, "b-1", "cyan"));
    assert_null(kiln_qfair_lease_prefix("s3://b/store/done/b-2", "b-1", "cyan"));
    assert_null(kiln_qfair_lease_prefix("s3://b/store/cancel/b-1", "b-1", "cyan"));
    assert_null(kiln_qfair_lease_prefix("done/b-1", "b-1", "cyan"));
}

/* A lease is live until its expiry; anything else (a lapsed one, not a lease) is not. */
static void test_lease_live(void **state)
{
    (void)state;
    char *t = kiln_qfair_lease_text(1000.5, "host:1");

    assert_true(kiln_qfair_lease_live(t, 1000.0));
    assert_false(kiln_qfair_lease_live(t, 1000.5));
    assert_false(kiln_qfair_lease_live(t, 2000.0));
    assert_non_null(strstr(t, "host:1"));
    free(t);
    assert_false(kiln_qfair_lease_live("", 0));
    assert_false(kiln_qfair_lease_live(NULL, 0));
    assert_false(kiln_qfair_lease_live("{\"expires\": \"9999999999\"}", 0));
    assert_false(kiln_qfair_lease_live("[1]", 0));
    assert_true(kiln_qfair_lease_live("{\"expires\": 9999999999}", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_round_robin),      cmocka_unit_test(test_pick_one_tenant),
        cmocka_unit_test(test_pick_default_and_skip), cmocka_unit_test(test_flood_simulation),
        cmocka_unit_test(test_lease_prefix),          cmocka_unit_test(test_lease_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
