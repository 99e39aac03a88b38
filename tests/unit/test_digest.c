/* Unit tests for oci/digest: parsing, formatting, streaming hashing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/digest.h"

#define EMPTY_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_parse_ok(void **state)
{
    kiln_digest_t d;
    kiln_error_t err = {0};
    char buf[KILN_DIGEST_STR_MAX];

    assert_int_equal(kiln_digest_parse("sha256:" ABC_HEX, &d, &err), 0);
    assert_string_equal(d.hex, ABC_HEX);
    assert_string_equal(kiln_digest_str(&d, buf), "sha256:" ABC_HEX);
    assert_int_equal(kiln_digest_parse_hex(EMPTY_HEX, &d, &err), 0);
    assert_string_equal(d.hex, EMPTY_HEX);
}

static void test_parse_reject(void **state)
{
    static const char *bad[] = {
        "",
        "sha256",
        "sha256:",
        "sha512:" ABC_HEX,
        "SHA256:" ABC_HEX,
        "sha256:" ABC_HEX "0",
        "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag",
        "sha256+b64:" ABC_HEX,
        ABC_HEX,
        " sha256:" ABC_HEX,
    };
    kiln_digest_t d;
    memset(&d, 'x', sizeof(d));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_error_t err = {0};
        assert_int_equal(kiln_digest_parse(bad[i], &d, &err), -1);
        assert_non_null(strstr(err.msg, "digest"));
    }
    assert_int_equal(d.hex[0], 'x'); /* output untouched on failure */
    assert_int_equal(kiln_digest_parse(NULL, &d, NULL), -1);
}

static void test_hash(void **state)
{
    kiln_digest_t d, e;
    kiln_sha256_t h;
    kiln_sink_t s;
    kiln_error_t err = {0};

    kiln_digest_bytes("", 0, &d);
    assert_string_equal(d.hex, EMPTY_HEX);
    kiln_digest_bytes("abc", 3, &d);
    assert_string_equal(d.hex, ABC_HEX);

    assert_int_equal(kiln_sha256_init(&h, &err), 0);
    s = kiln_sha256_sink(&h);
    assert_int_equal(kiln_sink_write(&s, "a", 1, &err), 0);
    assert_int_equal(kiln_sink_write(&s, "bc", 2, &err), 0);
    assert_int_equal(h.bytes, 3);
    kiln_sha256_final(&h, &e);
    assert_true(kiln_digest_equal(&d, &e));
    kiln_sha256_dispose(&h); /* safe after final */

    assert_int_equal(kiln_sha256_init(&h, &err), 0);
    kiln_sha256_dispose(&h);
}

static void test_digest_fd(void **state)
{
    char path[] = "/tmp/kiln-test-digest.XXXXXX";
    int fd = mkstemp(path);
    kiln_digest_t d;
    uint64_t size = 0;
    kiln_error_t err = {0};

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(kiln_digest_fd(fd, &d, &size, &err), 0);
    assert_string_equal(d.hex, ABC_HEX);
    assert_int_equal(size, 3);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_reject),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_digest_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
