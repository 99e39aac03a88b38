/* kiln — layers unpacked side by side, then merged in order: a layer unpacked into a
 * directory of its own (kiln_unpack_opts_t.record) is moved onto the tree of the layers below
 * it with the result of applying it there in place (oci/unpack): its whiteouts and opaque
 * directories remove the lower layers' entries first, then its entries are renamed in —
 * a whole subtree at once where the tree has nothing of that name, a directory the tree has
 * merged child by child (the layer's own directory entry gives it its owner, mode, xattrs
 * and mtime; a directory the layer made only to hold entries takes the tree's), anything
 * else in the way removed first.
 *
 * Exactly as in place: whatever the tar's order, the result is the one of applying the layer
 * entry by entry on the tree. Where that result depends on the tree in a way the merge cannot
 * see from the layer's own directory, the layer is applied in place instead: the record-mode
 * unpack fails (EAGAIN) when an entry replaces a path the same layer made before (`dir/x`
 * before `dir/`, a directory replaced by a file or back) or a whiteout / opaque directory
 * comes after entries of the same layer under it or is reached through a link of the same
 * layer; kiln_unpack_merge returns 1 when a directory the layer only implied (or holding one
 * of its removals) is a symlink or a non-directory in the tree below (applied in place its
 * entries would go through that link), or is missing there under a setgid directory (in place
 * it would take that directory's group and setgid bit), or when the layer was not chowned
 * (rec->no_chown) and an entry would move into a setgid directory (the group again). Implicit
 * directories are recorded where they are (through the layer's own links), so entries under a link
 * of the same layer land where in place they would.
 *
 * Safety: the merge never follows a symlink: every path of the tree is walked component by
 * component with O_NOFOLLOW under its parent's fd (whiteouts, opaque and implicit
 * directories, each entry's name); the layer's directory is walked the same way. */
#ifndef KILN_OCI_UNPACK_MERGE_H
#define KILN_OCI_UNPACK_MERGE_H

#include "oci/unpack.h"
#include "utils/error.h"

/* Moves the layer unpacked in layerdir (with its record rec) onto rootfs (both on one
 * filesystem). layerdir is left with what could not be moved (directories merged into the
 * tree's, emptied): the caller removes it. 1 (nothing changed) when the layer must be applied
 * in place instead; -1 with err naming the path on failure (rootfs then partly merged: the
 * caller discards it). */
int kiln_unpack_merge(const char *rootfs, const char *layerdir, const kiln_unpack_record_t *rec,
                      kiln_error_t *err);

#endif
