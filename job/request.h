/* kiln — a validated job spec as the build engine's request (engine/build.h): its build
 * arguments, secrets, labels, named contexts, registries, cache and options as the lists the
 * engine reads, and its outputs as the exporters' texts ("type=oci,dest=out"). What the
 * caller adds: the context directory and Dockerfile (the source on disk), the operator's
 * policy and the callbacks (job/run.c). Pure: no I/O. */
#ifndef KILN_JOB_REQUEST_H
#define KILN_JOB_REQUEST_H

#include "engine/build.h"
#include "job/spec.h"
#include "utils/error.h"

typedef struct kiln_job_request {
    kiln_build_request_t req; /* its lists point into the ones below */
    char **build_args;        /* "K=V" | "K" (a local spec's value from the environment) */
    char **secrets;           /* "id=ID,src=FILE" | "id=ID,env=VAR" */
    char **labels, **contexts;
    char **hosts;           /* /etc/hosts lines of the spec's add_hosts */
    kiln_ulimit_t *ulimits; /* the spec's ulimits, parsed */
    char **outputs;         /* one exporter text per output, NULL-terminated */
    size_t n_outputs;
} kiln_job_request_t;

/* Fills out from s. A secret named without a source is read from secrets_dir/ID (NULL: such
 * a secret fails naming "secrets.ID"); the git credential (secret ".git") is the
 * checkout's, never the build's, and fails too. -1 with err naming the field. */
int kiln_job_request_make(const kiln_job_spec_t *s, const char *secrets_dir,
                          kiln_job_request_t *out, kiln_error_t *err);

/* The host as a RUN step on network sees it (docker's host-gateway): "127.0.0.1" with
 * network "host", slirp's alias of the host's loopback "10.0.2.2" on the default (nat)
 * network, where a step reaches it only on what --allow-address 127.0.0.1[:PORT] opens. */
#define KILN_JOB_HOST_GATEWAY_NAT "10.0.2.2"
#define KILN_JOB_HOST_GATEWAY_HOST "127.0.0.1"

/* --add-host HOST:IP (sandbox/stepopts.h) as an /etc/hosts line (malloc'ed), HOST:host-gateway
 * naming the host as a step on network (NULL: "default") sees it. -1 naming the flag. */
int kiln_job_add_host_line(const char *spec, const char *network, char **line, kiln_error_t *err);

/* Adds an output text (an auto build's default output). */
void kiln_job_request_add_output(kiln_job_request_t *r, const char *text);

void kiln_job_request_clear(kiln_job_request_t *r);

#endif
