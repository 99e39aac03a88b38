/* kiln — content digests (sha256 only) and a streaming SHA-256 hasher.
 *
 * A digest is always "sha256:" followed by 64 lowercase hex characters; every
 * other algorithm or spelling is rejected with an error naming the input. */
#ifndef KILN_OCI_DIGEST_H
#define KILN_OCI_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "oci/sink.h"
#include "utils/error.h"

/* "sha256:" + 64 hex + NUL, rounded up. */
#define KILN_DIGEST_STR_MAX 72

typedef struct kiln_digest {
    char hex[65]; /* 64 lowercase hex digits, NUL-terminated */
} kiln_digest_t;

/* Parses "sha256:<64 lowercase hex>". Fails (EINVAL) on anything else, with
 * a message quoting (a bounded prefix of) the input. *out written on success only. */
int kiln_digest_parse(const char *s, kiln_digest_t *out, kiln_error_t *err);

/* Same for the bare 64-hex form (e.g. a blob file name). */
int kiln_digest_parse_hex(const char *hex, kiln_digest_t *out, kiln_error_t *err);

/* Writes "sha256:<hex>" into buf and returns buf. */
const char *kiln_digest_str(const kiln_digest_t *d, char buf[KILN_DIGEST_STR_MAX]);

/* 1 when both digests are equal, 0 otherwise. */
int kiln_digest_equal(const kiln_digest_t *a, const kiln_digest_t *b);

/* Streaming SHA-256 (OpenSSL EVP). init allocates the context once; update
 * never allocates. final (or dispose) releases it. */
typedef struct kiln_sha256 {
    void *ctx;      /* EVP_MD_CTX * */
    uint64_t bytes; /* number of bytes hashed so far */
} kiln_sha256_t;

/* Prepares a hasher. Fails only when OpenSSL cannot allocate/initialise. */
int kiln_sha256_init(kiln_sha256_t *h, kiln_error_t *err);
/* Hashes len more bytes. */
void kiln_sha256_update(kiln_sha256_t *h, const void *buf, size_t len);
/* Finishes: writes the digest, releases the context (h may be disposed again). */
void kiln_sha256_final(kiln_sha256_t *h, kiln_digest_t *out);
/* Releases the context without a result. Safe to call twice or after final. */
void kiln_sha256_dispose(kiln_sha256_t *h);
/* A sink that only hashes (and counts) what is written into it. */
kiln_sink_t kiln_sha256_sink(kiln_sha256_t *h);

/* Digest of a memory buffer. */
void kiln_digest_bytes(const void *buf, size_t len, kiln_digest_t *out);

/* Digest and size of everything readable from fd (read to EOF). */
int kiln_digest_fd(int fd, kiln_digest_t *out, uint64_t *size, kiln_error_t *err);

#endif
