/* kiln — HMAC-SHA256 and constant-time comparison (webhook signatures). */
#ifndef KILN_UTILS_HMAC_H
#define KILN_UTILS_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define KILN_HMAC_SHA256_LEN 32

/* Computes HMAC-SHA256(key, data) into out[32]. Returns 0, or -1 when OpenSSL fails. */
int kiln_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[KILN_HMAC_SHA256_LEN]);

/* Compares two byte strings in time independent of their content. Returns 1 when equal. */
int kiln_hmac_equal(const void *a, size_t a_len, const void *b, size_t b_len);

/* Decodes 64 hex digits (either case) into out[32]. Returns 0, or -1 when hex is anything
 * else. */
int kiln_hmac_parse_hex(const char *hex, uint8_t out[KILN_HMAC_SHA256_LEN]);

/* Verifies a GitHub-style signature header "sha256=<64 hex>" over data with key.
 * Returns 1 when it matches, 0 when not (malformed headers do not match). */
int kiln_hmac_verify_sha256_hex(const char *key, const void *data, size_t len, const char *header);

/* An HMAC-SHA256 computed as data arrives (webhook bodies are checked while they stream in). */
typedef struct kiln_hmac_stream kiln_hmac_stream_t;

/* Starts one keyed with key (a NUL-terminated secret). Returns NULL when OpenSSL fails. */
kiln_hmac_stream_t *kiln_hmac_stream_new(const char *key);
/* Adds data; a failure makes the final verify fail. */
void kiln_hmac_stream_update(kiln_hmac_stream_t *h, const void *data, size_t len);
/* Finishes and compares with a "sha256=<64 hex>" header. Returns 1 when it matches, else 0.
 * Call once. */
int kiln_hmac_stream_verify_hex(kiln_hmac_stream_t *h, const char *header);
void kiln_hmac_stream_free(kiln_hmac_stream_t *h);

#endif
