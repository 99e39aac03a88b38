/* kiln — AWS credentials, resolved the way the AWS SDKs do:
 *
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) section
 *      [PROFILE], then AWS_CONFIG_FILE (~/.aws/config) section [profile PROFILE]
 *      ([default] for the default profile); PROFILE is AWS_PROFILE or "default"
 *   3. ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *      (on 169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) as Authorization header
 *   4. EC2 instance metadata (IMDSv2: a session token from PUT /latest/api/token,
 *      then the instance role's credentials), at AWS_EC2_METADATA_SERVICE_ENDPOINT
 *      or http://169.254.169.254; skipped when AWS_EC2_METADATA_DISABLED=true
 *
 * A provider caches what it found and fetches again 5 minutes before the
 * expiry of temporary credentials. Secrets never appear in error messages. */
#ifndef KILN_UTILS_AWS_CREDENTIALS_H
#define KILN_UTILS_AWS_CREDENTIALS_H

#include <stddef.h>
#include <time.h>

#include "utils/aws/sigv4.h"
#include "utils/error.h"

/* Refresh this many seconds before temporary credentials expire. */
#define KILN_AWS_CREDS_REFRESH_MARGIN 300

typedef struct kiln_aws_cred_provider kiln_aws_cred_provider_t;

/* Runs the chain once. Fills *out on success; on failure err names every
 * source that was tried and why it gave nothing. */
int kiln_aws_credentials_resolve(kiln_aws_creds_t *out, kiln_error_t *err);

/* A thread-safe caching provider over the chain. */
kiln_aws_cred_provider_t *kiln_aws_cred_provider_new(void);
void kiln_aws_cred_provider_free(kiln_aws_cred_provider_t *p);
/* Copies current credentials into *out (caller clears them), resolving or
 * refreshing when needed. Returns -1 with err set when none can be found. */
int kiln_aws_cred_provider_get(kiln_aws_cred_provider_t *p, kiln_aws_creds_t *out,
                               kiln_error_t *err);

/* Makes p hand out creds (copied) from now on instead of looking them up: credentials the
 * caller read itself (a tenant's credentials file). */
void kiln_aws_cred_provider_set(kiln_aws_cred_provider_t *p, const kiln_aws_creds_t *creds);

/* ISO 8601 "2026-11-25T10:00:00Z" (fractions allowed) as a time_t; 0 if unparsable. */
time_t kiln_aws_time_parse(const char *s);

/* The profile in use: AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default". */
const char *kiln_aws_profile(void);

/* Largest shared config/credentials file read (bytes). */
#define KILN_AWS_INI_MAX (1024u * 1024)
/* Longest section name ("profile NAME" in config, "NAME" in credentials) that can be found:
 * inih keeps 49 bytes of a section name and cuts the rest, so a longer name could stand for
 * another profile that shares its first 49 bytes; such sections never match. */
#define KILN_AWS_INI_SECTION_MAX 48

/* Reads `key` (case-insensitive) of section `section` from INI text of len bytes, parsed with
 * inih in the ~/.aws file format: "[section]" (whitespace inside the brackets ignored),
 * "key = value" or "key: value", '#'/';' comment lines (no inline comments), indented lines
 * continue the previous key (ignored). The first value wins. Returns the malloc'ed value, or
 * NULL when absent, when the text is over KILN_AWS_INI_MAX or section over
 * KILN_AWS_INI_SECTION_MAX bytes. A NUL byte ends the text. */
char *kiln_aws_ini_get(const char *text, size_t len, const char *section, const char *key);

/* Reads `key` for the active profile from the shared config file
 * (AWS_CONFIG_FILE or ~/.aws/config). Returns malloc'ed value or NULL. */
char *kiln_aws_config_get(const char *key);

#endif
