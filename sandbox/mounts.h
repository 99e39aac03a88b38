/* kiln — the filesystem view of a step, set up from inside its mount
 * namespace: the overlay root moved into place, /proc, a minimal /dev,
 * read-only /sys, the step's extra mounts and the per-mode /etc files, then
 * pivot_root (or chroot).
 *
 * Every mount target is resolved inside the new root (openat2 with
 * RESOLVE_IN_ROOT), so a symlink in the rootfs cannot point a mount at the
 * host. Targets that do not exist are created; the caller removes what was
 * created only for that purpose from the upper dir afterwards
 * (kiln_mounts_clean_upper). */
#ifndef KILN_SANDBOX_MOUNTS_H
#define KILN_SANDBOX_MOUNTS_H

#include <stddef.h>

#include "sandbox/sandbox.h"
#include "utils/error.h"

/* Largest /etc file kiln gives a step (the host's resolv.conf in host mode). */
#define KILN_MOUNTS_ETC_MAX (64 * 1024)

/* Mounts a private tmpfs on rundir and writes etc_texts (resolv.conf, hosts,
 * hostname, in that order; NULL entries skipped) into rundir/etc. Then
 * attaches the detached trees from kiln (fds: lowers then the upper's
 * parent, see kiln_idmap_trees) under rundir and mounts the overlay on
 * rundir/root. Without step->upper, the upper and work dirs are made on a
 * tmpfs of their own (the step's changes are dropped with its mount
 * namespace). userxattr: the overlay is mounted inside a user namespace.
 * Returns negative on failure. */
int kiln_mounts_overlay(const kiln_step_t *step, const char *rundir, const char *const *etc_texts,
                        const int *fds, int userxattr, kiln_error_t *err);

/* Sets up the tree mounted at host path `root` for the step. etc_dir holds
 * resolv.conf, hosts and hostname for the step (bind-mounted read-only onto
 * /etc, never part of the layer). mount_fds are the step's bind, cache and
 * secret mounts as detached trees (kiln_idmap_mounts). Returns negative on
 * failure. */
int kiln_mounts_setup(const kiln_step_t *step, const char *root, const char *etc_dir,
                      const int *mount_fds, size_t n_mount_fds, kiln_error_t *err);

/* Makes `root` the process's root: pivot_root and detach the old root
 * (use_chroot = 0), or chroot. Returns negative on failure. */
int kiln_mounts_enter(const char *root, int use_chroot, kiln_error_t *err);

/* Removes from the upper dir the empty mount points kiln created (not in
 * any lower). */
void kiln_mounts_clean_upper(const kiln_step_t *step);

#endif
