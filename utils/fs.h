/* kiln — filesystem helpers. All fds are O_CLOEXEC. */
#ifndef KILN_UTILS_FS_H
#define KILN_UTILS_FS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "utils/error.h"

/* Creates a directory and its parents (mode for each new one). */
int kiln_fs_mkdir_p(const char *path, mode_t mode, kiln_error_t *err);

/* Removes a tree without following symlinks. A missing path is not an error. */
int kiln_fs_rm_rf(const char *path, kiln_error_t *err);
/* Same, for `name` under the directory fd `dirfd`. */
int kiln_fs_rm_rf_at(int dirfd, const char *name, kiln_error_t *err);

/* Whether directory fd holds no entry; false when it cannot be read. */
bool kiln_fs_dir_empty_at(int fd);

/* Opens `rel` ("a/b/c", "" for dirfd itself) below the directory dirfd one component at a
 * time, none followed when a symlink (O_NOFOLLOW), the last with oflags (| O_CLOEXEC); at
 * most two fds open meanwhile, whatever the depth. A new fd, or -1 with errno. */
int kiln_fs_open_below(int dirfd, const char *rel, int oflags);

/* Disk space the tree `name` under dirfd takes (allocated blocks of every entry, the
 * directory itself included; no symlink followed; a hard link counted at each name, so
 * never less than the truth). Stops as soon as the total passes `stop` (0: never). Entries
 * that vanish while it looks are skipped. Fails (ELOOP) naming the depth when the tree is
 * deeper than max_depth, so a limit is never checked on part of a tree. */
int kiln_fs_usage_at(int dirfd, const char *name, unsigned max_depth, uint64_t stop, uint64_t *out,
                     kiln_error_t *err);

/* Reads a whole file, failing (EFBIG) past `cap` bytes. *out is NUL-terminated. */
int kiln_fs_read_file(const char *path, size_t cap, char **out, size_t *len, kiln_error_t *err);
int kiln_fs_read_fd(int fd, size_t cap, char **out, size_t *len, kiln_error_t *err);

/* Writes a file atomically: temp file in the same directory, fsync, rename. */
int kiln_fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                              kiln_error_t *err);

/* Whether an errno value means the disk (or the quota) is full: such failures are the
 * server's (HTTP 507, a build failed for lack of space), not the request's. */
static inline int kiln_fs_errno_no_space(int e)
{
    return e == ENOSPC || e == EDQUOT;
}

/* Writes all of buf to fd, retrying on EINTR and short writes. */
int kiln_fs_write_all(int fd, const void *buf, size_t len, kiln_error_t *err);

/* Creates a fresh private directory "<parent>/<prefix>XXXXXX"; *out is malloc'ed. */
int kiln_fs_mkdtemp(const char *parent, const char *prefix, char **out, kiln_error_t *err);

/* fsyncs the directory holding `path` (after a rename into it). */
int kiln_fs_fsync_parent(const char *path, kiln_error_t *err);

#endif
