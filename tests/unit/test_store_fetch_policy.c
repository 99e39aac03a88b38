/* Unit tests for the store handle's lazy fetch policy (oci/store_lazy.h,
 * kiln_store_set_fetch_policy): the fetcher sees the policy of the handle that asks for the
 * bytes (none: NULL, the registry client's default), a copy that outlives the caller's, each
 * set replacing the last; a refused fetch keeps no blob; the close frees the copy. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/store.h"
#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/netpolicy.h"

/* The mode of the policy the last fetch saw (-1: none) and how many fetches ran. */
static int seen_mode;
static int fetches;

/* A fetcher that notes the handle's policy and refuses, as a refused address would. */
static int policy_fetch(kiln_store_t *s, const kiln_digest_t *d, const kiln_store_lazy_t *l,
                        kiln_error_t *err)
{
    const kiln_netpolicy_t *p = kiln_store_fetch_policy(s);
    (void)l;
    fetches++;
    seen_mode = p ? (int)kiln_netpolicy_mode(p) : -1;
    return kiln_error_set(err, EACCES, "blob %s: refused by the address policy", d->hex);
}

/* Sets a fresh policy of mode m on s and frees the caller's at once: the handle's is a copy. */
static void set_mode(kiln_store_t *s, kiln_netpolicy_mode_t m)
{
    kiln_netpolicy_t *p = kiln_netpolicy_new(m);
    kiln_store_set_fetch_policy(s, p);
    kiln_netpolicy_free(p);
}

/* Opens d through s (a lazy fetch that fails): the mode the fetcher saw. */
static int fetch_mode(kiln_store_t *s, const kiln_digest_t *d)
{
    kiln_error_t err = {0};
    int fd = -1;
    seen_mode = -2;
    assert_int_equal(kiln_store_open_blob(s, d, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "refused by the address policy"));
    assert_non_null(strstr(err.msg, d->hex));
    assert_int_equal(kiln_store_has(s, d, NULL), 0);
    return seen_mode;
}

static void test_fetch_policy(void **state)
{
    _cleanup_free_ char *root = NULL;
    kiln_store_t *s = NULL, *other = NULL;
    kiln_error_t err = {0};
    kiln_digest_t d;
    (void)state;

    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-fetchpol.", &root, NULL), 0);
    kiln_digest_bytes("lazy", 4, &d);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_open(root, &other, &err), 0);
    assert_int_equal(kiln_store_lazy_note(s, &d, 4, 0, "src", NULL, &err), 0);
    kiln_store_set_fetcher(policy_fetch);
    fetches = 0;
    /* none set: the default */
    assert_null(kiln_store_fetch_policy(s));
    assert_int_equal(fetch_mode(s, &d), -1);
    /* the asker's policy, per handle: another handle on the root keeps the default */
    set_mode(s, KILN_NETPOLICY_PUBLIC);
    assert_int_equal(fetch_mode(s, &d), KILN_NETPOLICY_PUBLIC);
    assert_int_equal(fetch_mode(other, &d), -1);
    /* a set replaces the last; NULL goes back to the default */
    set_mode(s, KILN_NETPOLICY_NO_LINK_LOCAL);
    assert_int_equal(fetch_mode(s, &d), KILN_NETPOLICY_NO_LINK_LOCAL);
    kiln_store_set_fetch_policy(s, NULL);
    assert_int_equal(fetch_mode(s, &d), -1);
    assert_int_equal(fetches, 5);
    /* left set at the close: freed with the handle (ASan's leak check) */
    set_mode(s, KILN_NETPOLICY_PUBLIC);
    kiln_store_close(other);
    kiln_store_close(s);
    kiln_store_set_fetcher(NULL);
    kiln_fs_rm_rf(root, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
