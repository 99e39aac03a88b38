/* Unit tests for the Go provider's pieces: go.mod lines (handlers/go_mod),
 * Go version names, their order and the choice of a release
 * (handlers/go_release), and the h1 dirhash of a module zip (utils/dirhash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "handlers/go_mod.h"
#include "handlers/go_release.h"
#include "utils/dirhash.h"
#include "utils/error.h"

static int parse(const char *text, kiln_gomod_t *m, kiln_error_t *err)
{
    memset(err, 0, sizeof(*err));
    return kiln_gomod_parse(text, strlen(text), m, err);
}

static void test_gomod_lines(void **state)
{
    kiln_gomod_t m;
    kiln_error_t err;
    (void)state;

    assert_int_equal(parse("// a comment\nmodule \"example.com/a/api/v2\" // trailing\n\n"
                           "go 1.23 // min\n\ntoolchain go1.24.2\n"
                           "require (\n\tgo 1.99 // not a directive inside a block\n"
                           "\tgithub.com/x/y v1.0.0\n)\n",
                           &m, &err),
                     0);
    assert_string_equal(m.module, "example.com/a/api/v2");
    assert_string_equal(m.go, "1.23");
    assert_int_equal(m.go_line, 4);
    assert_string_equal(m.toolchain, "1.24.2");
    assert_int_equal(m.toolchain_line, 6);
    assert_true(m.has_require);
    kiln_gomod_free(&m);

    assert_int_equal(parse("module x\r\ngo 1.19\r\ntoolchain default\r\n", &m, &err), 0);
    assert_string_equal(m.go, "1.19");
    assert_null(m.toolchain);
    assert_false(m.has_require);
    kiln_gomod_free(&m);

    /* more than 3 words on a line (the fuzzer's first find: only 3 are kept) */
    assert_int_equal(parse("module x\nreplace a b c d e (\n", &m, &err), 0);
    kiln_gomod_free(&m);
    assert_int_equal(parse("module x\nrequire github.com/a/b v1.2.3\n", &m, &err), 0);
    assert_null(m.go);
    assert_true(m.has_require);
    kiln_gomod_free(&m);
}

static void test_gomod_errors(void **state)
{
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"go 1.21\n", "go.mod: no module line"},
        {"module x\ntoolchain go1.27.3/../../../etc\n",
         "go.mod line 2: toolchain \"go1.27.3/../../../etc\" is not a Go release name"},
        {"module x\ntoolchain go1.27.3.linux-amd64.zip?x=1#\n",
         "go.mod line 2: toolchain \"go1.27.3.linux-amd64.zip?x=1#\" is not a Go release name"},
        {"module x\ntoolchain https://evil.example/go.zip\n",
         "go.mod line 2: toolchain \"https://evil.example/go.zip\" is not a Go release name"},
        {"module x\n\ngo 1.21 1.22\n", "go.mod line 3: go \"1.21\" is not a Go version"},
        {"module x\ngo 1.21\ngo 1.22\n", "go.mod line 3: a second go line (the first is line 2)"},
        {"module x\ngo 01.21\n", "go.mod line 2: go \"01.21\" is not a Go version"},
        {"module x\ngo 1.21.0-custom\n", "is not a Go version"},
        {"module x\ngo 1.99999\n", "is not a Go version"},
        {"module ../../etc\n", "go.mod line 1: module \"../../etc\" is not a module path"},
        {"module a\x01"
         "b\n",
         "go.mod line 1: module \"a?b\" is not a module path"},
    };
    kiln_gomod_t m;
    kiln_error_t err;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i].text, &m, &err), -1);
        if (strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].msg);
    }
    /* a NUL byte inside the text */
    memset(&err, 0, sizeof(err));
    assert_int_equal(kiln_gomod_parse("module x\0go 1.2\n", 16, &m, &err), -1);
    assert_non_null(strstr(err.msg, "NUL"));
}

