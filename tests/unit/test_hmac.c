/* Unit tests for utils/hmac: webhook signatures (GitHub's published example, RFC 4231
 * vectors, a body fed in pieces, malformed signature headers refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utils/hmac.h"

static void test_hmac_github_example(void **state)
{
    /* The example from GitHub's "Validating webhook deliveries". */
    const char *body = "Hello, World!";
    assert_true(kiln_hmac_verify_sha256_hex(
        "It's a Secret to Everybody", body, strlen(body),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    assert_true(kiln_hmac_verify_sha256_hex(
        "It's a Secret to Everybody", body, strlen(body),
        "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"));
    assert_false(kiln_hmac_verify_sha256_hex(
        "It's a Secret to Everybody", body, strlen(body) - 1,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    assert_false(kiln_hmac_verify_sha256_hex(
        "another secret", body, strlen(body),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
}

/* The streamed HMAC fed in pieces matches GitHub's example like the one-shot one; another
 * secret, a short body or a malformed header does not. */
static void test_hmac_stream(void **state)
{
    static const char sig[] =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    kiln_hmac_stream_t *h = kiln_hmac_stream_new("It's a Secret to Everybody");
    (void)state;

    assert_non_null(h);
    kiln_hmac_stream_update(h, "Hello, ", 7);
    kiln_hmac_stream_update(h, "", 0);
    kiln_hmac_stream_update(h, "World!", 6);
    assert_true(kiln_hmac_stream_verify_hex(h, sig));
    kiln_hmac_stream_free(h);

    h = kiln_hmac_stream_new("another secret");
    kiln_hmac_stream_update(h, "Hello, World!", 13);
    assert_false(kiln_hmac_stream_verify_hex(h, sig));
    kiln_hmac_stream_free(h);

    h = kiln_hmac_stream_new("It's a Secret to Everybody");
    kiln_hmac_stream_update(h, "Hello, World", 12);
    assert_false(kiln_hmac_stream_verify_hex(h, sig));
    kiln_hmac_stream_free(h);

    h = kiln_hmac_stream_new("It's a Secret to Everybody");
    kiln_hmac_stream_update(h, "Hello, World!", 13);
    assert_false(kiln_hmac_stream_verify_hex(h, "sha256=00"));
    kiln_hmac_stream_free(h);
    kiln_hmac_stream_free(NULL);
}

static void test_hmac_malformed_headers(void **state)
{
    const char *b = "x";
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, NULL));
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, ""));
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, "sha1=abcdef"));
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, "sha256="));
    assert_false(kiln_hmac_verify_sha256_hex(
        "k", b, 1, "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    assert_false(kiln_hmac_verify_sha256_hex(
        "k", b, 1, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1"));
    assert_false(kiln_hmac_verify_sha256_hex(NULL, b, 1, "sha256=00"));
}

static void test_hmac_rfc4231(void **state)
{
    /* RFC 4231 test case 2. */
    static const uint8_t want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                     0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                     0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                     0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    uint8_t out[32];
    const char *data = "what do ya want for nothing?";
    assert_int_equal(kiln_hmac_sha256("Jefe", 4, data, strlen(data), out), 0);
    assert_memory_equal(out, want, 32);
    assert_true(kiln_hmac_equal("abc", 3, "abc", 3));
    assert_false(kiln_hmac_equal("abc", 3, "abd", 3));
    assert_false(kiln_hmac_equal("abc", 3, "abcd", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_github_example),
        cmocka_unit_test(test_hmac_malformed_headers),
        cmocka_unit_test(test_hmac_stream),
        cmocka_unit_test(test_hmac_rfc4231),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
