/* kiln server — build secrets in queue mode. `kiln serve --queue` seals a build's secrets
 * with AES-256-GCM under a key it shares with the `kiln worker`s (--job-key-file or
 * KILN_JOB_KEY_FILE), so they never travel or rest in clear in SQS; the build id is the
 * additional authenticated data, so a sealed blob only opens for its own job.
 *
 * Key file: 32 random bytes, as 64 hex digits or as base64 (trailing newline allowed),
 * e.g. `openssl rand -hex 32 > job.key`.
 * Sealed form (JSON): {"alg": "A256GCM", "iv": BASE64(12 bytes), "ct": BASE64(ciphertext
 * followed by the 16-byte tag)}. */
#ifndef KILN_SERVER_JOBKEY_H
#define KILN_SERVER_JOBKEY_H

#include <jansson.h>
#include <stddef.h>

#include "utils/error.h"

typedef struct kiln_jobkey kiln_jobkey_t;

/* Reads the key file at path. On failure err names the file and what is wrong with it
 * (never the key). */
int kiln_jobkey_load(const char *path, kiln_jobkey_t **out, kiln_error_t *err);

/* Wipes and frees the key (NULL is fine). */
void kiln_jobkey_free(kiln_jobkey_t *k);

/* Seals len bytes of plain for job aad; *out is the sealed JSON object (new reference). */
int kiln_jobkey_seal(const kiln_jobkey_t *k, const char *aad, const void *plain, size_t len,
                     json_t **out, kiln_error_t *err);

/* Opens a sealed object made for job aad; *plain (NUL-terminated, malloc'ed; the caller
 * wipes it) and *len on success. Fails on a wrong key, another job's blob or any change. */
int kiln_jobkey_open(const kiln_jobkey_t *k, const char *aad, json_t *sealed, char **plain,
                     size_t *len, kiln_error_t *err);

#endif
