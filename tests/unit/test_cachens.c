/* Unit tests: cache namespaces (utils/cachens.c): which names are one safe
 * path component, the paths with and without a namespace, the directories'
 * modes, and links or wrong types where a namespace lives refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "utils/cachens.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static void test_check(void **state)
{
    static const char *const good[] = {
        "acme",  "a", "Tenant-1",
        "t_2.x", "0", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    static const char *const bad[] = {
        "",        ".",
        "..",      "../x",
        "a/b",     "/abs",
        ".hidden", "-opt",
        "_x",      "a b",
        "a\n",     "ä",
        "a\\b",    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    kiln_error_t err = {0};
    (void)state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(kiln_cachens_check(good[i], &err), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kiln_cachens_check(bad[i], &err), -1);
        assert_non_null(strstr(err.msg, "cache namespace"));
    }
    assert_int_equal(kiln_cachens_check(NULL, &err), -1);
}

static void test_prefix(void **state)
{
    _cleanup_free_ char *none = kiln_cachens_ref_prefix(NULL);
    _cleanup_free_ char *acme = kiln_cachens_ref_prefix("acme");
    (void)state;
    assert_string_equal(none, "cache/");
    assert_string_equal(acme, "cache/ns/acme/");
}

static char *tmpdir(void)
{
    char tpl[] = "/tmp/kiln-cachens-XXXXXX";
    assert_non_null(mkdtemp(tpl));
    return kiln_xstrdup(tpl);
}

static mode_t mode_of(const char *root, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    struct stat sb;
    assert_int_equal(lstat(p, &sb), 0);
    return sb.st_mode & 07777;
}

static int exists(const char *root, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, rel);
    return access(p, F_OK) == 0;
}

/* The path for (ns, kind) is <root>/<rel>. */
static void expect_path(const char *root, const char *ns, kiln_cachens_kind_t kind, const char *rel)
{
    _cleanup_free_ char *p = NULL;
    _cleanup_free_ char *want = kiln_xasprintf("%s/%s", root, rel);
    kiln_error_t err = {0};
    assert_int_equal(kiln_cachens_path(root, ns, kind, &p, &err), 0);
    assert_string_equal(p, want);
}

/* kiln_cachens_path(root, ns, kind) fails with a message holding msg. */
static void expect_refused(const char *root, const char *ns, kiln_cachens_kind_t kind,
                           const char *msg)
{
    char *p = NULL;
    kiln_error_t err = {0};
    assert_int_equal(kiln_cachens_path(root, ns, kind, &p, &err), -1);
    assert_null(p);
    assert_non_null(strstr(err.msg, msg));
}

static void test_paths(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *acme = kiln_xasprintf("%s/ns/acme", root);
    (void)state;

    /* no namespace: the historical paths, nothing created */
    expect_path(root, NULL, KILN_CACHENS_MOUNTS, "build/cache-mounts");
    expect_path(root, NULL, KILN_CACHENS_GIT, "git");
    expect_path(root, NULL, KILN_CACHENS_STATCACHE, "build/statcache");
    assert_false(exists(root, "ns"));

    /* a namespace: its directories made 0700, the stat cache file not made */
    expect_path(root, "acme", KILN_CACHENS_MOUNTS, "ns/acme/cache-mounts");
    assert_int_equal(mode_of(root, "ns"), 0700);
    assert_int_equal(mode_of(root, "ns/acme"), 0700);
    assert_int_equal(mode_of(root, "ns/acme/cache-mounts"), 0700);
    expect_path(root, "acme", KILN_CACHENS_STATCACHE, "ns/acme/statcache");
    assert_false(exists(root, "ns/acme/statcache"));

    /* an existing wider mode is narrowed */
    assert_int_equal(chmod(acme, 0755), 0);
    expect_path(root, "acme", KILN_CACHENS_GIT, "ns/acme/git");
    assert_int_equal(mode_of(root, "ns/acme"), 0700);
    assert_int_equal(mode_of(root, "ns/acme/git"), 0700);

    /* a bad name never touches the disk */
    expect_refused(root, "../evil", KILN_CACHENS_GIT, "cache namespace '../evil'");
    assert_false(exists(root, "../evil"));
    kiln_fs_rm_rf(root, NULL);
}

static void test_links_refused(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *other = tmpdir();
    _cleanup_free_ char *evil = kiln_xasprintf("%s/ns/evil", root);
    _cleanup_free_ char *acme = kiln_xasprintf("%s/ns/acme", root);
    _cleanup_free_ char *git = kiln_xasprintf("%s/ns/acme/git", root);
    _cleanup_free_ char *plain = kiln_xasprintf("%s/ns/plain", root);
    kiln_error_t err = {0};
    (void)state;

    /* a namespace that is a link (to anywhere): refused, nothing made through it */
    assert_int_equal(kiln_fs_mkdir_p(acme, 0700, &err), 0);
    assert_int_equal(symlink(other, evil), 0);
    expect_refused(root, "evil", KILN_CACHENS_MOUNTS, "ns/evil is not a directory");
    assert_false(exists(other, "cache-mounts"));
    /* a link as the kind's directory, a file as the namespace */
    assert_int_equal(symlink(other, git), 0);
    expect_refused(root, "acme", KILN_CACHENS_GIT, "ns/acme/git is not a directory");
    assert_int_equal(kiln_fs_write_file_atomic(plain, "x", 1, 0600, &err), 0);
    expect_refused(root, "plain", KILN_CACHENS_STATCACHE, "ns/plain is not a directory");
    assert_int_equal(access(other, F_OK), 0);
    kiln_fs_rm_rf(root, NULL);
    kiln_fs_rm_rf(other, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_links_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
