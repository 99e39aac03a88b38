/* kiln — what the parts of the layer unpacker share (unpack.c creates entries, unpack_whiteout.c
 * removes what lower layers put there). Not for use outside oci/unpack*.c. */
#ifndef KILN_OCI_UNPACK_IMPL_H
#define KILN_OCI_UNPACK_IMPL_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "oci/inflate_thread.h"
#include "oci/tar_reader.h"
#include "oci/unpack.h"
#include "oci/unpack_pool.h"
#include "utils/strset.h"

/* A directory whose mtime is set once all its children are in place. */
struct dir_time {
    char *path;
    struct timespec mtime;
};

/* The most parent directory fds kept open by one unpack. */
#define PARENT_SLOTS 8

struct parent_slot {
    char *path; /* NULL: free */
    int fd;
    int plain; /* not setgid */
    uint64_t used;
};

struct unpack {
    const kiln_unpack_opts_t *opts;
    int rootfd;
    int do_chown;
    uid_t euid;
    gid_t egid;
    /* the mode bits open/mkdir leave (~umask), or 0 when unknown: then every
     * entry gets its fchmod */
    mode_t create_mask;
    /* a default ACL was seen (on the root or set by an xattr): creation modes
     * are then not ~umask, so every entry gets its fchmod */
    int acl_seen;
    kiln_tar_reader_t *tr;
    kiln_sha256_t raw, out;
    uint64_t raw_bytes, out_bytes;
    /* the paths of this layer's entries, and every directory above one: what its own
     * whiteouts and opaque directories leave (they hide the lower layers only) */
    kiln_strset_t created, held;
    struct dir_time *dirs;
    size_t ndirs, dirs_alloc;
    /* the last parent directories used (a tar walks back up to a directory after its
     * subdirectories): looked up by path, the least recently used replaced */
    struct parent_slot parents[PARENT_SLOTS];
    uint64_t tick;
    /* the parent of the entry being made: it is not setgid (a new entry there is owned
     * by euid:egid) */
    int cached_plain;
    kiln_compression_t format;
    kiln_inflate_thread_t *inf; /* when inflating: the digests are its until stopped */
    /* the writers of small regular files, when nothing can be in the way of a new entry but
     * this layer's own (an empty directory); NULL: every file written by the reader */
    kiln_unpack_pool_t *pool;
    int pool_ok;          /* the entry being made may go to the pool */
    kiln_strset_t links;  /* with a pool: this layer's symlinks (a path under one is not new) */
    kiln_strset_t pooled; /* the files queued since the pool was last drained */
};

/* The (cached) fd of directory `parent` inside the root, missing components created (0755);
 * not to be closed. -1 with err naming entry. */
int kiln_unpack_parent_fd(struct unpack *u, const char *parent, const char *entry,
                          kiln_error_t *err);
/* The same as a new O_PATH fd the caller closes. */
int kiln_unpack_open_dir(struct unpack *u, const char *dir, const char *entry, kiln_error_t *err);
/* Removes dirfd/name (recursively) when it exists; the parent cache forgotten. */
int kiln_unpack_remove(struct unpack *u, int dirfd, const char *name, const char *entry,
                       kiln_error_t *err);
/* Appends a copy of s to *v (*n entries). */
void kiln_unpack_strv_push(char ***v, size_t *n, const char *s);

/* The entry `path` of this layer: remembered with the directories above it. */
void kiln_unpack_created_add(struct unpack *u, const char *path);
/* ".wh.name" in parent: the lower layers' parent/name removed (recorded in record mode). */
int kiln_unpack_whiteout(struct unpack *u, const char *parent, const char *name, const char *entry,
                         kiln_error_t *err);
/* ".wh..wh..opq" in dir: the lower layers' entries of dir removed (recorded in record mode). */
int kiln_unpack_opaque(struct unpack *u, const char *dir, const char *entry, kiln_error_t *err);
/* Record mode: something is in the way of the entry (is_dir: a directory entry, was: the
 * layer had an entry of that path before) in the layer's own directory: 0 when applying it in
 * place gives the same whatever the lower layers hold, else -1 with err saying why the layer
 * must be applied in place. */
int kiln_unpack_record_replace(struct unpack *u, int pfd, const char *name, const char *entry,
                               int is_dir, int was, kiln_error_t *err);
/* Record mode, at the end: the implicit directories sorted. */
void kiln_unpack_record_end(struct unpack *u);

#endif
