/* kiln — ADD <url> downloads (see fetch.c).
 * Internal to the engine: what engine/fetch.c offers the other engine files. */
#ifndef KILN_ENGINE_FETCH_H
#define KILN_ENGINE_FETCH_H

#include "engine/engine.h"

char *kiln_fetch_url_basename(const char *url);
int kiln_fetch_url(engine_t *e, const char *url, const char *checksum, char **file,
                   kiln_digest_t *digest, kiln_error_t *err);

#endif
