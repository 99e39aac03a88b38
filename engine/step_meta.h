/* kiln — config-only instructions and history entries (see step_meta.c).
 * Internal to the engine: what engine/step_meta.c offers the other engine files. */
#ifndef KILN_ENGINE_STEP_META_H
#define KILN_ENGINE_STEP_META_H

#include "engine/engine.h"

void kiln_step_history(engine_t *e, stage_t *st, const char *created_by, int empty);
int kiln_step_workdir(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);
int kiln_step_meta(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);

#endif
