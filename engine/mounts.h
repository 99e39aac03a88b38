/* kiln — RUN --mount: cache, secret, ssh, tmpfs and bind mounts of a step (see mounts.c).
 * Internal to the engine: what engine/mounts.c offers the other engine files. */
#ifndef KILN_ENGINE_MOUNTS_H
#define KILN_ENGINE_MOUNTS_H

#include "engine/engine.h"

int kiln_mounts_bind_source(int rootfd, const char *src, const char *what, char **out,
                            kiln_error_t *err);
/* A bind mount's source becomes the private copy DIR/t: *src replaced, the old *view (a
 * view the copy was made from) removed, *view = dir (taken; removed after the step). */
void kiln_mounts_use_copy(char **src, char **view, char *dir);
int kiln_mounts_insecure_copy(engine_t *e, char **src, char **view, kiln_error_t *err);
int kiln_mounts_parse(engine_t *e, stage_t *st, const char *spec, kiln_mount_t *m, char **owned,
                      int *lock_fd, bind_src_t *bs, kiln_error_t *err);

#endif
