/* kiln — the layer cache in S3 (see remote_layers.c). Internal to the engine. */
#ifndef KILN_ENGINE_REMOTE_LAYERS_H
#define KILN_ENGINE_REMOTE_LAYERS_H

#include "engine/engine.h"

/* Imports the step cache entries (and layers) of every type=s3 --cache-from. A source that
 * cannot be read is a warning: returns 0 then too. */
int kiln_remote_layers_import(engine_t *e, kiln_error_t *err);

/* Exports this build's step cache entries and their layers to the type=s3 --cache-to. */
int kiln_remote_layers_export(engine_t *e, const stage_t *target, kiln_error_t *err);

#endif
