/* kiln server — tenants: who a request acts for. Each API token belongs to exactly one
 * tenant; a build belongs to the tenant whose token (or webhook project) made it, and is
 * invisible (404) to every other tenant. The config format is in docs/server-config.md. */
#ifndef KILN_SERVER_TENANT_H
#define KILN_SERVER_TENANT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "src/server/config.h"
#include "utils/error.h"

/* The tenant of the old single-tenant forms (top-level "tokens", KILN_API_TOKENS,
 * --no-auth) and of webhook projects that name none. */
#define KILN_TENANT_DEFAULT "default"

/* Longest tenant name: [a-z0-9][a-z0-9_-]{0,62}. */
#define KILN_TENANT_NAME_MAX 63

typedef struct kiln_tenant {
    char *name;                /* "default" for the old single-tenant forms */
    json_t *registry_prefixes; /* array of strings, NULL = no restriction */
    json_t *s3_prefixes;       /* array of strings, NULL = no restriction */
    json_t *notify_targets;    /* exact sqs:// / sns:// targets, NULL = no restriction */
    unsigned entitlements;     /* KILN_ENTITLEMENT_* the tenant may ask for */
    json_t *limits;            /* the tenant's "limits" object or NULL */
    long long max_concurrent;  /* 0 = unbounded */
    json_t *raw;               /* the tenant's whole config object (other keys: credentials…) */
    /* the SHA-256 of each token (clear ones hashed at load), compared in constant time */
    uint8_t (*token_hashes)[32];
    size_t n_tokens;
} kiln_tenant_t;

/* The tenant whose token the "Bearer …" header value carries, or NULL (no header, another
 * scheme, an unknown token). Every configured token is compared, so the time taken does not
 * tell which one (or which tenant's) matched. */
const kiln_tenant_t *kiln_config_tenant_for_token(const kiln_config_t *c,
                                                  const char *authorization);

/* The tenant called name, or NULL. */
const kiln_tenant_t *kiln_config_tenant_named(const kiln_config_t *c, const char *name);

/* Checks request's outputs, tags and notify targets against tenant t's "outputs" (see
 * src/server/outconf.h); on failure *status is 400 or 403 and err names the field and rule. */
int kiln_tenant_check_outputs(const kiln_tenant_t *t, json_t *request, unsigned *status,
                              kiln_error_t *err);

/* 1 when name is a valid tenant name ([a-z0-9][a-z0-9_-]{0,62}). */
int kiln_tenant_name_valid(const char *name);

/* Fills c->tenants from root's "tenants" (root may be NULL), the top-level tokens in
 * legacy_tokens (strings, may be empty: "default" then has no token) and c->policy's
 * entitlements. Without a "tenants" list there is one tenant, "default", with no output
 * restrictions; with one, "default" is added only when legacy tokens exist. Checks names
 * (valid, unique), tokens (8+ characters or sha256:<64 hex>, each in one tenant only) and
 * keys (unknown ones refused); fails naming the tenant and key, never a token. */
int kiln_tenants_load(kiln_config_t *c, json_t *root, json_t *legacy_tokens, kiln_error_t *err);

/* Releases c->tenants. */
void kiln_tenants_free(kiln_config_t *c);

#endif
