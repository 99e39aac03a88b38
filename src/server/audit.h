/* kiln server — the audit trail of a build: who triggered it, kept on its record (kiln.db
 * column `audit`, "triggered_by" in GET /v1/builds/ID), and the keys that make a replayed
 * webhook delivery or a retried submission find the build it already started.
 *
 * Never a token: an API token is named by "sha256:" and the first 12 hex digits of its
 * SHA-256 (the start of the `sha256:<hex>` form a config may hold it in); webhook secrets
 * and signatures are not kept at all. */
#ifndef KILN_SERVER_AUDIT_H
#define KILN_SERVER_AUDIT_H

#include <jansson.h>

#include "utils/error.h"

/* The longest delivery id or idempotency key taken. */
#define KILN_AUDIT_KEY_MAX 128

/* "sha256:<12 hex>" for the bearer token of an Authorization header value (malloc'ed);
 * NULL when it holds no bearer token. */
char *kiln_audit_token_id(const char *authorization);

/* A build asked for through the API: {"via": "api", "tenant", "token", "idempotency_key"}
 * (absent values left out). */
json_t *kiln_audit_api(const char *tenant, const char *authorization, const char *idem_key);

/* A build started by a push webhook (via "github" or "gitlab"): {"via", "tenant", "project",
 * "delivery", "event", "pusher", "commit_author", "commit_message"} with the pusher and the
 * pushed commit's author and message taken from the payload when it names them (strings
 * capped). */
json_t *kiln_audit_webhook(const char *via, const char *tenant, const char *project,
                           const char *delivery, const char *event, json_t *payload);

/* Checks a delivery id or idempotency key from header `name` (1 to KILN_AUDIT_KEY_MAX
 * printable ASCII characters); fails naming the header. */
int kiln_audit_check_key(const char *name, const char *value, kiln_error_t *err);

/* The key a build is deduplicated by: "<kind>:<scope>:<value>" (malloc'ed), scoped so that
 * one project's or tenant's keys never match another's; NULL when value is NULL. */
char *kiln_audit_dedupe_key(const char *kind, const char *scope, const char *value);

#endif
