/* kiln — AWS region and endpoint resolution, as the AWS SDKs do it.
 *
 *   region:   AWS_REGION, AWS_DEFAULT_REGION, `region` of the active profile
 *             in the shared config file, else us-east-1
 *   endpoint: AWS_ENDPOINT_URL_<SERVICE> (S3, SQS, SNS, ECR), AWS_ENDPOINT_URL,
 *             else the public endpoint of the service in the region
 *             (amazonaws.com, amazonaws.com.cn for cn-* regions). */
#ifndef KILN_UTILS_AWS_ENDPOINT_H
#define KILN_UTILS_AWS_ENDPOINT_H

#include "utils/error.h"

/* The region (malloc'ed). Never fails: falls back to us-east-1. */
char *kiln_aws_region_resolve(void);

typedef struct kiln_aws_endpoint {
    char *scheme;    /* "https" or "http" */
    char *host;      /* host[:port] as it goes in the Host header */
    char *base_path; /* "" or "/some/prefix" (no trailing slash) */
    int custom;      /* 1 when it came from an AWS_ENDPOINT_URL* override */
} kiln_aws_endpoint_t;

void kiln_aws_endpoint_clear(kiln_aws_endpoint_t *e);

/* Parses an endpoint URL "scheme://host[:port][/path]". Returns -1 (err names
 * the URL) when it is not http(s) or has no host. */
int kiln_aws_endpoint_parse(const char *url, kiln_aws_endpoint_t *out, kiln_error_t *err);

/* Resolves the endpoint of `service` ("s3", "sqs", "sns", "ecr") in region.
 * Returns -1 when an override is malformed. */
int kiln_aws_endpoint_resolve(const char *service, const char *region, kiln_aws_endpoint_t *out,
                              kiln_error_t *err);

#endif
