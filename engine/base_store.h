/* kiln — a stage's bottom layers from an additional (read-only) image store (see
 * base_store.c). Internal to the engine. */
#ifndef KILN_ENGINE_BASE_STORE_H
#define KILN_ENGINE_BASE_STORE_H

#include "engine/engine.h"

/* The lower dirs of the bottom layers of layers[0..to) from the store's additional stores:
 * when one holds the chain of layers[0..k] (the largest such k), v[to-1-k] is its tree and
 * v[to-1-i] the store's empty dir for every i < k (the tree holds them all). Returns k + 1,
 * the layers covered bottom up, 0 when no store holds a chain of them (or there is none). An
 * entry that cannot be used is warned about once and left out (the layers are pulled and
 * unpacked as without the store). */
size_t kiln_base_store_lowers(engine_t *e, const layer_t *layers, size_t to, char **v);

#endif
