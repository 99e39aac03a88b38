/* kiln — the FROM step (see step_from.c).
 * Internal to the engine: what engine/step_from.c offers the other engine files. */
#ifndef KILN_ENGINE_STEP_FROM_H
#define KILN_ENGINE_STEP_FROM_H

#include "engine/engine.h"

int kiln_step_from_image(engine_t *e, stage_t *st, const char *ref, kiln_error_t *err);
int kiln_step_from(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);

#endif
