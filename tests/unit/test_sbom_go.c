/* Unit tests for export/sbom_go: the Go build information blob parsed (sentinel framing,
 * deps, a replacement standing for its module, build lines ignored), its caps and malformed
 * forms refused by name, the pointer form of Go before 1.18 not read, a truncated blob asking
 * for more; the scanner over an ELF file fed in odd chunk sizes (an unaligned magic and a
 * stray aligned one skipped), a file that is not ELF never buffered; the h1 sum as hex; and
 * kiln_sbom_add_go's packages and checksums in the SPDX document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/sbom.h"
#include "export/sbom_go.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define SENTINEL                                                                                   \
    "0w\xaf\x0c\x92t\x08\x02"                                                                      \
    "A\xe1\xc1\x07\xe6\xd6\x18\xe6"
#define CHI_SUM "h1:WQIt9uWdsTHDeLi6rFEDPeGdcS/fWWhdFhQS2y5q84s="

static const char modinfo[] = "path\texample.com/app/cmd/app\n"
                              "mod\texample.com/app\t(devel)\t\n"
                              "dep\tgithub.com/go-chi/chi/v5\tv5.2.3\t" CHI_SUM "\n"
                              "dep\tgolang.org/x/text\tv0.14.0\th1:bad\n"
                              "=>\tgithub.com/fork/text\tv0.15.0\t\n"
                              "build\t-compiler=gc\n"
                              "build\tGOOS=linux\n";

static size_t put_uvarint(unsigned char *p, size_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* A Go 1.18+ blob (flags: 2 inline) of version and module text mod (framed when frame). */
static unsigned char *make_blob(const char *version, const char *mod, size_t mod_len, int flags,
                                int frame, size_t *len)
{
    size_t ml = mod_len + (frame ? 32 : 0), vl = strlen(version);
    unsigned char *b = kiln_xzalloc(KILN_GO_BUILDINFO_HEADER + 20 + vl + ml);
    size_t p = KILN_GO_BUILDINFO_HEADER;

    memcpy(b, KILN_GO_BUILDINFO_MAGIC, KILN_GO_BUILDINFO_MAGIC_LEN);
    b[14] = 8;
    b[15] = (unsigned char)flags;
    p += put_uvarint(b + p, vl);
    memcpy(b + p, version, vl);
    p += vl;
    p += put_uvarint(b + p, ml);
    if (frame) {
        memcpy(b + p, SENTINEL, 16);
        memcpy(b + p + 16 + mod_len, SENTINEL, 16);
        b[p + 16 + mod_len - 1] = '\n'; /* the text's own last newline */
        memcpy(b + p + 16, mod, mod_len);
    } else {
        memcpy(b + p, mod, mod_len);
    }
    *len = p + ml;
    return b;
}

static void test_parse(void **state)
{
    size_t len;
    _cleanup_free_ unsigned char *b = make_blob("go1.23.4", modinfo, strlen(modinfo), 2, 1, &len);
    kiln_go_buildinfo_t bi;
    kiln_error_t err = {0};

    (void)state;
    assert_int_equal(kiln_go_buildinfo_parse(b, len, &bi, &err), 1);
    assert_int_equal(bi.len, len);
    assert_string_equal(bi.go_version, "go1.23.4");
    assert_string_equal(bi.path, "example.com/app/cmd/app");
    assert_string_equal(bi.main.path, "example.com/app");
    assert_string_equal(bi.main.version, "(devel)");
    assert_null(bi.main.sum);
    assert_int_equal(bi.n_deps, 2);
    assert_string_equal(bi.deps[0].path, "github.com/go-chi/chi/v5");
    assert_string_equal(bi.deps[0].sum, CHI_SUM);
    /* the replacement is what was compiled */
    assert_string_equal(bi.deps[1].path, "github.com/fork/text");
    assert_string_equal(bi.deps[1].version, "v0.15.0");
    assert_null(bi.deps[1].sum);
    kiln_go_buildinfo_clear(&bi);

    /* unframed text parses the same; each truncation asks for more bytes */
    {
        size_t l2;
        _cleanup_free_ unsigned char *b2 =
            make_blob("go1.23.4", modinfo, strlen(modinfo), 2, 0, &l2);
        assert_int_equal(kiln_go_buildinfo_parse(b2, l2, &bi, &err), 1);
        assert_int_equal(bi.n_deps, 2);
        kiln_go_buildinfo_clear(&bi);
        for (size_t cut = 0; cut < l2; cut += 7)
            assert_int_equal(kiln_go_buildinfo_parse(b2, cut, &bi, &err), 0);
    }
}

