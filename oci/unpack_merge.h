/* kiln — layers unpacked side by side, then merged in order: a layer unpacked into a
 * directory of its own (kiln_unpack_opts_t.record) is moved onto the tree of the layers below
 * it with the result of applying it there in place (oci/unpack): its whiteouts and opaque
 * directories remove the lower layers' entries first, then its entries are renamed in —
 * a whole subtree at once where the tree has nothing of that name, a directory the tree has
 * merged child by child (the layer's own directory entry gives it its owner, mode, xattrs
 * and mtime; a directory the layer made only to hold entries takes the tree's, a symlink
 * there followed inside the root), anything else in the way removed first.
 *
 * Safety: every path in the tree is resolved inside it (openat2 RESOLVE_IN_ROOT through
 * utils/pathres for whiteouts, opaque and implicit directories; an entry's own name opened
 * without following under its parent's fd); the layer's directory is walked without
 * following a symlink. */
#ifndef KILN_OCI_UNPACK_MERGE_H
#define KILN_OCI_UNPACK_MERGE_H

#include "oci/unpack.h"
#include "utils/error.h"

/* Moves the layer unpacked in layerdir (with its record rec) onto rootfs (both on one
 * filesystem). layerdir is left with what could not be moved (directories merged into the
 * tree's, emptied): the caller removes it. -1 with err naming the path on failure (rootfs
 * then partly merged: the caller discards it). */
int kiln_unpack_merge(const char *rootfs, const char *layerdir, const kiln_unpack_record_t *rec,
                      kiln_error_t *err);

#endif
