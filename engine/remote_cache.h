/* kiln — the registry client of a build, its pulls, --cache-from and --cache-to (see
 * remote_cache.c). Internal to the engine: what engine/remote_cache.c offers the other engine
 * files. */
#ifndef KILN_ENGINE_REMOTE_CACHE_H
#define KILN_ENGINE_REMOTE_CACHE_H

#include "engine/engine.h"

int kiln_remote_cache_pull(engine_t *e, const char *ref, kiln_registry_image_t *ri,
                           kiln_error_t *err);
int kiln_remote_cache_registry(engine_t *e, kiln_error_t *err);
int kiln_remote_cache_import(engine_t *e, const char *ref, kiln_error_t *err);
/* Pack d (size bytes) of a registry cache mount, fetched from the first registry
 * --cache-from serving it (digest and size checked) into *buf, and kept in the store as
 * this namespace's. -1 with err naming the pack. */
int kiln_remote_cache_fetch_pack(engine_t *e, const kiln_digest_t *d, uint64_t size, char **buf,
                                 kiln_error_t *err);
int kiln_remote_cache_export(engine_t *e, const stage_t *target, kiln_error_t *err);

json_t *kiln_remote_cache_entries(engine_t *e, const stage_t *target, int all,
                                  kiln_descriptor_t **layers, kiln_digest_t **diff_ids, size_t *n);
int kiln_remote_cache_merge(engine_t *e, json_t *map, size_t *n, kiln_error_t *err);

#endif
