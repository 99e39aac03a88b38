/* kiln — registry credentials from docker's config.json, the way docker reads them:
 *
 *   $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json
 *   "credHelpers": {"HOST": "NAME"}  → run `docker-credential-NAME get` (or a
 *                                      built-in provider registered under NAME)
 *   "credsStore": "NAME"             → the same helper for every host
 *   "auths": {"HOST": {"auth": base64("user:password")}} (also "username"/"password",
 *            "identitytoken"; keys may be "https://HOST" or "https://index.docker.io/v1/")
 *
 * Secrets never appear in error messages. */
#ifndef KILN_OCI_DOCKER_CONFIG_H
#define KILN_OCI_DOCKER_CONFIG_H

#include "utils/error.h"

/* Cap on config.json and on a credential helper's answer. */
#define KILN_DOCKER_CONFIG_MAX (1024u * 1024)

typedef struct kiln_cred {
    char *username;       /* NULL when only a token is known */
    char *password;       /* secret */
    char *identity_token; /* OAuth refresh token ("<token>" helper user), or NULL */
} kiln_cred_t;

/* Wipes (explicit_bzero) and frees the strings of a credential. */
void kiln_cred_clear(kiln_cred_t *c);

/* A built-in credential provider standing in for `docker-credential-<name>`
 * (e.g. "ecr-login" served by kiln's own ECR code). host is "HOST[:PORT]".
 * Returns 1 with *out filled, 0 when it has nothing for host, <0 on error. */
typedef int (*kiln_cred_provider_fn)(const char *host, kiln_cred_t *out, void *ud,
                                     kiln_error_t *err);

/* Registers (or with fn NULL removes) the provider for helper `name`. Up to 8
 * providers; not thread-safe: register at start-up. Returns -1 when full. */
int kiln_docker_config_set_provider(const char *name, kiln_cred_provider_fn fn, void *ud);

/* The config.json path in use (malloc'ed), or NULL when neither DOCKER_CONFIG
 * nor HOME is set. */
char *kiln_docker_config_path(void);

/* Looks up credentials for registry `registry` ("docker.io", "host:5000").
 * Returns 1 with *out filled, 0 when there are none (no file, no entry),
 * <0 on a broken config file or a failing helper. */
int kiln_docker_config_get(const char *registry, kiln_cred_t *out, kiln_error_t *err);

/* Saves credentials like `docker login`: through the configured helper when
 * there is one for the host, else as auths[HOST].auth in config.json (written
 * atomically, mode 0600, other keys kept). */
int kiln_docker_config_store(const char *registry, const char *username, const char *password,
                             kiln_error_t *err);

/* Removes the credentials of a host from config.json (helpers: `erase`).
 * Returns 1 when something was removed, 0 when nothing was there. */
int kiln_docker_config_erase(const char *registry, kiln_error_t *err);

#endif
