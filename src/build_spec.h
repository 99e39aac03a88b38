/* kiln build — the job spec (job/spec.h) of a `kiln build` command line, so that every
 * output, reference, URL and limit is checked before any work starts. */
#ifndef KILN_SRC_BUILD_SPEC_H
#define KILN_SRC_BUILD_SPEC_H

#include "job/spec.h"
#include "src/build_opts.h"
#include "utils/error.h"

/* Fills s (local, trigger "cli") from the options and the CONTEXT argument (a directory or
 * URL[#REF[:SUBDIR]]) and validates it. Fails naming the flag's field. */
int kiln_build_spec_from_opts(const kiln_build_opts_t *o, const char *context, kiln_job_spec_t *s,
                              kiln_error_t *err);

/* Adds the operator's `kiln build` options (kiln job run --build-option: registries,
 * isolation, network, limits as defaults, entitlements, cache, compression, labels) to the
 * job spec s; the job's own flags (-t, -o, --build-arg, …) are refused, naming the flag. */
int kiln_build_spec_operator(const kiln_build_opts_t *o, kiln_job_spec_t *s, kiln_error_t *err);

#endif
