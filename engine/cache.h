/* kiln — step cache keys and the local step cache (see cache.c).
 * Internal to the engine: what engine/cache.c offers the other engine files. */
#ifndef KILN_ENGINE_CACHE_H
#define KILN_ENGINE_CACHE_H

#include "engine/engine.h"

void kiln_cache_key_step(kiln_digest_t *key, const char *what, const char *extra);
char *kiln_cache_ref(const engine_t *e, const kiln_digest_t *key);
bool kiln_cache_ns_knows(engine_t *e, const kiln_digest_t *d);
void kiln_cache_ns_note(engine_t *e, const kiln_digest_t *d);
bool kiln_cache_layer_usable(engine_t *e, const kiln_digest_t *d);
int kiln_cache_lookup(engine_t *e, stage_t *st, const kiln_digest_t *key, kiln_error_t *err);
int kiln_cache_store(engine_t *e, stage_t *st, const kiln_digest_t *key, const layer_t *l,
                     kiln_error_t *err);
/* Sets up the queue of cache entries (before the first step). */
void kiln_cache_init(engine_t *e);
/* Writes every queued cache entry and stops the flusher (the end of a build, failed or not):
 * -1 with err when one could not be written. */
int kiln_cache_finish(engine_t *e, kiln_error_t *err);
void kiln_cache_hash_str(kiln_sha256_t *h, const char *s);

#endif
