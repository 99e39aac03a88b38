/* Unit tests: engine/regcache — the registry cache image's bound (least recently saved ids
 * left out first, packs counted once) and its checks of an image read from a registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/regcache.h"

#define P(c) "\"sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c "\""

static json_t *load(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    return j;
}

/* Three ids of 100 bytes each (one pack shared by two ids counts once): the oldest goes
 * first, an id without a time is older than any, ties by name. */
static void test_evict_order(void **state)
{
    json_t *mounts = load("{\"m/a\": {\"blobs\": [[" P(
        "aa") ", 100]]},"
              " \"m/b\": {\"blobs\": [[" P("bb") ", 100]]},"
                                                 " \"m/c\": {\"blobs\": [[" P("cc") ", 100], [" P(
                                                     "bb") ", 100]]},"
                                                           " \"m/d\": {\"blobs\": [[" P(
                                                               "dd") ", 100]]}}");
    json_t *saved = load("{\"m/a\": 30, \"m/b\": 10, \"m/c\": 20}");
    uint64_t left = 0;
    (void)state;

    assert_int_equal(kiln_regcache_mounts_bytes(mounts), 400);
    assert_int_equal(kiln_regcache_evict(mounts, saved, 400, &left), 0);
    assert_int_equal(left, 400);
    /* d has no time: the oldest */
    assert_int_equal(kiln_regcache_evict(mounts, saved, 399, &left), 1);
    assert_null(json_object_get(mounts, "m/d"));
    assert_int_equal(left, 300);
    /* b (10) goes; its pack is still c's: 300 -> 300, so c (20) goes too */
    assert_int_equal(kiln_regcache_evict(mounts, saved, 150, &left), 2);
    assert_non_null(json_object_get(mounts, "m/a"));
    assert_null(json_object_get(saved, "m/b"));
    assert_int_equal(left, 100);
    assert_int_equal(kiln_regcache_evict(mounts, saved, 0, &left), 1);
    assert_int_equal(json_object_size(mounts), 0);
    json_decref(mounts);
    json_decref(saved);
}

static void test_saved_of(void **state)
{
    json_t *mounts = load("{\"m/a\": {}, \"m/b\": {}}");
    json_t *saved = load("{\"m/a\": 5, \"m/x\": 6, \"m/b\": \"no\"}");
    json_t *out = kiln_regcache_saved_of(mounts, saved);
    (void)state;
    assert_int_equal(json_object_size(out), 1);
    assert_int_equal(json_integer_value(json_object_get(out, "m/a")), 5);
    json_decref(out);
    json_decref(mounts);
    json_decref(saved);
}

/* The checks: a well-formed image passes; each defect is refused naming it. */
static void test_check(void **state)
{
    static const struct {
        const char *man, *cfg, *msg;
    } cases[] = {
        {"{\"layers\": [{\"mediaType\": \"application/vnd.kiln.cachemount.pack.v1\", "
         "\"digest\": " P("aa") ", \"size\": 5}]}",
         "{\"kiln.cache.v1\": {}, \"kiln.mounts.v1\": {\"m/a\": {\"blobs\": [[" P(
             "aa") ", 5]]}}, "
                   "\"kiln.mounts.saved.v1\": {\"m/a\": 1}}",
         NULL},
        {"{\"layers\": [{\"mediaType\": \"application/vnd.kiln.cachemount.pack.v1\", "
         "\"digest\": " P("aa") ", \"size\": -5}]}",
         "{}", "declares size out of range"},
        {"{\"layers\": [{\"mediaType\": \"application/vnd.kiln.cachemount.pack.v1\", "
         "\"digest\": " P("aa") ", \"size\": 16777217}]}",
         "{}", "a cache mount pack must be 0 to 16777216 bytes"},
        {"{\"layers\": [{\"mediaType\": \"x\", \"digest\": " P("aa") ", \"size\": \"5\"}]}", "{}",
         "that is no number"},
        {"{\"layers\": [{\"mediaType\": \"x\", \"digest\": \"md5:00\", \"size\": 5}]}", "{}",
         "layers[0] has no valid digest"},
        {"{\"layers\": [{\"mediaType\": \"x\", \"digest\": " P("aa") ", \"size\": 5, \"urls\": "
                                                                     "[\"http://x\"]}]}",
         "{}", "names urls"},
        {"{\"layers\": []}", "{\"kiln.mounts.v1\": {\"m/a\": {\"blobs\": [[" P("bb") ", 5]]}}}",
         "cache mount m/a names pack sha256:bbbb"},
        {"{\"layers\": []}",
         "{\"kiln.cache.v1\": {\"k1\": {\"layer\": {\"digest\": " P("cc") ", \"size\": 1}}}}",
         "cache entry k1 names layer sha256:cccc"},
        {"{\"layers\": []}", "{\"kiln.mounts.saved.v1\": {\"m/a\": -1}}", "is not a time"},
        {"{\"manifests\": []}", "{}", "an image index"},
        {"{\"layers\": []}", "{\"kiln.mounts.v1\": []}", "must be objects"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *man = load(cases[i].man), *cfg = load(cases[i].cfg);
        kiln_error_t err = {0};
        int r = kiln_regcache_check("reg/c:1", man, cfg, &err);
        if (cases[i].msg == NULL) {
            assert_int_equal(r, 0);
        } else {
            assert_int_equal(r, -1);
            if (strstr(err.msg, cases[i].msg) == NULL || strstr(err.msg, "reg/c:1") == NULL)
                fail_msg("case %zu: %s", i, err.msg);
        }
        json_decref(man);
        json_decref(cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evict_order),
        cmocka_unit_test(test_saved_of),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
