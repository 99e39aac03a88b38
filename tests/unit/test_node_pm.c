/* Unit tests for handlers/node_pm (packageManager parsed with corepack's rules, the release
 * line a pnpm or Berry lockfile implies) and job/toolchain's packageManager hash check
 * (hashes of a release, a mismatch naming the manager, version and both hashes, the one
 * file of an npm tarball a Yarn 2+ hash is of). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "handlers/node_pm.h"
#include "handlers/plan.h"
#include "job/toolchain.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define SHA512_ABC                                                                                 \
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3f"  \
    "eebbd454d4423643ce80e2a9ac94fa54ca49f"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA1_ABC "a9993e364706816aba3e25717850c26c9cd0d89d"

/* `field` parses to manager/version/hash (manager NULL: not a known manager, r 0). */
static void parses(const char *field, const char *manager, const char *version, const char *hash)
{
    kiln_node_pm_field_t f;
    kiln_error_t err = {0};
    int r = kiln_node_pm_parse(field, &f, &err);

    if (r < 0)
        fail_msg("\"%s\": %s", field, err.msg);
    assert_int_equal(r, manager ? 1 : 0);
    if (manager) {
        assert_string_equal(f.manager, manager);
        assert_string_equal(f.version, version);
        if (hash)
            assert_string_equal(f.hash, hash);
        else
            assert_null(f.hash);
    }
    kiln_node_pm_field_release(&f);
}

/* `field` is refused with a message holding `msg` and the field itself. */
static void refused(const char *field, const char *msg)
{
    kiln_node_pm_field_t f;
    kiln_error_t err = {0};

    assert_int_equal(kiln_node_pm_parse(field, &f, &err), -1);
    if (strstr(err.msg, msg) == NULL || strstr(err.msg, "packageManager") == NULL)
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", field, err.msg, msg);
    assert_null(f.manager);
}

static void test_parse(void **state)
{
    (void)state;
    parses("pnpm@9.15.9", "pnpm", "9.15.9", NULL);
    parses("yarn@1.22.22", "yarn", "1.22.22", NULL);
    parses("yarn@4.5.3", "yarn-berry", "4.5.3", NULL);
    parses("yarn@2.4.3", "yarn-berry", "2.4.3", NULL);
    parses("bun@1.2.23", "bun", "1.2.23", NULL);
    parses("npm@10.9.0", "npm", "10.9.0", NULL);
    parses("pnpm@10.0.0-rc.1", "pnpm", "10.0.0-rc.1", NULL);
    parses("pnpm@9.15.0+sha512." SHA512_ABC, "pnpm", "9.15.0", "sha512." SHA512_ABC);
    parses("yarn@1.22.22+sha256." SHA256_ABC, "yarn", "1.22.22", "sha256." SHA256_ABC);
    parses("yarn@4.5.3+sha1." SHA1_ABC, "yarn-berry", "4.5.3", "sha1." SHA1_ABC);
    /* another tool's field, or none at all, is not a package manager kiln fetches */
    parses("deno@2.0.0", NULL, NULL, NULL);
    parses("pnpm", NULL, NULL, NULL);
    parses("pnpmx@1.0.0", NULL, NULL, NULL);
}

static void test_parse_refused(void **state)
{
    (void)state;
    /* corepack needs an exact release; nothing shell-like passes */
    refused("pnpm@9", "plain version");
    refused("pnpm@", "plain version");
    refused("pnpm@latest", "plain version");
    refused("pnpm@^9.1.0", "plain version");
    refused("pnpm@v9.1.0", "plain version");
    refused("pnpm@9.1.0;curl evil", "plain version");
    refused("pnpm@9.1.0 && id", "plain version");
    refused("yarn@https://example.com/yarn.js", "plain version");
    /* the part after '+' is a known algorithm and its digest's length of lowercase hex */
    refused("pnpm@9.1.0+sha512.abc", "not a hash");
    refused("pnpm@9.1.0+md5.900150983cd24fb0d6963f7d28e17f72", "not a hash");
    refused("pnpm@9.1.0+sha256.BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
            "not a hash");
    refused("pnpm@9.1.0+sha256." SHA256_ABC "00", "not a hash");
    refused("pnpm@9.1.0+", "not a hash");
}

