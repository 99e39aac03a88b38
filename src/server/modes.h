/* kiln server — file modes of the server's root: the root is 0700 and what it holds
 * (kiln.db with its -wal/-shm, build logs, stored secrets) has no permission bits for
 * others, whether created now or left by an older version with looser modes. */
#ifndef KILN_SERVER_MODES_H
#define KILN_SERVER_MODES_H

#include "utils/error.h"

/* The umask the server and worker run with: files they create are never readable by
 * others. Children get KILN_CHILD_UMASK back (see kiln_runner_run), so images keep the
 * modes their Dockerfile asks for. */
#define KILN_SERVER_UMASK 027
#define KILN_CHILD_UMASK 022

/* Sets the process umask, creates root (0700) or tightens it to 0700, and removes the
 * "others" bits from kiln.db{,-wal,-shm}, logs/ and secrets/ (with their entries). Fails
 * naming the path that cannot be created or changed. */
int kiln_server_secure_root(const char *root, kiln_error_t *err);

#endif
