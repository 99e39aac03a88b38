/* kiln server — per-tenant registry and AWS credentials. A tenant's "credentials" (see
 * docs/server-config.md) act for that tenant's builds only: pushes, registry cache, S3
 * uploads and cache, SNS/SQS notify. They reach the build's children as 0600 files in the
 * build's 0700 secrets directory (a docker config.json, an AWS shared credentials file),
 * named by environment variables that hold paths, never a secret. The server's own
 * credentials (environment, ~/.docker, ~/.aws, instance role) reach only the builds of
 * tenants that inherit them: the "default" tenant of single-tenant installs, or a tenant
 * with "inherit": true. */
#ifndef KILN_SERVER_TENANTCREDS_H
#define KILN_SERVER_TENANTCREDS_H

#include <jansson.h>

#include "utils/error.h"

/* The directory, inside a build's secrets directory, holding its credential files. Secret
 * names start with a letter or '_', so no request secret can be called this. */
#define KILN_TENANTCREDS_DIR ".creds"

/* Where a tenant's builds get one kind of credentials from. */
typedef enum {
    KILN_CREDS_NONE,   /* none at all: the server's are scrubbed */
    KILN_CREDS_SERVER, /* the server's own (its environment, ~/.docker, ~/.aws …) */
    KILN_CREDS_OWN,    /* the tenant's "credentials" */
} kiln_creds_source_t;

/* Checks a tenant's "credentials" value (where names the tenant: "tenant 'acme'") and reads
 * the files it names (auth_file, password_file, credentials_file), so a typo stops the
 * server at start. Fails naming the key and file, never a secret. */
int kiln_tenantcreds_check(json_t *creds, const char *where, kiln_error_t *err);

/* Where tenant `tenant`'s builds get kind "registry" or "aws" credentials from; creds is
 * the tenant's "credentials" value (NULL when absent or the tenant is unknown). */
kiln_creds_source_t kiln_tenantcreds_source(json_t *creds, const char *tenant, const char *kind);

/* Prepares one build's credentials: writes the tenant's files under
 * secrets_dir/KILN_TENANTCREDS_DIR (0700; files 0600; an AWS role is assumed through STS
 * now) and returns in *envp the environment of the build's child processes: base (the
 * server's environment) without what the tenant may not inherit, plus the paths of its
 * files. Fails naming the tenant and what could not be read or assumed. */
int kiln_tenantcreds_prepare(json_t *creds, const char *tenant, const char *secrets_dir,
                             char *const *base, char ***envp, kiln_error_t *err);

#endif