static void test_lockfile_lines(void **state)
{
    (void)state;
    assert_string_equal(kiln_node_pm_pnpm_line("lockfileVersion: '9.0'\n\nsettings:\n"), "9");
    assert_string_equal(kiln_node_pm_pnpm_line("lockfileVersion: \"6.0\"\n"), "8");
    assert_string_equal(kiln_node_pm_pnpm_line("lockfileVersion: '6.1'\n"), "8");
    assert_string_equal(kiln_node_pm_pnpm_line("lockfileVersion: 5.4\n"), "7");
    assert_string_equal(kiln_node_pm_pnpm_line("lockfileVersion: 5.3\n"), "6");
    assert_string_equal(kiln_node_pm_pnpm_line("lockfileVersion: 5.1\n"), "5");
    assert_string_equal(kiln_node_pm_pnpm_line("settings:\n  x: 1\n"), "9");
    assert_string_equal(kiln_node_pm_pnpm_line(NULL), "9");
    /* an indented key is some package's, not the lockfile's */
    assert_string_equal(kiln_node_pm_pnpm_line("packages:\n  lockfileVersion: 5.4\n"), "9");

    assert_string_equal(kiln_node_pm_berry_line("# generated\n\n__metadata:\n  version: 8\n  "
                                                "cacheKey: 10c0\n\n\"ms@npm:2.1.3\":\n"),
                        "4");
    assert_string_equal(kiln_node_pm_berry_line("__metadata:\n  version: 6\n  cacheKey: 8\n"), "3");
    assert_string_equal(kiln_node_pm_berry_line("x\n__metadata:\n  version: 5\n"), "3");
    assert_string_equal(kiln_node_pm_berry_line("x\n__metadata:\n  version: 4\n"), "2");
    /* a package's own "version:" below a __metadata without one is not the lockfile's */
    assert_string_equal(kiln_node_pm_berry_line("__metadata:\n  cacheKey: 8\n\n\"ms@npm:2.1.3\":\n"
                                                "  version: 2.1.3\n"),
                        "4");
    assert_string_equal(kiln_node_pm_berry_line(NULL), "4");
}

static void test_hashes(void **state)
{
    _cleanup_free_ char *rec = kiln_toolchain_hashes("abc", 3);
    (void)state;

    assert_non_null(strstr(rec, "sha1." SHA1_ABC "\n"));
    assert_non_null(strstr(rec, "sha256." SHA256_ABC "\n"));
    assert_non_null(strstr(rec, "sha512." SHA512_ABC "\n"));
    assert_non_null(strstr(rec, "sha224."));
}

static void test_hash_check(void **state)
{
    _cleanup_free_ char *rec = kiln_toolchain_hashes("abc", 3);
    kiln_plan_tool_t t = {.name = "pnpm", .package = "pnpm"};
    kiln_error_t err = {0};
    (void)state;

    /* no hash asked: nothing to check */
    assert_int_equal(kiln_toolchain_hash_check(&t, "9.15.0", rec, &err), 0);
    t.hash = "sha512." SHA512_ABC;
    assert_int_equal(kiln_toolchain_hash_check(&t, "9.15.0", rec, &err), 0);
    t.hash = "sha1." SHA1_ABC;
    assert_int_equal(kiln_toolchain_hash_check(&t, "9.15.0", rec, &err), 0);
    /* a mismatch names the manager, the version and both hashes */
    t.hash = "sha256.0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(kiln_toolchain_hash_check(&t, "9.15.0", rec, &err), -1);
    assert_non_null(strstr(err.msg, "packageManager pnpm@9.15.0"));
    assert_non_null(strstr(err.msg, "hashes to sha256." SHA256_ABC));
    assert_non_null(strstr(err.msg, "names "
                                    "sha256.0000000000000000000000000000000000000000"
                                    "000000000000000000000000"));
    assert_non_null(strstr(err.msg, "refused, nothing installed"));
    assert_non_null(strstr(err.msg, "tarball of pnpm@9.15.0"));
    /* Yarn 2+: the hash is of its one file, named in the message */
    t.name = "yarn";
    t.package = "@yarnpkg/cli-dist";
    t.hash_file = "bin/yarn.js";
    assert_int_equal(kiln_toolchain_hash_check(&t, "4.5.3", rec, &err), -1);
    assert_non_null(strstr(err.msg, "packageManager yarn@4.5.3"));
    assert_non_null(strstr(err.msg, "bin/yarn.js of @yarnpkg/cli-dist@4.5.3"));
    /* a record without that algorithm (a copy recorded by something else) is no match */
    t.hash = "sha512." SHA512_ABC;
    assert_int_equal(kiln_toolchain_hash_check(&t, "4.5.3", "sha1." SHA1_ABC "\n", &err), -1);
    assert_non_null(strstr(err.msg, "no sha512 hash"));
}

