/* kiln — the job spec's JSON form written (the form job/codec.h reads back). */
#ifndef KILN_JOB_CODEC_WRITE_H
#define KILN_JOB_CODEC_WRITE_H

#include <jansson.h>

#include "job/spec.h"

/* The JSON form of a spec (new reference): only what is set, limits normalised ("512m"),
 * secrets by name, never a value. kiln_job_from_json reads it back to an equal spec. */
json_t *kiln_job_to_json(const kiln_job_spec_t *s);

#endif
