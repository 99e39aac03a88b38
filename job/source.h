/* kiln — a job's source on disk, the first part of running a job (source → plan → solve →
 * export → notify): a git source checked out through kiln's mirror cache (with the
 * credential the spec names by reference, read from its file), an uploaded context found
 * where the operator keeps them (unpacked already, or a staged tarball unpacked here), or a
 * directory of a local spec. A git checkout notes its files in the stat cache of the
 * context's identity (the repository + subdirectory) by blob id, so the build after it
 * hashes only what changed since the last checkout of that repository. */
#ifndef KILN_JOB_SOURCE_H
#define KILN_JOB_SOURCE_H

#include <stdint.h>

#include "job/auto.h"
#include "job/spec.h"
#include "utils/error.h"
#include "utils/git.h"

typedef struct kiln_job_source_opts {
    const char *root;                    /* kiln root (mirrors, stat cache, work dirs) */
    char *const *env;                    /* KILN_GIT_CREDENTIALS, KILN_ROOT */
    const kiln_git_policy_t *git_policy; /* what a git source may reach; NULL = the default */
    /* where uploaded contexts are kept: ID/ (unpacked) or ID.tar (staged, unpacked here with
     * the default caps); NULL: a spec with an uploaded context fails naming source.context */
    const char *contexts_dir;
    /* a secret named without a source (the git credential ".git" included) is DIR/NAME */
    const char *secrets_dir;
    int64_t stat_cache_max; /* engine/statcache cap: 0 default, <0 none */
} kiln_job_source_opts_t;

/* Reads a credential file (TOKEN or USER:PASSWORD, the first line; at most 64 KiB) into
 * *cred (malloc'ed). -1 with err naming the file. */
int kiln_job_source_read_credential(const char *path, char **cred, kiln_error_t *err);

/* Puts the source of a validated spec on disk. out->dir is the tree to build (its subdir
 * applied), out->commit the exact commit of a git source, out->context_id the stat cache
 * identity of a git source; out->checkout (a git checkout or an unpacked tarball under the
 * kiln root) is removed by kiln_auto_source_release. The git credential (the spec's secret
 * ".git") reaches the checkout only: never a command line, an event or an error. -1 with
 * err naming the source (the URL without its credential) or the field. */
int kiln_job_source_fetch(const kiln_job_spec_t *s, const kiln_job_source_opts_t *o,
                          kiln_auto_source_t *out, kiln_error_t *err);

/* Removes the git credential (secret ".git") from a spec's secrets: after the checkout it
 * is no one's, and never a build step's. */
void kiln_job_source_drop_credential(kiln_job_spec_t *s);

#endif
