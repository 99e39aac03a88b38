/* kiln — a job spec as `kiln build` arguments: how `kiln job run` drives the build path the
 * CLI uses. Pure: no I/O. */
#ifndef KILN_JOB_ARGV_H
#define KILN_JOB_ARGV_H

#include "job/spec.h"
#include "utils/error.h"

typedef struct kiln_job_argv_opts {
    const char *root;          /* --root, or NULL */
    const char *metadata_file; /* --metadata-file, or NULL */
    const char *secrets_dir;   /* where secrets named without a source are read (DIR/NAME) */
    const char *progress;      /* --progress value, or NULL */
    int events_fd;             /* > 0: --events-fd N (the build's typed events), else none */
    /* the operator's own `kiln build` options (--insecure-registry H, --server-mode, …),
     * NULL-terminated or NULL: never from a spec */
    const char *const *extra;
} kiln_job_argv_opts_t;

/* The arguments after `kiln` for a validated spec: "build" [options] CONTEXT, NULL-terminated
 * (kiln_strv_free). Fails naming the field when the spec needs what `kiln build` cannot be
 * given: an uploaded context, a secret without a source, a git credential. */
int kiln_job_build_argv(const kiln_job_spec_t *s, const kiln_job_argv_opts_t *o, char ***argv,
                        kiln_error_t *err);

#endif
