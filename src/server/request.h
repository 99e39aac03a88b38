/* kiln server — a build request: validation of the POST /v1/builds body (and the
 * SQS job JSON), and the job spec `kiln job run` runs for it.
 *
 * Body: {"source": {"git": URL, "ref": R, "commit": SHA, "subdir": DIR, "token": T} |
 *                   {"context": ID},
 *        "dockerfile": PATH, "target": NAME, "build_args": {K: V}, "env": {K: V},
 *        "secrets": {NAME: VALUE}, "outputs": [{"type": T, KEY: VALUE…}], "tags": [REF],
 *        "notify": ["sqs://…" | "sns://…"], "timeout_seconds": N,
 *        "limits": {"memory": "512m", "pids": N, "cpu_time": SECONDS},
 *        "allow": ["network.host" | "security.insecure"]}   entitlements (see
 *        engine/entitlement.h), honoured only where the server grants them
 * The stored request (and the SQS job) also has "tenant": NAME, the build's tenant, which the
 * server sets; the API refuses a body that names one.
 * Unknown fields are rejected, so a typo never silently builds something else. The body is
 * read as a job spec (job/codec.h, KILN_JOB_JSON_REQUEST), so it is checked completely
 * (outputs, references, URLs, limits) before anything is queued; what is stored is the spec's
 * JSON form, secrets by name. */
#ifndef KILN_SERVER_REQUEST_H
#define KILN_SERVER_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "job/spec.h"
#include "utils/error.h"

/* The secret holding the git source's credential: a URL's userinfo ("USER:PASSWORD" or an
 * http(s) "TOKEN@") or source.token, taken out of the URL. Not a valid name for a build's
 * own secrets; handed only to the job's checkout (a file named by the spec). */
#define KILN_REQUEST_GIT_SECRET KILN_JOB_GIT_SECRET

typedef struct kiln_request {
    json_t *stored;  /* the request as kept in the database: secret values removed */
    json_t *secrets; /* {name: value}, or NULL; never stored, never logged */
    char *repo;      /* the key builds are grouped (and scheduled fairly) by */
} kiln_request_t;

/* Parses and validates a JSON body of len bytes. On failure err names the field. */
int kiln_request_parse(const char *body, size_t len, kiln_request_t *out, kiln_error_t *err);

/* Validates an already parsed request object (borrowed). */
int kiln_request_from_json(json_t *root, kiln_request_t *out, kiln_error_t *err);

void kiln_request_free(kiln_request_t *r);

/* Checks that every entitlement the stored request asks for ("allow") is in
 * `granted` (KILN_ENTITLEMENT_* bits); fails naming the first that is not. */
int kiln_request_check_allow(json_t *stored, unsigned granted, kiln_error_t *err);

/* The ids a server build's job carries beyond its request (NULL: not set). */
typedef struct kiln_request_ids {
    const char *build_id, *repo, *commit, *branch, *trigger;
} kiln_request_ids_t;

/* The JSON text of the job spec `kiln job run` runs for a stored request (malloc'ed): file
 * outputs under KILN_OUTCONF_DIR, each secret (the git credential too) read from its file in
 * secret_files (name → file; a secret without one fails), the source as the request named it
 * (the job fetches it), the ids added, the tenant as the cache namespace; validated as a
 * whole (a local spec: the paths are the server's own). */
int kiln_request_job_spec(json_t *stored, json_t *secret_files, const kiln_request_ids_t *ids,
                          char **spec_json, kiln_error_t *err);

#endif
