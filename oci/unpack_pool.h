/* kiln — regular files of a layer written by threads beside the tar reader.
 *
 * A layer of many small files is bound by their creation (open, write, close: system time),
 * done one after the other by the tar reader while the other CPUs are idle once the inflate
 * is done. The reader hands such a file (its data copied out) to the pool, which creates it
 * under a duplicate of its parent's fd. Only entries nothing can be in the way of are handed
 * over (oci/unpack.c: a layer in an empty directory of its own, a path not seen before); the
 * reader drains the pool before anything that could touch a queued file (hardlinks,
 * removals, whiteouts, the directories' times, the end). Not for use outside oci/unpack*.c. */
#ifndef KILN_OCI_UNPACK_POOL_H
#define KILN_OCI_UNPACK_POOL_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "utils/error.h"

/* The largest file handed to the pool (larger ones are written by the reader: they are bound
 * by their bytes, not by their creation). */
#define KILN_UNPACK_POOL_FILE_MAX (512 * 1024)

typedef struct kiln_unpack_pool kiln_unpack_pool_t;

/* A file to create: name under the directory given to kiln_unpack_pool_add, `data` of `len`
 * bytes, created with mode `made`; then chown and chmod when asked, and its times. */
typedef struct kiln_unpack_pool_file {
    const char *name;
    const char *entry; /* the tar entry's name, for errors */
    mode_t made;
    int chown; /* -1: no; 0: chown, EPERM ignored; 1: chown */
    uid_t uid;
    gid_t gid;
    int chmod;
    mode_t mode;
    struct timespec mtime;
    size_t len;
} kiln_unpack_pool_file_t;

/* A pool of `threads` writers (not started until the first file). NULL when threads < 1. */
kiln_unpack_pool_t *kiln_unpack_pool_new(int threads);
/* The writers a pool gets on this machine: one per CPU beyond the reader's, at most 4 (0 on
 * one CPU: no pool). */
int kiln_unpack_pool_auto_threads(void);
/* A buffer of f->len bytes for the file's data, filled by the caller before
 * kiln_unpack_pool_add; blocks while the queue is full. NULL (err set) when an earlier file
 * failed: its error, naming its entry. */
void *kiln_unpack_pool_reserve(kiln_unpack_pool_t *p, const kiln_unpack_pool_file_t *f,
                               kiln_error_t *err);
/* Queues the file reserved last, to be created under dirfd (duplicated: the caller keeps its
 * fd). -1 with err when the duplicate or a thread cannot be made (nothing queued). */
int kiln_unpack_pool_add(kiln_unpack_pool_t *p, int dirfd, kiln_error_t *err);
/* The caller's fd of the last directory given to kiln_unpack_pool_add is closed or reused:
 * the next file duplicates its directory's fd afresh. */
void kiln_unpack_pool_forget_dir(kiln_unpack_pool_t *p);
/* Whether the writers are behind (more files queued than they take at once): the caller then
 * does better to make a file itself. */
int kiln_unpack_pool_behind(kiln_unpack_pool_t *p);
/* Waits until every queued file is made: 0, or -1 with the first failure (every later
 * file of the queue dropped). */
int kiln_unpack_pool_drain(kiln_unpack_pool_t *p, kiln_error_t *err);
/* Stops the threads (queued files dropped) and frees the pool. NULL is a no-op. */
void kiln_unpack_pool_free(kiln_unpack_pool_t *p);

#endif
