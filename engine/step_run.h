/* kiln — the RUN step (see step_run.c).
 * Internal to the engine: what engine/step_run.c offers the other engine files. */
#ifndef KILN_ENGINE_STEP_RUN_H
#define KILN_ENGINE_STEP_RUN_H

#include "engine/engine.h"

int kiln_step_run(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);

#endif
