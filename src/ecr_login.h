/* kiln — the built-in "ecr-login" credential helper: hands ECR tokens
 * (utils/aws/ecr.h) to the registry client as Basic credentials; and
 * --ecr-create-repository for the commands that push. */
#ifndef KILN_SRC_ECR_LOGIN_H
#define KILN_SRC_ECR_LOGIN_H

#include <stddef.h>

#include "utils/error.h"

/* Registers the helper under the name "ecr-login" (docker config.json
 * credHelpers / credsStore). Call once at start-up. */
void kiln_cli_ecr_register(void);

/* 1 when registry host ("HOST[:PORT]") is served by ECR: an ECR host name
 * (<account>.dkr.ecr.<region>.amazonaws.com), or a host whose docker
 * config.json credHelpers entry (or credsStore) is "ecr-login". 0 otherwise
 * (also when config.json is unreadable: the push reports that itself). */
int kiln_cli_ecr_is_ecr(const char *host);

/* --ecr-create-repository: before a push to refs[0..n), creates the
 * repository of every reference whose registry is ECR when it is missing
 * (CreateRepository; "already exists" is success), once per repository.
 * References to other registries are left alone (a note on stderr).
 * Returns -1 with err naming the repository and ECR's error code. */
int kiln_cli_ecr_create_repositories(const char *const *refs, size_t n, kiln_error_t *err);

#endif
