/* kiln — what the parts of the blob store share (store.c opens it; store_writer, store_refs
 * and store_prune each do one thing with it): the handle and the lock and directory helpers.
 * Not for use outside oci/store*.c. */
#ifndef KILN_OCI_STORE_IMPL_H
#define KILN_OCI_STORE_IMPL_H

#include <dirent.h>
#include <pthread.h>
#include <sys/types.h>

#include "oci/store.h"

struct kiln_store {
    char *root;
    int lock_fd;
    int blobs_fd;   /* <root>/blobs/sha256 */
    int tmp_fd;     /* <root>/tmp */
    int refs_fd;    /* <root>/refs */
    int lazy_fd;    /* <root>/lazy once a lazy blob was recorded (oci/store_lazy), or -1 */
    dev_t lock_dev; /* identity of <root>/lock (see held_count) */
    ino_t lock_ino;
    int counted;
    /* read-only stores consulted for blobs the root lacks (oci/additional_store) */
    struct kiln_astore *additional[16];
    size_t n_additional;
    int defer_sync; /* > 0: blob writes are not fsynced one by one (kiln_store_defer_sync) */
    /* the open fds of blobs written deferred since the last kiln_store_sync, which fsyncs
     * them (sync_all: a sync failed, the next one is a syncfs); under sync_mu */
    pthread_mutex_t sync_mu;
    int *pending;
    size_t n_pending;
    int sync_all;
    /* the cache namespace of the build using the handle (kiln_store_set_namespace): its lazy
     * records (<root>/ns/NAME/lazy) and the marks of the blobs it may use (<root>/ns/NAME/blobs),
     * -1 and NULL without one */
    char *ns;
    int ns_lazy_fd;
    int ns_blobs_fd;
    /* the address policy of a lazy blob's registry fetch (kiln_store_set_fetch_policy): the
     * handle's own copy, NULL for the registry client's default */
    struct kiln_netpolicy *fetch_policy;
};

/* Hands the fd of a file written deferred (a blob, a lazy record) to the next
 * kiln_store_sync, which fsyncs it and closes it. */
int kiln_store_pending_add(kiln_store_t *s, int fd, kiln_error_t *err);

/* Opens (creating) directory `name` under root as a directory fd. */
int kiln_store_open_subdir(const char *root, const char *name, kiln_error_t *err);
/* Takes flock `op` on fd, retrying on EINTR. */
int kiln_store_flock(int fd, int op);
/* Opens <root>/<name> (creating it): "lock" or the "gate" that keeps a waiting prune from
 * being starved by ever-overlapping builds. */
int kiln_store_open_lock(const char *root, const char *name, kiln_error_t *err);
/* Opens a DIR stream over (a fresh fd of) the directory fd; NULL + err on failure. */
DIR *kiln_store_opendir(int fd, const char *what, kiln_error_t *err);
/* Calls fn for every ref in the refs directory fd (not closed); stops at fn's negative return. */
int kiln_store_refs_walk(int refs_fd, int (*fn)(const char *name, const kiln_digest_t *d, void *ud),
                         void *ud, kiln_error_t *err);

#endif
