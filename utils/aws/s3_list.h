/* kiln — the objects under an S3 prefix (ListObjectsV2, every page) and DeleteObject: what a
 * collector of a bucket's unreferenced objects needs (engine/remote_gc). */
#ifndef KILN_UTILS_AWS_S3_LIST_H
#define KILN_UTILS_AWS_S3_LIST_H

#include <stdint.h>
#include <time.h>

#include "utils/aws/s3_object.h"

/* Pages read at most (1000 keys each): a listing past it is refused, never cut short. */
#define KILN_S3_LIST_MAX_PAGES 10000

typedef struct kiln_s3_listed {
    const char *key;      /* the whole key */
    uint64_t size;        /* bytes */
    time_t last_modified; /* seconds since the epoch (UTC), 0 when the answer had none */
} kiln_s3_listed_t;

/* Calls fn once per object whose key starts with prefix (every page of ListObjectsV2, in key
 * order). fn returning < 0 stops the listing (its err is kept). -1 with err naming the bucket
 * and prefix when a page cannot be read or is not a ListBucketResult. */
int kiln_s3_list(const kiln_s3_target_t *t, kiln_http_t *http, const char *prefix,
                 int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err), void *ud,
                 kiln_error_t *err);

/* Parses one ListObjectsV2 answer (hostile input: the caps of utils/aws/xml apply): fn per
 * Contents element, *truncated and *token (malloc'ed, or NULL) for the next page. */
int kiln_s3_list_parse(const char *xml, size_t len,
                       int (*fn)(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err), void *ud,
                       int *truncated, char **token, kiln_error_t *err);

/* DeleteObject of key: 0 (also when it was not there), -1 with err. */
int kiln_s3_delete_object(const kiln_s3_target_t *t, kiln_http_t *http, const char *key,
                          kiln_error_t *err);

#endif
