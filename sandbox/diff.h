/* kiln — the walking differ: for hosts where overlayfs cannot be mounted, a
 * step runs in a private writable copy of its rootfs, and the differ compares
 * that copy with the original tree to write the same layer the overlay path
 * would (new and changed entries with their parent directories, ".wh." for
 * removed ones, an opaque marker for a directory that replaced a non-directory).
 *
 * Entries compare equal when type, mode, owner, size, mtime and (symlinks)
 * target match; a regular file whose size and mtime match is assumed unchanged
 * (that is what the overlay path sees as well: no copy-up). */
#ifndef KILN_SANDBOX_DIFF_H
#define KILN_SANDBOX_DIFF_H

#include "oci/layer_write.h"
#include "utils/error.h"

/* Writes base → changed into w, in layer order. */
int kiln_diff_write(const char *base, const char *changed, kiln_layer_writer_t *w,
                    kiln_error_t *err);

/* Copies the tree src into dst (which must not exist): types, modes, owners,
 * mtimes, xattrs and symlinks kept; hardlinks become copies. */
int kiln_diff_copy_tree(const char *src, const char *dst, kiln_error_t *err);

#endif
