/* kiln — S3 uploads: static sites and single files (function zips).
 *
 * Small files go up with PutObject, large ones with a multipart upload whose
 * parts are sent in parallel, each retried on its own; a multipart upload
 * that fails is aborted. Integrity: every PutObject carries
 * x-amz-checksum-sha256 and a signed payload hash; every part carries its
 * signed payload hash, which S3 checks against the body. Objects get a
 * Content-Type from their extension and a Cache-Control from the policy
 * below unless overridden.
 *
 * Deploys are incremental: a manifest object (<prefix>/.kiln/deploy-manifest.json)
 * lists every uploaded key with its SHA-256, size, Content-Type and
 * Cache-Control; a file whose entry is unchanged is not uploaded again. The
 * new manifest is written last, so a failed deploy never claims files it did
 * not upload.
 *
 * Addressing: path-style (endpoint/bucket/key) when the endpoint is an
 * override or the bucket name has dots, virtual-hosted (bucket.endpoint/key)
 * otherwise; KILN_S3_PATH_STYLE=1/0 forces one. */
#ifndef KILN_UTILS_AWS_S3_H
#define KILN_UTILS_AWS_S3_H

#include <stddef.h>

#include "utils/aws/client.h"
#include "utils/error.h"

#define KILN_S3_DEFAULT_PART_SIZE (8u * 1024 * 1024)
#define KILN_S3_MIN_PART_SIZE (5u * 1024 * 1024)
#define KILN_S3_MAX_PARTS 10000
#define KILN_S3_MANIFEST_NAME ".kiln/deploy-manifest.json"

#define KILN_S3_CACHE_IMMUTABLE "public, max-age=31536000, immutable"
#define KILN_S3_CACHE_HTML "no-cache"
#define KILN_S3_CACHE_DEFAULT "public, max-age=3600"

typedef struct kiln_s3_opts {
    const char *cache_control;  /* overrides the policy for every object, or NULL */
    size_t multipart_threshold; /* 0: 8 MiB */
    size_t part_size;           /* 0: 8 MiB (at least 5 MiB) */
    unsigned concurrency;       /* 0: 16 files, 8 parts at a time (max 64) */
    int full;                   /* 1: upload everything, ignore the previous manifest */
} kiln_s3_opts_t;

typedef struct kiln_s3_stats {
    size_t files;    /* files found */
    size_t uploaded; /* objects written */
    size_t skipped;  /* unchanged since the previous deploy */
    size_t multipart;
    unsigned long long bytes; /* bytes uploaded */
} kiln_s3_stats_t;

/* A parsed `--output type=s3,...` spec. */
typedef struct kiln_s3_output {
    char *dest;          /* s3://bucket/prefix */
    char *cache_control; /* or NULL */
    kiln_s3_opts_t opts; /* opts.cache_control points at cache_control */
} kiln_s3_output_t;

/* Parses "type=s3,dest=s3://B/P[,cache-control=V][,part-size=N][,multipart-threshold=N]
 * [,concurrency=N][,full=true]". Sizes take K/M/G suffixes. A comma inside a
 * value is kept when what follows is not one of these keys, so
 * "cache-control=public, max-age=60" works unquoted. Returns -1 with err
 * naming the bad field. */
int kiln_s3_output_parse(const char *spec, kiln_s3_output_t *out, kiln_error_t *err);
void kiln_s3_output_clear(kiln_s3_output_t *out);

/* Reads a byte count with an optional K/M/G (KiB/MiB/GiB) suffix. */
int kiln_s3_parse_size(const char *s, size_t *out);

/* Splits "s3://bucket/prefix" into malloc'ed bucket and prefix ("" or without
 * leading/trailing '/'). Returns -1 naming the URL when it is malformed. */
int kiln_s3_parse_url(const char *url, char **bucket, char **prefix, kiln_error_t *err);

/* Uploads every regular file under dir to dest ("s3://bucket/prefix"), then
 * the deploy manifest. Symbolic links and special files are skipped (never
 * followed out of the tree). Returns -1 with err naming the file and the S3 error
 * code and message on failure. *stats is filled (also on failure). */
int kiln_s3_upload_dir(kiln_aws_t *aws, const char *dir, const char *dest,
                       const kiln_s3_opts_t *opts, kiln_s3_stats_t *stats, kiln_error_t *err);

/* Uploads one file to dest ("s3://bucket/key"; a dest ending in '/' gets the
 * file's base name appended). */
int kiln_s3_upload_file(kiln_aws_t *aws, const char *path, const char *dest,
                        const kiln_s3_opts_t *opts, kiln_s3_stats_t *stats, kiln_error_t *err);

/* Content-Type for a file name, from its extension (application/octet-stream
 * when unknown). */
const char *kiln_s3_content_type(const char *name);

/* Cache-Control policy: no-cache for HTML, immutable for content-hashed names
 * (app.3f9a1c2b.js, index-DiwrgTda.js), a short max-age otherwise. */
const char *kiln_s3_cache_control(const char *name);

#endif