static void test_refused(void **state)
{
    size_t len;
    kiln_go_buildinfo_t bi;
    kiln_error_t err = {0};
    _cleanup_free_ char *big = kiln_xmalloc(KILN_GO_VERSION_MAX + 2);

    (void)state;
    {
        _cleanup_free_ unsigned char *b = make_blob("go1.17", "", 0, 0, 0, &len);
        assert_int_equal(kiln_go_buildinfo_parse(b, len, &bi, &err), -1);
        assert_string_equal(err.msg,
                            "go build info: the pointer form of Go before 1.18 (not read)");
    }
    memset(big, 'g', KILN_GO_VERSION_MAX + 1);
    big[KILN_GO_VERSION_MAX + 1] = '\0';
    {
        _cleanup_free_ unsigned char *b = make_blob(big, "", 0, 2, 0, &len);
        assert_int_equal(kiln_go_buildinfo_parse(b, len, &bi, &err), -1);
        assert_string_equal(err.msg, "go build info: a version longer than 256 bytes");
    }
    {
        /* a module information length past the cap, without the bytes behind it */
        unsigned char b[64] = {0};
        size_t p = KILN_GO_BUILDINFO_HEADER;
        memcpy(b, KILN_GO_BUILDINFO_MAGIC, KILN_GO_BUILDINFO_MAGIC_LEN);
        b[14] = 8;
        b[15] = 2;
        b[p++] = 2;
        b[p++] = 'g';
        b[p++] = 'o';
        p += put_uvarint(b + p, KILN_GO_MODINFO_MAX + 1);
        assert_int_equal(kiln_go_buildinfo_parse(b, p, &bi, &err), -1);
        assert_string_equal(err.msg, "go build info: module information over 1048576 bytes");
        /* a uvarint longer than 10 bytes */
        memset(b + KILN_GO_BUILDINFO_HEADER, 0xff, 12);
        assert_int_equal(kiln_go_buildinfo_parse(b, sizeof(b), &bi, &err), -1);
        assert_string_equal(err.msg, "go build info: a bad version length");
    }
    {
        /* a module line forging SPDX text with a control character or a fourth field */
        static const char *bad[] = {"mod\tex\x01ample\tv1\t\n", "dep\ta\tv1\th1:x\textra\n",
                                    "=>\tb\tv1\n", "dep\ta\n"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            _cleanup_free_ unsigned char *b =
                make_blob("go1.22", bad[i], strlen(bad[i]), 2, 0, &len);
            assert_int_equal(kiln_go_buildinfo_parse(b, len, &bi, &err), -1);
            assert_string_equal(err.msg, "go build info line 1: a malformed module line");
        }
    }
    {
        /* more modules than the cap */
        size_t n = KILN_GO_DEPS_MAX + 1, ml = n * 10;
        _cleanup_free_ char *mod = kiln_xmalloc(ml + 1);
        for (size_t i = 0; i < n; i++)
            memcpy(mod + i * 10, "dep\tm\tv1\t\n", 10);
        mod[ml] = '\0';
        _cleanup_free_ unsigned char *b = make_blob("go1.22", mod, ml, 2, 0, &len);
        assert_int_equal(kiln_go_buildinfo_parse(b, len, &bi, &err), -1);
        assert_string_equal(err.msg, "go build info: more than 10000 modules");
    }
    {
        unsigned char b[40] = KILN_GO_BUILDINFO_MAGIC;
        b[14] = 3;
        assert_int_equal(kiln_go_buildinfo_parse(b, sizeof(b), &bi, &err), -1);
        assert_string_equal(err.msg, "go build info: pointer size 3");
    }
}

/* An ELF-looking file: the real blob at a 16-aligned offset, after an unaligned magic and an
 * aligned stray one (flags 0). */
static unsigned char *make_elf(size_t *len, size_t *blob_at)
{
    size_t bl;
    _cleanup_free_ unsigned char *b = make_blob("go1.23.4", modinfo, strlen(modinfo), 2, 1, &bl);
    size_t n = 4096 + bl + 100;
    unsigned char *f = kiln_xzalloc(n);

    memcpy(f,
           "\x7f"
           "ELF",
           4);
    memcpy(f + 37, KILN_GO_BUILDINFO_MAGIC "\x08\x02", 16);   /* unaligned */
    memcpy(f + 1024, KILN_GO_BUILDINFO_MAGIC "\x08\x00", 16); /* aligned, a stray */
    memcpy(f + 4096, b, bl);
    *len = n;
    *blob_at = 4096;
    return f;
}

