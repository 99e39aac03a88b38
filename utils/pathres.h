/* kiln — resolving untrusted paths inside a root directory.
 *
 * Every path that comes from a Dockerfile, a build context, an image or a
 * stage is resolved here, inside the directory fd it belongs to (the context,
 * a rootfs, a stage's tree, an export destination): absolute symlink targets
 * start again at the root, ".." stops at the root, magic links (/proc/self/…)
 * are refused, and nothing outside the root is ever opened. Opens use
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) where the kernel has it and
 * otherwise the same rules in a component-by-component walk (every component
 * opened O_PATH|O_NOFOLLOW under its parent's fd, at most 40 links).
 *
 * Paths are relative to the root; a leading '/' is ignored. A trailing '/'
 * asks for a directory (a symlink there is followed). All fds are O_CLOEXEC. */
#ifndef KILN_UTILS_PATHRES_H
#define KILN_UTILS_PATHRES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "utils/error.h"

/* The last component is not followed when it is a symlink. */
#define KILN_PATHRES_NOFOLLOW 0x1u
/* kiln_pathres_resolve: components that do not exist are kept as written
 * (after the existing part is resolved), for destinations still to create. */
#define KILN_PATHRES_MISSING_OK 0x2u

/* The most symlinks one resolution follows (the kernel's limit): ELOOP past it. */
#define KILN_PATHRES_MAX_LINKS 40

/* Opens path inside rootfd with open(2) flags oflags (mode for O_CREAT).
 * O_NOFOLLOW in oflags or KILN_PATHRES_NOFOLLOW: a symlink as the last
 * component is not followed (with O_PATH: *out is the link itself). Returns
 * -1 with err naming the path (err->code the errno) on failure. */
int kiln_pathres_open(int rootfd, const char *path, int oflags, mode_t mode, unsigned flags,
                      int *out, kiln_error_t *err);

/* kiln_pathres_open in the errno style of openat(2): the fd, or -1 with
 * errno set (for callers that build their own messages). */
int kiln_pathres_openat(int rootfd, const char *path, int oflags);

/* The canonical in-root form of path ("/a/b", "/" for the root itself):
 * every symlink resolved inside the root, "." and ".." and empty components
 * gone. With KILN_PATHRES_NOFOLLOW a final symlink is kept as its own name;
 * with KILN_PATHRES_MISSING_OK missing components are kept lexically (else
 * ENOENT). A trailing '/' in path is kept in *out. -1 with err on failure. */
int kiln_pathres_resolve(int rootfd, const char *path, unsigned flags, char **out,
                         kiln_error_t *err);

/* mkdir -p of path inside rootfd (symlinks followed inside the root; new
 * directories get mode); *out (when not NULL) is an O_RDONLY|O_DIRECTORY fd
 * of it. A component that exists and is not a directory: ENOTDIR. */
int kiln_pathres_mkdir_p(int rootfd, const char *path, mode_t mode, int *out, kiln_error_t *err);

/* Reads the regular file path inside rootfd (symlinks followed inside the
 * root), failing with EFBIG past cap bytes. A FIFO, socket or device is
 * refused (EINVAL, "not a regular file") without ever being read or waited
 * on. *out is NUL-terminated. */
int kiln_pathres_read_file(int rootfd, const char *path, size_t cap, char **out, size_t *len,
                           kiln_error_t *err);

/* Opens a trusted directory path (the operator's: a context dir, a work dir)
 * as the root fd for the functions above (O_PATH|O_DIRECTORY). */
int kiln_pathres_open_root(const char *dir, int *out, kiln_error_t *err);

/* Tests: true makes every open use the walk instead of openat2. */
void kiln_pathres_force_walk(bool on);

#endif
