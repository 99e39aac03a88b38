/* kiln — the COPY and ADD steps and the content hashes of their sources (see step_copy.c).
 * Internal to the engine: what engine/step_copy.c offers the other engine files. */
#ifndef KILN_ENGINE_STEP_COPY_H
#define KILN_ENGINE_STEP_COPY_H

#include "engine/engine.h"

int kiln_step_copy_context_view(engine_t *e, const char *canon, char **src, char **view,
                                kiln_error_t *err);
int kiln_step_copy_hash_context(engine_t *e, const char *canon, const char *written,
                                kiln_digest_t *out, kiln_error_t *err);
int kiln_step_copy_mkdirs_in(const char *root, const char *path, int *out, kiln_error_t *err);
int kiln_step_copy_stage_root(engine_t *e, stage_t *dep, const strv_t *srcs, const char **root,
                              char **view, kiln_error_t *err);
int kiln_step_copy(engine_t *e, stage_t *st, const kiln_df_node_t *n, bool is_add,
                   kiln_error_t *err);

#endif
