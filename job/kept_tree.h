/* kiln — the lock of a kept work tree (job/auto: ROOT/build/worktrees/HEX holding lock, tree
 * and index), taken by the build that uses the tree and by kiln gc that removes it. A build
 * holds DIR/lock (flock) for its whole run; gc removes a tree only while holding that same
 * lock, renaming DIR away first, so no build ever works in a tree gc is deleting. A build
 * that opened the lock file just before gc moved it away finds, once it holds the lock, that
 * the file is no longer DIR/lock, and takes the lock of a new DIR instead. */
#ifndef KILN_JOB_KEPT_TREE_H
#define KILN_JOB_KEPT_TREE_H

#include "utils/error.h"

/* Holds the lock file opened as fd (path lock) without waiting: 0 when this process holds it
 * and it is still the file at lock; 1 when another process holds it; 2 when gc moved it away
 * since it was opened (not held). -1 with err naming lock. */
int kiln_kept_tree_hold(int fd, const char *lock, kiln_error_t *err);

/* Takes the lock of the kept tree DIR (made 0700 if missing) without waiting, its mtime set
 * to now (the tree's last use): 0 with *fd holding it, 1 when another build holds it. -1
 * with err naming the directory. */
int kiln_kept_tree_lock(const char *dir, int *fd, kiln_error_t *err);

/* For gc: the tree NAME of the directory wtfd, unused for max_age_s seconds (its lock's
 * mtime) and held by no build, is renamed to *gone (".gc-NAME" in the same directory,
 * malloc'ed) while gc holds its lock; the caller deletes *gone. 1 when moved (gone NULL: a
 * dry run, it would be), 0 when it stays (held, or used since), -1 with err naming it. */
int kiln_kept_tree_claim(int wtfd, const char *name, double max_age_s, char **gone,
                         kiln_error_t *err);

#endif
