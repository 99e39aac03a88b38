/* kiln — layers of a step: lower dirs, commits, a stage's rootfs, paths in a stage (see
 * snapshot.c). Internal to the engine: what engine/snapshot.c offers the other engine files. */
#ifndef KILN_ENGINE_SNAPSHOT_H
#define KILN_ENGINE_SNAPSHOT_H

#include "engine/engine.h"

bool kiln_snapshot_is_chroot(const kiln_build_request_t *req);
int kiln_snapshot_lower_dir(engine_t *e, const layer_t *l, char **out, kiln_error_t *err);
int kiln_snapshot_commit_layer(engine_t *e, stage_t *st, const char *dir, int overlay, layer_t *out,
                               kiln_error_t *err);
int kiln_snapshot_commit_step(engine_t *e, stage_t *st, const char *dir, int overlay,
                              const char *created_by, const kiln_digest_t *key, kiln_error_t *err);
int kiln_snapshot_extract(engine_t *e, stage_t *st, const char *path, const char *dir,
                          kiln_error_t *err);
int kiln_snapshot_resolve(engine_t *e, stage_t *st, const char *path, unsigned flags, char **out,
                          char **dir, kiln_error_t *err);
int kiln_snapshot_rootfs(engine_t *e, stage_t *st, char **out, kiln_error_t *err);

#endif
