/* kiln — word expansion in a stage: ARG/ENV variables and the build args a word used (see
 * expand.c). Internal to the engine: what engine/expand.c offers the other engine files. */
#ifndef KILN_ENGINE_EXPAND_H
#define KILN_ENGINE_EXPAND_H

#include "engine/engine.h"

int kiln_expand_word(engine_t *e, const stage_t *st, const char *word, used_args_t *u, char **out,
                     kiln_error_t *err);
int kiln_expand_raw(engine_t *e, const stage_t *st, const char *text, char **out,
                    kiln_error_t *err);
const char *kiln_expand_build_arg(engine_t *e, const char *name);
int kiln_expand_cb(void *ctx, const char *word, char **out, kiln_error_t *err);

#endif
