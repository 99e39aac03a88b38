/* kiln server — uploaded contexts in queue mode: `kiln serve` stages the tarball in S3
 * (too big for an SQS message) and `kiln worker` fetches it back. The same store carries
 * cancel markers: the server writes one, the worker looks for it while it builds. The upload uses
 * utils/aws/s3.h; the GetObject here follows the same addressing (path style for an
 * endpoint override, a bucket with dots, or KILN_S3_PATH_STYLE=1). */
#ifndef KILN_SERVER_S3_CONTEXT_H
#define KILN_SERVER_S3_CONTEXT_H

#include <stddef.h>

#include "utils/aws/client.h"
#include "utils/error.h"

/* Uploads the tarball to url ("s3://bucket/key"). */
int kiln_s3_context_put(kiln_aws_t *aws, const char *tarball, const char *url, kiln_error_t *err);

/* Downloads url ("s3://bucket/key", at most cap bytes) into the new file path (0600). */
int kiln_s3_context_get(kiln_aws_t *aws, const char *url, const char *path, size_t cap,
                        kiln_error_t *err);

/* Writes a small object (a marker) with body text at url. */
int kiln_s3_context_mark(kiln_aws_t *aws, const char *url, const char *text, kiln_error_t *err);

/* 1 when the object at url exists, 0 when it does not (404, or 403 for a missing key
 * without list permission), -1 when S3 could not be asked. */
int kiln_s3_context_exists(kiln_aws_t *aws, const char *url, kiln_error_t *err);

/* Reads a small object (at most cap bytes) into *text (malloc'ed, NUL-terminated). 1 when
 * read, 0 when it does not exist, -1 when S3 could not be asked. */
int kiln_s3_context_read(kiln_aws_t *aws, const char *url, size_t cap, char **text,
                         kiln_error_t *err);

/* Deletes the object at url (a missing one is no error). */
int kiln_s3_context_delete(kiln_aws_t *aws, const char *url, kiln_error_t *err);

/* The first key under prefix_url ("s3://bucket/prefix") after `after` (a whole key, NULL:
 * from the start), one ListObjectsV2 call: 1 with *key (malloc'ed), 0 when there is none. */
int kiln_s3_context_next_key(kiln_aws_t *aws, const char *prefix_url, const char *after, char **key,
                             kiln_error_t *err);

#endif
