/* kiln — the run of a whole build job: the one entry point `kiln build` (its flags made into
 * a kiln_job_spec_t) and `kiln job run` (the server's and workers' JSON job) both call.
 *
 * From a validated spec whose source is a directory or a git URL: the source (a git URL
 * checked out through job/auto; an auto build's plan detected and rendered), ECR
 * repositories of the registry cache created, the engine (engine/build.h), the image's size,
 * every output through its exporter (export/: an auto build's function zips first), the
 * completion event (job/event.h) with the job's ids, its notifications (SQS/SNS) and the
 * metadata file. What happens is reported through one typed callback: phases, the engine's
 * progress lines or typed step events, notes and warnings for a person, and the failure with
 * its code (job/stream.h) — never printed: the caller renders them (a terminal, a JSON-lines
 * stream). */
#ifndef KILN_JOB_RUN_H
#define KILN_JOB_RUN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/build.h"
#include "engine/events.h"
#include "export/export.h"
#include "job/spec.h"
#include "oci/digest.h"
#include "utils/error.h"

typedef enum kiln_job_run_kind {
    /* text: checkout, planning, building, exporting, pushing, uploading, notifying */
    KILN_JOB_RUN_PHASE = 0,
    KILN_JOB_RUN_STEP,    /* step: a typed step event of the engine (opts.typed_steps) */
    KILN_JOB_RUN_LOG,     /* text: a progress line of the engine (opts.progress's form) */
    KILN_JOB_RUN_NOTE,    /* text: what the job did, for a person */
    KILN_JOB_RUN_WARNING, /* text: what failed without failing the build (a notification) */
    /* code (job/stream.h), text: the job failed; in_build: the engine's own failure, and
     * explained (or NULL) the same in the user's terms (an auto build's step named as theirs) */
    KILN_JOB_RUN_FAILED,
} kiln_job_run_kind_t;

typedef struct kiln_job_run_event {
    kiln_job_run_kind_t kind;
    const char *text;
    const char *code;
    int in_build;
    const char *explained;
    /* a step's failure: {"step", "name", "instruction", "file", "line", "exit_status",
     * "error", "log": [last lines]} (job/failure.h), also the completion event's "failure";
     * NULL when no step failed */
    const json_t *failure;
    const kiln_step_event_t *step;
} kiln_job_run_event_t;

typedef void (*kiln_job_run_fn)(void *ud, const kiln_job_run_event_t *ev);

typedef struct kiln_job_run_opts {
    const char *root; /* kiln root; NULL: the store's default (auto builds: $KILN_ROOT) */
    char *const *env; /* build args without a value, env secrets, KILN_BUILD_ID, git tokens */
    kiln_build_progress_t progress; /* the form of the engine's lines */
    int typed_steps;                /* step events as KILN_JOB_RUN_STEP, not lines */
    const char *secrets_dir;        /* secrets named without a source: DIR/ID */
    /* how the source was given, for the completion event (NULL: the spec's source) */
    const char *context_display;
    /* the commit's author and message when the caller checked the source out itself (kiln job
     * run), for the completion event's source; NULL: unknown (a git source checked out here
     * reports its own) */
    const char *source_author, *source_message;
    /* the context was unpacked for this build only (a tarball on stdin): no stat cache
     * unless the spec names the context's identity */
    int scratch_context;
    const char *dockerfile_text; /* `-f -`: the Dockerfile, read by the caller */
    size_t dockerfile_len;
    /* the operator's policy (never a tenant's) */
    const char *registry_config;
    int server_mode, allow_http_git;
    const char *const *oci_dirs;
    size_t n_oci_dirs;
    /* additional (read-only) image stores (oci/additional_store.h), the operator's: the root
     * finds blobs and unpacked base layers there; one that cannot be used is warned about */
    const char *const *additional_stores;
    size_t n_additional_stores;
    const char *const *allow_addresses;
    size_t n_allow_addresses;
    int64_t stat_cache_max; /* engine/statcache: 0 the default, <0 none */
    int ecr_create;         /* create missing ECR repositories of the pushes and cache */
    kiln_export_ecr_fn ecr_create_fn;
    const char *metadata_file; /* write the metadata JSON here, or NULL */
    kiln_job_run_fn event;
    void *ud;
} kiln_job_run_opts_t;

typedef struct kiln_job_run_result {
    int built;                                   /* the engine made the image */
    char digest[KILN_DIGEST_STR_MAX];            /* its manifest digest, when built */
    const char *code;                            /* a failure's code (job/stream.h), else NULL */
    uint64_t size_compressed, size_uncompressed; /* the image's size, when measured */
} kiln_job_run_result_t;

/* Runs the job s (validated; source a directory or a git URL) to its end: notifications
 * and the metadata file are written whether it succeeded or failed. 0 when it succeeded, -1
 * with err (and out->code, and a KILN_JOB_RUN_FAILED event) when it did not. */
int kiln_job_run(const kiln_job_spec_t *s, const kiln_job_run_opts_t *o, kiln_job_run_result_t *out,
                 kiln_error_t *err);

#endif
