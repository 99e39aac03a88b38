/* kiln — a partial merged view of a stage's layers, for COPY --from.
 *
 * A stage's layers are kept unpacked in overlay form under the kiln root
 * (one directory per layer: whiteouts are 0:0 character devices, opaque
 * directories carry trusted.overlay.opaque or user.overlay.opaque = "y").
 * COPY --from usually reads one small subtree of the stage; merging only that
 * subtree, with the files hardlinked from the layer directories, avoids
 * unpacking the whole stage (base image included) into a fresh rootfs.
 *
 * The view is read-only by contract: its files share inodes with the layer
 * directories, so nothing may write through it; it is removed with rm -rf. */
#ifndef KILN_ENGINE_LOWERVIEW_H
#define KILN_ENGINE_LOWERVIEW_H

#include <stddef.h>

#include "utils/error.h"
#include "utils/pathres.h"

/* Makes `path` (relative to the stage root, without glob characters) of the
 * union of the overlay-form layer directories `lowers` (top-most first)
 * appear under the existing directory `dest`, as it is in the merged stage:
 * parent directories created (with their merged owner, mode and mtime), a
 * directory merged recursively, other entries hardlinked (copied when the
 * link fails). A path missing from the union creates nothing.
 * Returns 1 when done, 0 when the path cannot be represented without the full
 * rootfs (it has a ".." component or goes through a symlink, or its last
 * component is a symlink) and nothing useful was created, -1 on failure. */
int kiln_lowerview_extract(const char *const *lowers, size_t n, const char *path, const char *dest,
                           kiln_error_t *err);

/* Resolves path in the union of lowers (top-most first) as the merged tree
 * sees it: symlinks of the tree followed inside it (absolute targets from
 * its root), ".." stopping at the root, whiteouts and opaque directories
 * honoured; the flags are kiln_pathres_resolve's (KILN_PATHRES_NOFOLLOW,
 * KILN_PATHRES_MISSING_OK). *out is the canonical path ("/a/b", a trailing
 * '/' kept), *layer the index of the lower holding its top-most entry, -1
 * when it does not exist. -1 with err on failure (ENOENT, ELOOP, ENOTDIR). */
int kiln_lowerview_resolve(const char *const *lowers, size_t n, const char *path, unsigned flags,
                           char **out, int *layer, kiln_error_t *err);

/* Merges the whole union of lowers (top-most first) into dest (created, or
 * an existing empty directory) as one plain tree that can stand for the
 * whole chain as the bottom-most lower of an overlay: whiteouts applied and
 * dropped, opaque directories honoured (nothing of them below), overlayfs's
 * own xattrs dropped; directories made with the owner, mode, times and
 * xattrs of their top-most copy; everything else hardlinked from its layer
 * (so it keeps owner, mode, xattrs and hardlinks between names), copied or
 * made again (devices, FIFOs) when a link is refused; sockets are left out.
 * Read-only like the layers it shares inodes with. -1 with err (dest then
 * holds a part: the caller removes it). */
int kiln_lowerview_flatten(const char *const *lowers, size_t n, const char *dest,
                           kiln_error_t *err);

/* Drops repeated directories from lowers (n entries, top-most first), keeping
 * the top-most copy of each: overlayfs refuses a lower given twice (ELOOP),
 * and two identical layers are the same directory (named by diff_id). The
 * lower copy adds nothing: everything it holds is in the copy above it, which
 * covers it. The dropped strings are freed and the tail after the returned
 * count is set to NULL. Returns the new count. */
size_t kiln_lowerview_unique(char **lowers, size_t n);

#endif
