/* kiln — layers of a step: lower dirs, commits, a stage's rootfs, paths in a stage (see
 * snapshot.c). Internal to the engine: what engine/snapshot.c offers the other engine files. */
#ifndef KILN_ENGINE_SNAPSHOT_H
#define KILN_ENGINE_SNAPSHOT_H

#include "engine/engine.h"

bool kiln_snapshot_is_chroot(const kiln_build_request_t *req);
int kiln_snapshot_lower_dir(engine_t *e, const layer_t *l, char **out, kiln_error_t *err);
/* The unpacked dirs of layers [from, to), top-most first, into v[0..to-from): the missing
 * ones unpacked in parallel (each as soon as its blob is in the store). -1 with err (none
 * left in v). */
int kiln_snapshot_lower_dirs(engine_t *e, const layer_t *layers, size_t from, size_t to, char **v,
                             kiln_error_t *err);
int kiln_snapshot_commit_layer(engine_t *e, stage_t *st, const char *dir, int overlay, layer_t *out,
                               kiln_error_t *err);
int kiln_snapshot_commit_step(engine_t *e, stage_t *st, const char *dir, int overlay,
                              const char *created_by, const kiln_digest_t *key, kiln_error_t *err);
/* A layer written entry by entry straight from a step's sources (COPY without a staging
 * tree): a layer writer with the build's options into a new store blob. Its unpacked tree
 * is only made (from the blob, kiln_snapshot_lower_dir) when a later step needs it. */
typedef struct kiln_snapshot_layer {
    kiln_layer_writer_t *w; /* add the entries here */
    kiln_store_writer_t *blob;
    kiln_sink_t sink;
} kiln_snapshot_layer_t;
/* Starts one. -1 with err (nothing to abort then). */
int kiln_snapshot_layer_begin(engine_t *e, kiln_snapshot_layer_t *sl, kiln_error_t *err);
/* Ends the layer, stores the blob, appends it to the stage as commit_step does. The layer
 * is gone (committed or aborted) either way. -1 with err. */
int kiln_snapshot_layer_commit_step(engine_t *e, stage_t *st, kiln_snapshot_layer_t *sl,
                                    const char *created_by, const kiln_digest_t *key,
                                    kiln_error_t *err);
/* Abandons one that was begun (the blob removed). Fine after commit_step. */
void kiln_snapshot_layer_abort(kiln_snapshot_layer_t *sl);
int kiln_snapshot_extract(engine_t *e, stage_t *st, const char *path, const char *dir,
                          kiln_error_t *err);
int kiln_snapshot_resolve(engine_t *e, stage_t *st, const char *path, unsigned flags, char **out,
                          char **dir, kiln_error_t *err);
int kiln_snapshot_rootfs(engine_t *e, stage_t *st, char **out, kiln_error_t *err);

#endif