static void test_versions(void **state)
{
    (void)state;
    assert_true(kiln_go_version_valid("1.23"));
    assert_true(kiln_go_version_valid("1.21rc1"));
    assert_true(kiln_go_version_valid("1.21beta2"));
    assert_true(kiln_go_version_valid("1.27.3"));
    assert_false(kiln_go_version_valid("2.0"));
    assert_false(kiln_go_version_valid("1"));
    assert_false(kiln_go_version_valid("1.2.3.4"));
    assert_false(kiln_go_version_valid("1.2x"));
    assert_false(kiln_go_version_valid("1.27.3/.."));
    assert_false(kiln_go_version_valid(""));
    assert_true(kiln_go_version_is_release("1.27.3"));
    assert_true(kiln_go_version_is_release("1.20")); /* before 1.21 */
    assert_false(kiln_go_version_is_release("1.21"));
    assert_false(kiln_go_version_is_release("1.21rc1"));
    /* 1.21 < 1.21beta1 < 1.21rc1 < 1.21rc2 < 1.21.0 < 1.21.1 < 1.22 */
    const char *order[] = {"1.20",   "1.21",   "1.21beta1", "1.21rc1", "1.21rc2",
                           "1.21.0", "1.21.1", "1.21.10",   "1.22"};
    for (size_t i = 0; i + 1 < sizeof(order) / sizeof(order[0]); i++) {
        assert_true(kiln_go_version_cmp(order[i], order[i + 1]) < 0);
        assert_true(kiln_go_version_cmp(order[i + 1], order[i]) > 0);
        assert_int_equal(kiln_go_version_cmp(order[i], order[i]), 0);
    }
    /* the table is newest first, valid releases, each with an h1 */
    for (const kiln_go_release_t *r = kiln_go_releases; r->version; r++) {
        assert_true(kiln_go_version_is_release(r->version));
        assert_int_equal(strncmp(r->h1, "h1:", 3), 0);
        assert_int_equal(strlen(r->h1), 3 + 44);
        if (r[1].version)
            assert_true(kiln_go_version_cmp(r->version, r[1].version) > 0);
    }
    assert_non_null(kiln_go_release_find(KILN_GO_DEFAULT_RELEASE));
}

/* Runs kiln_go_select; returns the chosen version or the error (static buffer). */
static const char *pick(const kiln_go_request_t *rq, char **why, char **src)
{
    static char out[1024];
    char *v = NULL;
    kiln_error_t err = {0};

    *why = *src = NULL;
    if (kiln_go_select(rq, &v, why, src, &err) < 0) {
        snprintf(out, sizeof(out), "error: %s", err.msg);
        return out;
    }
    snprintf(out, sizeof(out), "%s", v);
    free(v);
    return out;
}

static void test_select(void **state)
{
    char *why, *src;
    (void)state;

    /* no version: the default */
    kiln_go_request_t none = {0};
    assert_string_equal(pick(&none, &why, &src), KILN_GO_DEFAULT_RELEASE);
    assert_string_equal(src, "default");
    free(why);
    free(src);
    /* an older go line: the default satisfies it; the reason names the line */
    kiln_go_request_t old = {.go = "1.23", .go_line = 3};
    assert_string_equal(pick(&old, &why, &src), KILN_GO_DEFAULT_RELEASE);
    assert_string_equal(src, "go.mod line 3");
    assert_non_null(strstr(why, "go.mod line 3 (go 1.23) asks for Go 1.23 or newer"));
    free(why);
    free(src);
    /* the toolchain line wins when it is higher */
    kiln_go_request_t tc = {.go = "1.23", .go_line = 3, .toolchain = "1.27.4", .toolchain_line = 5};
    assert_string_equal(pick(&tc, &why, &src), "1.27.4");
    assert_string_equal(src, "go.mod line 5");
    assert_non_null(strstr(why, "toolchain go1.27.4"));
    free(why);
    free(src);
    /* newer than every release: the error names the line and what is available */
    kiln_go_request_t future = {.go = "1.30", .go_line = 3};
    const char *e = pick(&future, &why, &src);
    assert_non_null(strstr(e, "go.mod line 3 (go 1.30) asks for Go 1.30 or newer, and no Go "
                              "release kiln can fetch and verify is: available are go1.27.4, "
                              "go1.27.3,"));
    assert_non_null(strstr(e, "lower the go line or build with a Dockerfile"));
    kiln_go_request_t ftc = {
        .go = "1.21", .go_line = 3, .toolchain = "1.28rc1", .toolchain_line = 4};
    assert_non_null(strstr(pick(&ftc, &why, &src), "lower the toolchain line"));
    /* an exact release newer than the table: itself (the checksum database proves it at fetch) */
    kiln_go_request_t next = {
        .go = "1.21", .go_line = 3, .toolchain = "1.28.0", .toolchain_line = 4};
    assert_string_equal(pick(&next, &why, &src), "1.28.0");
    free(why);
    free(src);
    /* a prerelease above the default: the oldest release of the table above it */
    kiln_go_request_t mid = {.go = "1.27.4rc1", .go_line = 3};
    assert_string_equal(pick(&mid, &why, &src), "1.27.4");
    free(why);
    free(src);
    /* an override: an exact release of the table, not below the go line */
    kiln_go_request_t ov = {
        .go = "1.21", .go_line = 3, .override = "go1.27.4", .override_src = "KILN_GO_VERSION"};
    assert_string_equal(pick(&ov, &why, &src), "1.27.4");
    assert_string_equal(src, "KILN_GO_VERSION");
    free(why);
    free(src);
    ov.override = "1.25";
    assert_non_null(
        strstr(pick(&ov, &why, &src),
               "KILN_GO_VERSION asks for Go \"1.25\", which is not a Go release (1.N.P)"));
    ov.override = "1.25.3"; /* outside the table: proven by the checksum database at fetch */
    assert_string_equal(pick(&ov, &why, &src), "1.25.3");
    free(why);
    free(src);
    ov.override = "../../1.27.3";
    assert_non_null(strstr(pick(&ov, &why, &src), "is not a Go release"));
    ov.go = "1.27.4";
    ov.override = "1.27.3";
    assert_non_null(strstr(pick(&ov, &why, &src), "needs Go 1.27.4 or newer"));
}

