/* kiln — the flattened bottom of a long layer chain (see flatten.c): how many
 * layers a RUN step is mounted on at most, where the chain is cut, and the
 * lower dirs of a step. Internal to the engine. */
#ifndef KILN_ENGINE_FLATTEN_H
#define KILN_ENGINE_FLATTEN_H

#include <stddef.h>

#include "engine/engine.h"

/* More layers than this and a step runs on a flattened snapshot of the
 * bottom ones (the sandbox's KILN_IDMAP_MAX_LOWERS). */
#define KILN_FLATTEN_MAX_LOWERS 128
/* The snapshot covers a multiple of this many layers: one is reused by the
 * next CHUNK steps, and a step has at most CHUNK + 1 lowers. */
#define KILN_FLATTEN_CHUNK 64

/* How many of a chain of n layers (counted from the bottom) a step sees
 * through one flattened snapshot: 0 up to KILN_FLATTEN_MAX_LOWERS, else the
 * largest multiple of KILN_FLATTEN_CHUNK below n. */
size_t kiln_flatten_split(size_t n);

/* The stage's lower dirs for a RUN step, top-most first (*out NULL-terminated,
 * *n entries; the unpacked layer dirs made when missing), the bottom ones
 * replaced by their snapshot past KILN_FLATTEN_MAX_LOWERS layers (made when
 * missing). -1 with err. */
int kiln_flatten_lowers(engine_t *e, stage_t *st, char ***out, size_t *n, kiln_error_t *err);

#endif
