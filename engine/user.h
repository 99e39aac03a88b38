/* kiln — USER and --chown names resolved in the stage's own passwd/group (see user.c).
 * Internal to the engine: what engine/user.c offers the other engine files. */
#ifndef KILN_ENGINE_USER_H
#define KILN_ENGINE_USER_H

#include "engine/engine.h"

bool kiln_user_all_digits(const char *s);
int kiln_user_resolve(engine_t *e, stage_t *st, const char *spec, uid_t *uid, gid_t *gid,
                      kiln_error_t *err);

#endif
