/* kiln — Amazon ECR: registry host recognition, GetAuthorizationToken (JSON
 * 1.1 protocol, SigV4 for "ecr") with a process-wide token cache, and
 * CreateRepository.
 *
 * ECR registries are "<account>.dkr.ecr.<region>.amazonaws.com[.cn]"; for any
 * other host (a docker config.json credHelpers entry "ecr-login" can point
 * any host at this helper) the region and endpoint come from the usual
 * resolution (AWS_REGION, AWS_ENDPOINT_URL_ECR, ...). */
#ifndef KILN_UTILS_AWS_ECR_H
#define KILN_UTILS_AWS_ECR_H

#include <time.h>

#include "utils/aws/client.h"
#include "utils/error.h"

/* Re-fetch a cached token this many seconds before it expires. */
#define KILN_ECR_REFRESH_MARGIN 300

/* Returns 1 and fills *account / *region (malloc'ed, either may be NULL)
 * when host (optionally with ":port") is an ECR registry, else 0. */
int kiln_ecr_parse_host(const char *host, char **account, char **region);

/* Basic credentials for registry `host`: "AWS" and the token's password.
 * Served from the cache while the token is valid for at least
 * KILN_ECR_REFRESH_MARGIN seconds more. *expires_at may be NULL. Returns -1
 * with err set (ECR error code, never the token) on failure. */
int kiln_ecr_login(kiln_aws_t *aws, const char *host, char **username, char **password,
                   time_t *expires_at, kiln_error_t *err);

/* Creates repository `name` in the registry of host. Returns 1 when it was
 * created, 0 when it already existed, -1 on error. */
int kiln_ecr_create_repository(kiln_aws_t *aws, const char *host, const char *name,
                               kiln_error_t *err);

/* Drops every cached token (tests, credential changes). */
void kiln_ecr_cache_clear(void);

#endif