/* An npm-style tarball (package/ prefix; uncompressed: the reader takes both) in memory: a
 * file and a symlink. */
static char *tarball(size_t *len)
{
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    size_t cap = 1 << 16, used = 0;
    char *buf = kiln_xmalloc(cap);

    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    archive_entry_set_pathname(e, "package/bin/yarn.js");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 3);
    archive_write_header(a, e);
    archive_write_data(a, "abc", 3);
    archive_entry_clear(e);
    archive_entry_set_pathname(e, "package/bin/link.js");
    archive_entry_set_filetype(e, AE_IFLNK);
    archive_entry_set_symlink(e, "/etc/passwd");
    archive_write_header(a, e);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    *len = used;
    return buf;
}

static void test_tar_file(void **state)
{
    size_t len = 0, n = 0;
    _cleanup_free_ char *tgz = tarball(&len), *out = NULL;
    _cleanup_free_ char *rec = NULL;
    kiln_error_t err = {0};
    (void)state;

    assert_int_equal(kiln_toolchain_tar_file(tgz, len, "bin/yarn.js", &out, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "abc", 3);
    rec = kiln_toolchain_hashes(out, n);
    assert_non_null(strstr(rec, "sha512." SHA512_ABC));
    free(out);
    out = NULL;
    /* a link's target is never read, a missing file is an error */
    assert_int_equal(kiln_toolchain_tar_file(tgz, len, "bin/link.js", &out, &n, &err), -1);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_null(out);
    assert_int_equal(kiln_toolchain_tar_file(tgz, len, "bin/none.js", &out, &n, &err), -1);
    assert_non_null(strstr(err.msg, "not in the package"));
    assert_int_equal(kiln_toolchain_tar_file("junk", 4, "bin/yarn.js", &out, &n, &err), -1);
}

/* A plan's toolchain.with goes through its JSON form and back (a --plan file is read back). */
static void test_plan_json(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = kiln_plan_new(), *q = NULL;
    _cleanup_free_ char *json = NULL;
    kiln_plan_tool_t t = {.name = "yarn",
                          .package = "@yarnpkg/cli-dist",
                          .version = "4.5.3",
                          .hash = "sha512." SHA512_ABC,
                          .hash_file = "bin/yarn.js",
                          .lib = true};
    kiln_error_t err = {0};
    (void)state;

    kiln_plan_set(&p->provider, "node");
    kiln_plan_set(&p->toolchain.name, "node");
    kiln_plan_set(&p->toolchain.version, "26");
    kiln_plan_tool_set(&p->toolchain.with, &t);
    assert_int_equal(kiln_plan_to_json(p, &json, &err), 0);
    assert_int_equal(kiln_plan_from_json(json, strlen(json), &q, &err), 0);
    assert_string_equal(q->toolchain.with.name, "yarn");
    assert_string_equal(q->toolchain.with.package, "@yarnpkg/cli-dist");
    assert_string_equal(q->toolchain.with.version, "4.5.3");
    assert_string_equal(q->toolchain.with.hash, "sha512." SHA512_ABC);
    assert_string_equal(q->toolchain.with.hash_file, "bin/yarn.js");
    assert_null(q->toolchain.with.integrity);
    assert_true(q->toolchain.with.lib);
    /* cleared: nothing of it left */
    kiln_plan_tool_set(&q->toolchain.with, NULL);
    assert_null(q->toolchain.with.package);
    assert_false(q->toolchain.with.lib);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),          cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_lockfile_lines), cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_hash_check),     cmocka_unit_test(test_tar_file),
        cmocka_unit_test(test_plan_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
