/* kiln server — configuration: API tokens and webhook projects.
 *
 * A JSON file (--config FILE):
 *   {"tokens": ["…"],                         API bearer tokens
 *    "projects": [{"name": "app",
 *                  "github": "org/app",        repository full_name for GitHub pushes
 *                  "gitlab": "group/app",      path_with_namespace for GitLab pushes
 *                  "secret": "…",              GitHub webhook secret (HMAC-SHA256)
 *                  "gitlab_token": "…",        GitLab X-Gitlab-Token
 *                  "build": {…}}],              request fields added to the build (outputs…)
 *    "policy": {"allow_addresses": ["10.8.0.0/16:3128", …],
 *                                              non-public destinations the builds may reach
 *                                              (RUN on nat, host-side fetches); each entry
 *                                              CIDR[:PORT] as `--allow-address`
 *               "entitlements": ["network.host", "security.insecure"],
 *                                              what a request's "allow" may ask for
 *                                              (none by default)
 *               "allow_http_git": false,       plain http:// and git:// git sources and
 *                                              submodules (https:// and ssh:// only otherwise)
 *               "oci_dirs": ["/var/cache/kiln/images"],
 *                                              where FROM oci: may read layouts (default:
 *                                              $KILN_IMAGES_DIR, else kiln's image directory)
 *               "isolation": "sandbox" | "chroot"},
 *                                              how build steps are confined: chroot (no
 *                                              user namespace, steps run as real root) only
 *                                              when set here
 *    "max_webhook_bytes": 5242880,               largest webhook body (413 above it; bodies
 *                                              are refused on Content-Length before any
 *                                              is read, chunked ones cut off at the cap)
 *    "connection_timeout": 30,                 seconds a connection may stay silent, and
 *                                              may take to send a request's headers
 *    "max_connections": 4096,                  connections open at once, all clients
 *    "max_connections_per_address": 128,       connections open at once from one address
 *                                              (further ones are closed on accept)
 *    "max_context_unpacked_bytes": 2147483648, an uploaded context's file sizes added up
 *                                              (sparse files at full size)
 *    "max_context_entries": 100000,            an uploaded context's members; past either
 *                                              cap the upload is 413 naming it, nothing kept
 *                                              (the compressed size is --max-upload)
 *    "delivery_retention": 604800,             seconds a webhook delivery id (or an
 *                                              Idempotency-Key) is remembered: a replay
 *                                              within it answers the build it started
 *    "limits": {"memory": "4g", "pids": 4096,  default limits of every build (limits.h);
 *               "cpu_time": S, "wall_time": S}, --build-* options win over them
 *    "max_limits": {…same keys…}}              the most a tenant's "limits" or a request
 *                                              may ask for (a default without one is it)
 * plus KILN_API_TOKENS (comma-separated) from the environment. */
#ifndef KILN_SERVER_CONFIG_H
#define KILN_SERVER_CONFIG_H

#include <jansson.h>

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
} kiln_config_bounds_t;

typedef struct kiln_config {
    json_t *tokens;   /* array of strings */
    json_t *projects; /* array of objects */
    json_t *policy;   /* the "policy" object (never NULL; entries checked at load) */
    kiln_config_bounds_t bounds;
    json_t *limits;     /* "limits": default build limits (validated), or NULL */
    json_t *max_limits; /* "max_limits": the most a tenant or request may set, or NULL */
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

/* 1 when the "Bearer …" header value carries a configured token (constant-time compare). */
int kiln_config_auth(const kiln_config_t *c, const char *authorization);

/* The project whose `key` ("github" or "gitlab") equals name, or NULL. */
json_t *kiln_config_project(const kiln_config_t *c, const char *key, const char *name);

#endif