static void test_scan(void **state)
{
    size_t len, at;
    _cleanup_free_ unsigned char *f = make_elf(&len, &at);
    static const size_t chunks[] = {1, 3, 13, 16, 17, 4096, 1 << 20};
    kiln_error_t err = {0};

    (void)state;
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        kiln_go_scan_t sc = {0};
        for (size_t off = 0; off < len && !kiln_go_scan_done(&sc); off += chunks[c])
            kiln_go_scan_feed(&sc, f + off, off + chunks[c] <= len ? chunks[c] : len - off, &err);
        assert_int_equal(kiln_go_scan_finish(&sc, &err), 1);
        assert_string_equal(sc.info.go_version, "go1.23.4");
        assert_int_equal(sc.info.n_deps, 2);
        assert_memory_equal(sc.buf, f + at, sc.info.len);
        kiln_go_scan_clear(&sc);
    }
    {
        /* not ELF: nothing found, nothing kept */
        kiln_go_scan_t sc = {0};
        f[0] = '#';
        kiln_go_scan_feed(&sc, f, len, &err);
        assert_true(kiln_go_scan_done(&sc));
        assert_null(sc.buf);
        assert_int_equal(kiln_go_scan_finish(&sc, &err), 0);
        kiln_go_scan_clear(&sc);
    }
}

static void test_sum_hex(void **state)
{
    _cleanup_free_ char *hex = kiln_go_sum_hex(CHI_SUM);

    (void)state;
    assert_string_equal(hex, "59022df6e59db131c378b8baac51033de19d712fdf59685d161412db2e6af38b");
    assert_null(kiln_go_sum_hex("h1:bad"));
    assert_null(kiln_go_sum_hex("h1:WQIt9uWdsTHDeLi6rFEDPeGdcS/fWWhdFhQS2y5q8*s="));
    assert_null(kiln_go_sum_hex(NULL));
}

static void test_spdx(void **state)
{
    size_t len;
    _cleanup_free_ unsigned char *b = make_blob("go1.23.4", modinfo, strlen(modinfo), 2, 1, &len);
    kiln_sbom_t *sb = kiln_sbom_new();
    kiln_error_t err = {0};
    json_t *doc, *p;
    size_t i;
    int seen = 0;

    (void)state;
    assert_int_equal(kiln_sbom_add_go(sb, "usr/local/bin/app", b, len, &err), 0);
    assert_int_equal(kiln_sbom_count(sb), 4);
    doc = kiln_sbom_spdx(sb, "app", NULL, "2026-01-01T00:00:00Z");
    json_array_foreach(json_object_get(doc, "packages"), i, p)
    {
        const char *purl = json_string_value(json_object_get(
            json_array_get(json_object_get(p, "externalRefs"), 0), "referenceLocator"));
        json_t *sums = json_object_get(p, "checksums");
        if (purl == NULL)
            continue;
        if (strcmp(purl, "pkg:golang/github.com/go-chi/chi/v5@v5.2.3") == 0) {
            seen |= 1;
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(sums, 0), "checksumValue")),
                "59022df6e59db131c378b8baac51033de19d712fdf59685d161412db2e6af38b");
            assert_string_equal(json_string_value(json_object_get(p, "sourceInfo")),
                                "acquired package info from usr/local/bin/app");
        } else if (strcmp(purl, "pkg:golang/stdlib@1.23.4") == 0) {
            seen |= 2;
            assert_string_equal(json_string_value(json_object_get(p, "versionInfo")), "go1.23.4");
        } else if (strcmp(purl, "pkg:golang/github.com/fork/text@v0.15.0") == 0) {
            seen |= 4;
            assert_null(sums);
        } else if (strcmp(purl, "pkg:golang/example.com/app@%28devel%29") == 0) {
            seen |= 8;
        }
    }
    assert_int_equal(seen, 15);
    json_decref(doc);
    /* a blob that does not parse adds nothing and is no error */
    b[15] = 0;
    assert_int_equal(kiln_sbom_add_go(sb, "usr/local/bin/old", b, len, &err), 0);
    assert_int_equal(kiln_sbom_count(sb), 4);
    kiln_sbom_free(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),   cmocka_unit_test(test_refused), cmocka_unit_test(test_scan),
        cmocka_unit_test(test_sum_hex), cmocka_unit_test(test_spdx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
