/* kiln server — configuration: tenants and their API tokens, webhook projects, the build
 * policy and the request/connection bounds, from a JSON file (--config FILE) plus
 * KILN_API_TOKENS (comma-separated) from the environment. The format is documented in
 * docs/server-config.md. */
#ifndef KILN_SERVER_CONFIG_H
#define KILN_SERVER_CONFIG_H

#include <jansson.h>

#include "src/server/limits.h"
#include "utils/error.h"

/* Request and connection bounds (top-level numeric keys; defaults when absent). */
typedef struct kiln_config_bounds {
    long long max_webhook_bytes;
    long long connection_timeout;          /* s without traffic before a connection is closed */
    long long max_connections;             /* open at once (a thread each) */
    long long max_connections_per_address; /* open at once from one client address */
    long long max_context_unpacked_bytes;  /* an uploaded context's files added up */
    long long max_context_entries;         /* an uploaded context's members */
    long long delivery_retention;          /* s a webhook delivery id is remembered */
    long long build_log_retention;         /* s a finished build's log is kept (0: --gc-max-age) */
    long long access_log_retention;        /* s an --access-log file's lines are kept (0: all) */
} kiln_config_bounds_t;

struct kiln_tenant;

typedef struct kiln_config {
    json_t *projects; /* array of objects, each with "tenant" (set to "default" when absent) */
    json_t *policy;   /* the "policy" object (never NULL; entries checked at load) */
    kiln_config_bounds_t bounds;
    json_t *limits;              /* "limits": default build limits (validated), or NULL */
    json_t *max_limits;          /* "max_limits": the most a tenant or request may set, or NULL */
    kiln_stepcaps_t stepcaps;    /* "max_shm_size", "max_ulimits" (src/server/limits.h) */
    struct kiln_tenant *tenants; /* src/server/tenant.h; at least one */
    size_t n_tenants;
} kiln_config_t;

/* Loads path (may be NULL) and the environment's tokens. */
int kiln_config_load(const char *path, kiln_config_t **out, kiln_error_t *err);
void kiln_config_free(kiln_config_t *c);

/* The "policy.allow_addresses" entries (strings, validated at load). */
json_t *kiln_config_allow_addresses(const kiln_config_t *c);

/* The "policy.entitlements" granted (KILN_ENTITLEMENT_* bits; 0 by default). */
unsigned kiln_config_entitlements(const kiln_config_t *c);

/* The "policy.isolation" ("sandbox" by default, or "chroot"). */
const char *kiln_config_isolation(const kiln_config_t *c);

/* Number of API tokens configured, all tenants together. */
size_t kiln_config_token_count(const kiln_config_t *c);

/* The project whose `key` ("github" or "gitlab") equals name, or NULL. */
json_t *kiln_config_project(const kiln_config_t *c, const char *key, const char *name);

#endif
