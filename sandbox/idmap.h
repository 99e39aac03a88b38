/* kiln — id mapping: the user namespace map of a step and the overlay root
 * built from id-mapped layers.
 *
 * Inside a step, ids 0..KILN_SANDBOX_ID_COUNT-1 are host ids
 * KILN_SANDBOX_ID_BASE + id. Lower dirs owned by ordinary host ids are
 * id-mapped (on disk 0 = 0 inside); so is the upper dir, so that what a step
 * writes lands on disk owned as the step saw it, ready to become a layer
 * without shifting. The overlay is mounted inside the user namespace
 * ("userxattr"): whiteouts are 0:0 character devices, opaque directories carry
 * user.overlay.opaque. */
#ifndef KILN_SANDBOX_IDMAP_H
#define KILN_SANDBOX_IDMAP_H

#include <sys/types.h>

#include "sandbox/sandbox.h"
#include "utils/error.h"

/* Writes /proc/PID/{uid_map,gid_map}: 0..count-1 → base..base+count-1. */
int kiln_idmap_write(pid_t pid, unsigned base, unsigned count, kiln_error_t *err);

#define KILN_IDMAP_MAX_LOWERS 128

/* Clones the step's trees as detached mounts, id-mapped through userns_fd:
 * fds[0..n_lowers-1] the lowers (read-only; not id-mapped when the lowers
 * are stored shifted), fds[n_lowers] the parent of upper and work
 * (read-write; absent without step->upper); with step->rw_root, fds[0] is that tree (read-write).
 * The step's init attaches them in its mount namespace and mounts the overlay itself, so that the
 * overlay's own operations run with the step's ids (host BASE+id ↔ on disk id through the mapping).
 */
int kiln_idmap_trees(const kiln_step_t *step, int userns_fd, int *fds, kiln_error_t *err);

/* Opens the step's bind, cache and secret mount sources (in mount order,
 * tmpfs mounts skipped) as detached trees: id-mapped like the upper (so that
 * a cache dir keeps the ids the step saw), read-only for ro binds and
 * secrets, nosuid+nodev always. Returns the number of fds written to fds
 * (at most KILN_SANDBOX_MAX_MOUNTS) or negative on failure. */
int kiln_idmap_mounts(const kiln_step_t *step, int userns_fd, int *fds, kiln_error_t *err);

#endif
