/* kiln server — uploaded build contexts: a tar (plain or compressed) unpacked safely. */
#ifndef KILN_SERVER_CONTEXT_H
#define KILN_SERVER_CONTEXT_H

#include "utils/error.h"

/* Unpacks the tarball into the existing directory dir, refusing absolute paths, ".."
 * components, links that leave the tree and more than 100,000 entries. */
int kiln_context_unpack(const char *tarball, const char *dir, kiln_error_t *err);

#endif