/* A zip in memory of the given files (name, content pairs). */
static void *make_zip(const char *const *files, size_t n, size_t *len)
{
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap);
    struct archive *a = archive_write_new();

    archive_write_set_format_zip(a);
    archive_write_open_memory(a, buf, cap, &used);
    for (size_t i = 0; i < n; i += 2) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, files[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)strlen(files[i + 1]));
        archive_write_header(a, e);
        archive_write_data(a, files[i + 1], strlen(files[i + 1]));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    *len = used;
    return buf;
}

static void test_dirhash(void **state)
{
    const char *good[] = {"m@v1/b/c.txt", "x", "m@v1/a.txt", "hello\n"};
    const char *outside[] = {"m@v1/a.txt", "hello\n", "../evil", "x"};
    const char *twice[] = {"m@v1/a.txt", "1", "m@v1/a.txt", "2"};
    const char *climb[] = {"m@v1/a.txt", "1", "m@v1/../../etc/x", "2"};
    kiln_error_t err = {0};
    char *h1 = NULL;
    size_t len;
    void *z;
    (void)state;

    /* the value Go's dirhash.Hash1 gives for these two files */
    z = make_zip(good, 4, &len);
    assert_int_equal(kiln_dirhash_zip(z, len, "m@v1/", "m@v1", &h1, &err), 0);
    assert_string_equal(h1, "h1:jSPEBswqqmISvd70i2SYmJK0JG/j0mFrWO/OhcuLCps=");
    free(h1);
    free(z);
    z = make_zip(outside, 4, &len);
    assert_int_equal(kiln_dirhash_zip(z, len, "m@v1/", "m@v1", &h1, &err), -1);
    assert_non_null(strstr(err.msg, "m@v1: the zip holds \"../evil\", outside m@v1/"));
    free(z);
    memset(&err, 0, sizeof(err));
    z = make_zip(climb, 4, &len);
    assert_int_equal(kiln_dirhash_zip(z, len, "m@v1/", "m@v1", &h1, &err), -1);
    assert_non_null(strstr(err.msg, "m@v1: the zip holds \"m@v1/../../etc/x\", outside m@v1/"));
    free(z);
    memset(&err, 0, sizeof(err));
    z = make_zip(twice, 4, &len);
    assert_int_equal(kiln_dirhash_zip(z, len, "m@v1/", "m@v1", &h1, &err), -1);
    assert_non_null(strstr(err.msg, "m@v1/a.txt is in the zip twice"));
    free(z);
    memset(&err, 0, sizeof(err));
    assert_int_equal(kiln_dirhash_zip("not a zip at all", 16, "m@v1/", "m@v1", &h1, &err), -1);
    assert_non_null(strstr(err.msg, "m@v1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gomod_lines), cmocka_unit_test(test_gomod_errors),
        cmocka_unit_test(test_versions),    cmocka_unit_test(test_select),
        cmocka_unit_test(test_dirhash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
