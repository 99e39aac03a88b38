/* kiln — a registry base image for a fresh worker without waiting for its layers (see
 * remote_base.c). Internal to the engine. */
#ifndef KILN_ENGINE_REMOTE_BASE_H
#define KILN_ENGINE_REMOTE_BASE_H

#include "engine/engine.h"

/* FROM ref (a registry image): its manifest and config now (ri's top, manifest and parsed
 * filled as kiln_registry_pull does; the config's bytes in *cfg_body), its layer blobs pulled
 * into the store by a background thread. -1 with err naming the reference. */
int kiln_remote_base_start(engine_t *e, const char *ref, kiln_registry_image_t *ri, char **cfg_body,
                           size_t *cfg_len, kiln_error_t *err);

/* Waits until blob d is in the store when a background pull is fetching it (at once
 * otherwise). -1 with err when that pull failed before d arrived. */
int kiln_remote_base_wait(engine_t *e, const kiln_digest_t *d, kiln_error_t *err);

/* Waits until blob d is in the store (*bs NULL) or its download has started (*bs a new
 * reference to its stream: read it with kiln_blob_stream_read, whose last read waits for
 * the digest-checked commit; unref it after). At once with *bs NULL when no background pull
 * fetches d. -1 with err when that pull failed before either. */
int kiln_remote_base_stream(engine_t *e, const kiln_digest_t *d, kiln_blob_stream_t **bs,
                            kiln_error_t *err);

/* Waits for every background pull; -1 with the first failure's err (each pull is joined
 * whatever happens: call it before the engine is freed). */
int kiln_remote_base_join(engine_t *e, kiln_error_t *err);
/* Joins and frees the pulls (at the end of the build). */
void kiln_remote_base_free(engine_t *e);

#endif
