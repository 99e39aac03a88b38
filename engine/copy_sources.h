/* kiln — the sources of a COPY/ADD (see copy_sources.c). Internal to the engine: what
 * engine/copy_sources.c offers the other engine files. */
#ifndef KILN_ENGINE_COPY_SOURCES_H
#define KILN_ENGINE_COPY_SOURCES_H

#include "engine/engine.h"

int kiln_copy_sources_expand(engine_t *e, stage_t *st, const kiln_df_node_t *n, bool is_add,
                             bool from_context, strv_t *paths, strv_t *urls, kiln_error_t *err);
int kiln_copy_sources_resolve(const kiln_df_node_t *n, int rootfd, const kiln_dockerignore_t *ign,
                              const strv_t *paths, strv_t *srcs, strv_t *canon, kiln_error_t *err);

#endif
