/* kiln build — a context given as a tarball on stdin, unpacked under the kiln root for this
 * build only (a git source is checked out by the job itself: job/run.h). */
#ifndef KILN_SRC_BUILD_SOURCE_H
#define KILN_SRC_BUILD_SOURCE_H

#include "utils/error.h"

/* Unpacks the context tarball read from stdin into a fresh directory under the kiln root;
 * *out is that directory (the caller removes it). */
int kiln_build_context_from_stdin(const char *root, char **out, kiln_error_t *err);

#endif
