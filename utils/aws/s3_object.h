/* kiln — one object sent to S3 (the part of s3.h's uploads that talks to S3): the bucket's
 * addressing (path-style or virtual-hosted), SHA-256 of a file range, PutObject with a
 * checksum, and a multipart upload whose parts go in parallel, each retried on its own, the
 * upload aborted when one fails. Used by the directory deploy (s3.c) and by
 * kiln_s3_upload_file. */
#ifndef KILN_UTILS_AWS_S3_OBJECT_H
#define KILN_UTILS_AWS_S3_OBJECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "utils/aws/client.h"
#include "utils/aws/s3.h"
#include "utils/error.h"
#include "utils/http.h"

/* Upload threads at most, for files and for the parts of one file. */
#define KILN_S3_MAX_CONCURRENCY 64

typedef struct kiln_s3_target {
    kiln_aws_t *aws;
    kiln_aws_endpoint_t ep; /* host already includes the bucket when virtual-hosted */
    char *bucket;
    int path_style;
} kiln_s3_target_t;

/* Resolves the S3 endpoint of aws's region for bucket (KILN_S3_PATH_STYLE=1/0 forces the
 * addressing). Returns -1 with err naming the endpoint. */
int kiln_s3_target_init(kiln_s3_target_t *t, kiln_aws_t *aws, const char *bucket,
                        kiln_error_t *err);
void kiln_s3_target_clear(kiln_s3_target_t *t);
/* The wire path of key (malloc'ed). */
char *kiln_s3_key_path(const kiln_s3_target_t *t, const char *key);
/* prefix/rel, or rel when prefix is empty (malloc'ed). */
char *kiln_s3_join_key(const char *prefix, const char *rel);
/* n bytes as lower-case hex into out (2n+1 bytes). */
void kiln_s3_hex(const unsigned char *in, size_t n, char *out);
/* SHA-256 of len bytes of fd at off, or of mem when given. Returns -1 on a read error. */
int kiln_s3_sha256(int fd, off_t off, size_t len, const void *mem, unsigned char md[32],
                   kiln_error_t *err);
/* PutObject of size bytes (from mem, or fd when mem is NULL) whose SHA-256 is md. */
int kiln_s3_put_object(const kiln_s3_target_t *t, kiln_http_t *http, const char *key, int fd,
                       size_t size, const void *mem, const unsigned char md[32],
                       const char *content_type, const char *cache_control, kiln_error_t *err);
/* GetObject of key, or of bytes off..off+len-1 of it when len > 0, into *out (malloc'ed,
 * NUL-terminated, *out_len bytes; more than cap bytes fail with ENOBUFS). Returns 1, 0 when
 * there is no such object (404), -1 with err "GET s3://bucket/key: ..." otherwise. */
int kiln_s3_get_object(const kiln_s3_target_t *t, kiln_http_t *http, const char *key, uint64_t off,
                       uint64_t len, size_t cap, char **out, size_t *out_len, kiln_error_t *err);
/* Multipart upload of fd's size bytes in parts of part_size (doubled until at most
 * KILN_S3_MAX_PARTS), concurrency parts at once; adds the bytes sent to *bytes. A failed upload
 * is aborted. */
int kiln_s3_multipart_upload(const kiln_s3_target_t *t, kiln_http_t *http, const char *key, int fd,
                             size_t size, const char *content_type, const char *cache_control,
                             size_t part_size, unsigned concurrency, unsigned long long *bytes,
                             kiln_error_t *err);
/* The thresholds and concurrency of opts with the defaults filled in. */
void kiln_s3_opts_defaults(const kiln_s3_opts_t *o, size_t *threshold, size_t *part_size,
                           unsigned *concurrency);

#endif
