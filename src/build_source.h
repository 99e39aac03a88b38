/* kiln build — where its context comes from, besides a directory: a tarball on stdin
 * unpacked under the kiln root, or a git source checked out as an auto build's is (job/auto:
 * the mirror cache, the git policy, the stat cache noted by blob id) for a Dockerfile (-f)
 * build; a checked-out source is named on the terminal and in the completion event. */
#ifndef KILN_SRC_BUILD_SOURCE_H
#define KILN_SRC_BUILD_SOURCE_H

#include <jansson.h>

#include "job/auto.h"
#include "src/build_opts.h"
#include "utils/error.h"
#include "utils/git.h"

/* Unpacks the context tarball read from stdin into a fresh directory under the kiln root;
 * *out is that directory (the caller removes it). */
int kiln_build_context_from_stdin(const char *root, char **out, kiln_error_t *err);

/* A checked-out git source (commit set): said on the terminal and as the completion event's
 * source repo and commit. */
void kiln_build_note_source(json_t *ev, const kiln_auto_source_t *src);

/* Checks url (URL[#REF[:SUBDIR]], --subdir) out into *src (kiln_auto_source_release removes
 * it; phase checkout on o->events_fd); *dockerfile is -f's file inside the checkout
 * (malloc'ed) when -f names a relative file, else NULL. -1 with err naming the source. */
int kiln_build_git_context(const kiln_build_opts_t *o, const char *url,
                           const kiln_git_policy_t *gitpol, json_t *ev, kiln_auto_source_t *src,
                           char **dockerfile, kiln_error_t *err);

#endif
