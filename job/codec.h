/* kiln — the job spec's JSON form: read (then validated completely, job/spec.h); written by
 * job/codec_write.
 *
 * The JSON form is a superset of the API's POST /v1/builds body:
 *   {"source": {"git": URL, "ref": R, "commit": SHA, "subdir": DIR, "token": T} |
 *              {"context": "ctx-<hex>"} | {"dir": DIR} (local),
 *    "dockerfile": PATH, "target": NAME, "build_args": {K: V}, "env": {K: V},
 *    "secrets": {NAME: VALUE} (a request) | [NAME | {"id": NAME, "src": FILE | "env": VAR}],
 *    "outputs": [{"type": T, KEY: VALUE…}], "tags": [REF], "notify": ["sqs://…" | "sns://…"],
 *    "timeout_seconds": N, "limits": {"memory": "512m", "pids": N, "cpu_time": S,
 *    "wall_time": S, "disk": "10g"}, "allow": ["network.host" | "security.insecure"],
 *    "tenant": NAME, the build options a request may carry (job/options.h: "labels",
 *    "compression", "compression_level", "source_date_epoch", "network"),
 *  and beyond a request (a spec handed to a builder, never a tenant's):
 *    "build_id": ID, "repo": URL, "commit": SHA, "branch": B, "trigger": T, "plan": FILE (local),
 *    "platform": "linux/amd64",
 *    "cache": {"disabled": BOOL, "from": [REF], "to": REF, "mode": "max" | "min",
 *              "namespace": NAME, "context_id": ID},
 *    "build_contexts", "registry", "isolation", "ssh" (job/options.h)}
 * Unknown fields are refused (a typo never silently builds something else). Secret values
 * and a git URL's credential are taken out into a separate object: the spec, and so its JSON
 * output, names secrets only. */
#ifndef KILN_JOB_CODEC_H
#define KILN_JOB_CODEC_H

#include <jansson.h>
#include <stddef.h>

#include "job/spec.h"
#include "utils/error.h"

enum {
    /* an API request body (or the queue message made from one): secrets are {NAME: VALUE};
     * only the request's fields */
    KILN_JOB_JSON_REQUEST = 1u << 0,
    /* from the person running kiln (a --spec file): the spec is local (see spec.h) */
    KILN_JOB_JSON_LOCAL = 1u << 1,
};

/* Reads and validates a spec from root (borrowed). *secrets (may be NULL to refuse secret
 * values) receives {NAME: VALUE} of the values the JSON carried (the request's secrets, the
 * git credential as KILN_JOB_GIT_SECRET), or NULL when it carried none. On failure nothing
 * is returned and err reads "field 'NAME': what is wrong". */
int kiln_job_from_json(json_t *root, unsigned flags, kiln_job_spec_t *out, json_t **secrets,
                       kiln_error_t *err);

/* Loads len bytes of JSON text (duplicate keys refused); NULL with err saying where it is
 * malformed. */
json_t *kiln_job_json_load(const char *text, size_t len, kiln_error_t *err);

/* kiln_job_from_json from len bytes of JSON text (duplicate keys refused). */
int kiln_job_parse(const char *text, size_t len, unsigned flags, kiln_job_spec_t *out,
                   json_t **secrets, kiln_error_t *err);

#endif
