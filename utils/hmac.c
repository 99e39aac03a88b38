#include "utils/hmac.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

int kiln_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[KILN_HMAC_SHA256_LEN])
{
    unsigned int out_len = 0;

    if (HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len) == NULL ||
        out_len != KILN_HMAC_SHA256_LEN)
        return -1;
    return 0;
}

int kiln_hmac_equal(const void *a, size_t a_len, const void *b, size_t b_len)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;

    if (a_len != b_len)
        return 0;
    for (size_t i = 0; i < a_len; i++)
        diff |= (unsigned char)(x[i] ^ y[i]);
    return diff == 0;
}

/* Decodes one hex digit; -1 when it is not one. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int kiln_hmac_verify_sha256_hex(const char *key, const void *data, size_t len, const char *header)
{
    uint8_t want[KILN_HMAC_SHA256_LEN], got[KILN_HMAC_SHA256_LEN];
    const char *hex;

    if (key == NULL || header == NULL || strncmp(header, "sha256=", 7) != 0)
        return 0;
    hex = header + 7;
    if (strlen(hex) != 2 * KILN_HMAC_SHA256_LEN)
        return 0;
    for (size_t i = 0; i < KILN_HMAC_SHA256_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        got[i] = (uint8_t)(hi << 4 | lo);
    }
    if (kiln_hmac_sha256(key, strlen(key), data, len, want) < 0)
        return 0;
    return kiln_hmac_equal(want, sizeof(want), got, sizeof(got));
}
