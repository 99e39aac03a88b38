/* kiln server — running one build job to its end, shared by the local worker pool and
 * `kiln worker` (SQS): `kiln job run` (a child process, runner.h) runs the whole job spec —
 * the request with the build's ids, its secrets (the git credential too) as files — the
 * entry point a person uses too: it checks the source out (or finds the uploaded context)
 * itself, plans, builds, exports and notifies. Its typed events (job/stream.h) move the
 * build's status (checkout is "cloning"), give its commit and, on failure, its reason
 * (clone_failed, no_space, disk_limit, timeout, build_failed), and are kept on its record;
 * no log line is read. */
#ifndef KILN_SERVER_JOB_H
#define KILN_SERVER_JOB_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "utils/error.h"

typedef struct kiln_job_env {
    const char *build_cmd;      /* kiln itself, run as `CMD job run …` */
    const char *kiln_root;      /* --root of the job; NULL = its default */
    char *const *build_options; /* the operator's, for every build (and its checkout's
                                   policy); may be NULL */
    const char *work_dir;       /* private scratch directory of this job (created, removed) */
    const char *log_path;       /* the job's append-only log */
    const char *artifacts_dir;  /* where the build's files (./kiln-out) are kept; NULL = drop */
    size_t log_cap;
    int timeout_s;          /* server limit; the request may ask for less (0 = none) */
    unsigned entitlements;  /* granted: a request's "allow" beyond them fails the build */
    char *const *child_env; /* the children's environment (the tenant's credentials,
                               tenantcreds.h); NULL = the server's own */
    const char *build_id;   /* the API's build id: the completion event's (kiln build
                               --build-id); NULL = kiln build makes one */
    const char *trigger;    /* what started it ("api", "webhook"); NULL = "api" */
} kiln_job_env_t;

typedef struct kiln_job_hooks {
    void (*started)(void *opaque, pid_t pgid, uint64_t start_ticks);
    void (*phase)(void *opaque, const char *status);
    void (*commit)(void *opaque, const char *sha);
    /* the checked-out commit's author and message (either NULL), once read */
    void (*source)(void *opaque, const char *author, const char *message);
    int (*should_stop)(void *opaque); /* cancel, drain, … */
    void *opaque;
} kiln_job_hooks_t;

typedef struct kiln_job_outcome {
    char status[16]; /* succeeded | failed | stopped (by should_stop) */
    char reason[32]; /* failed: build_failed | clone_failed | timeout | no_space |
                        disk_limit | error */
    char error[512];
    char *result; /* the build's metadata JSON (malloc'ed) or NULL; "files": [{"path", "size"}]
                     lists what it wrote to ./kiln-out (kept in artifacts_dir) */
} kiln_job_outcome_t;

/* Runs the job for a validated request (secret_files: name → file, may be NULL;
 * contexts_dir: where uploaded contexts are, as ID/ or ID.tar, or NULL). Always fills *out. */
void kiln_server_job_run(const kiln_job_env_t *env, json_t *request, json_t *secret_files,
                         const char *contexts_dir, const kiln_job_hooks_t *hooks,
                         kiln_job_outcome_t *out);

void kiln_job_outcome_free(kiln_job_outcome_t *o);

/* Bytes the build reports it pushed ("kiln.bytes_pushed" in its metadata), else 0. */
int64_t kiln_job_bytes_pushed(const char *result_json);

#endif
