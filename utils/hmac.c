/* kiln — HMAC-SHA256, also over a body fed in pieces, and constant-time comparison (see
 * hmac.h). */
#include "utils/hmac.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdlib.h>
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

int kiln_hmac_parse_hex(const char *hex, uint8_t got[KILN_HMAC_SHA256_LEN])
{
    if (strlen(hex) != 2 * KILN_HMAC_SHA256_LEN)
        return -1;
    for (size_t i = 0; i < KILN_HMAC_SHA256_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        got[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Decodes a "sha256=<64 hex>" header into got. Returns 0, or -1 when malformed. */
static int parse_sig_hex(const char *header, uint8_t got[KILN_HMAC_SHA256_LEN])
{
    if (header == NULL || strncmp(header, "sha256=", 7) != 0)
        return -1;
    return kiln_hmac_parse_hex(header + 7, got);
}

int kiln_hmac_verify_sha256_hex(const char *key, const void *data, size_t len, const char *header)
{
    uint8_t want[KILN_HMAC_SHA256_LEN], got[KILN_HMAC_SHA256_LEN];

    if (key == NULL || parse_sig_hex(header, got) < 0)
        return 0;
    if (kiln_hmac_sha256(key, strlen(key), data, len, want) < 0)
        return 0;
    return kiln_hmac_equal(want, sizeof(want), got, sizeof(got));
}

struct kiln_hmac_stream {
    EVP_MAC_CTX *ctx;
    int failed;
};

kiln_hmac_stream_t *kiln_hmac_stream_new(const char *key)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    kiln_hmac_stream_t *h;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};

    if (mac == NULL)
        return NULL;
    h = calloc(1, sizeof(*h));
    if (h == NULL || (h->ctx = EVP_MAC_CTX_new(mac)) == NULL ||
        EVP_MAC_init(h->ctx, (const unsigned char *)key, strlen(key), params) != 1) {
        kiln_hmac_stream_free(h);
        h = NULL;
    }
    EVP_MAC_free(mac);
    return h;
}

void kiln_hmac_stream_update(kiln_hmac_stream_t *h, const void *data, size_t len)
{
    if (!h->failed && EVP_MAC_update(h->ctx, data, len) != 1)
        h->failed = 1;
}

int kiln_hmac_stream_verify_hex(kiln_hmac_stream_t *h, const char *header)
{
    uint8_t want[KILN_HMAC_SHA256_LEN], got[KILN_HMAC_SHA256_LEN];
    size_t n = 0;

    if (h->failed || parse_sig_hex(header, got) < 0 ||
        EVP_MAC_final(h->ctx, want, &n, sizeof(want)) != 1 || n != sizeof(want))
        return 0;
    return kiln_hmac_equal(want, sizeof(want), got, sizeof(got));
}

void kiln_hmac_stream_free(kiln_hmac_stream_t *h)
{
    if (h == NULL)
        return;
    EVP_MAC_CTX_free(h->ctx);
    free(h);
}
