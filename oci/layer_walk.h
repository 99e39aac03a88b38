/* kiln — the layer writer's directory walk (used by oci/layer_write only).
 *
 * The walk visits a tree in tar order (a directory's entry, then its names in
 * bytewise order, recursively) and hands each entry, already opened, stat'ed
 * and filtered (a symlink's target read), to an emit callback that writes it
 * into the tar. Either in the caller's thread (plain), or read ahead: a walk
 * thread opens, stats and lists the next entries and asks the kernel to read
 * their data (POSIX_FADV_WILLNEED) while the caller's thread writes the
 * current ones, so the tar producer neither waits for the disk nor spends its
 * time in open/stat/getdents. Both give the same items in the same order, so
 * the same tar bytes; an error met by the walk is returned once every item
 * before it was written, as the plain walk would.
 *
 * The read-ahead is bounded: at most KILN_LAYER_RA_ITEMS entries wait (each
 * holds at most one fd; fewer, an eighth of RLIMIT_NOFILE, under a low limit) and at most
 * KILN_LAYER_RA_BYTES of file data is asked for ahead of the writer (KILN_LAYER_RA_FILE of one
 * file; the kernel's own read-ahead follows a big file's sequential reads). */
#ifndef KILN_OCI_LAYER_WALK_H
#define KILN_OCI_LAYER_WALK_H

#include <sys/stat.h>

#include "oci/layer_write.h"
#include "utils/error.h"

#define KILN_LAYER_RA_ITEMS 256
#define KILN_LAYER_RA_BYTES (16 * 1024 * 1024)
#define KILN_LAYER_RA_FILE (1024 * 1024)

enum {
    KILN_LAYER_ITEM_ENTRY,   /* an entry to write */
    KILN_LAYER_ITEM_DIR_END, /* a directory's entries are all emitted: close its fd */
};

typedef struct kiln_layer_item {
    int kind;
    char *lpath;    /* ENTRY: the layer path (prefix applied) */
    struct stat st; /* ENTRY: the file's lstat */
    /* ENTRY: an open regular file (the item's: closed once written) or
     * directory (lent: its DIR_END closes it), else -1. DIR_END: the fd. */
    int fd;
    char *target; /* ENTRY: a symlink's target, else NULL */
} kiln_layer_item_t;

/* Writes one item. Takes the item in every case (frees its strings, closes
 * what it owns), also when it fails. */
typedef int (*kiln_layer_emit_fn)(void *ctx, kiln_layer_item_t *it, kiln_error_t *err);

typedef struct kiln_layer_walk {
    const char *prefix; /* normalised (no leading/trailing '/'), "" for none */
    kiln_layer_filter_fn filter;
    void *filter_ctx;
    kiln_layer_emit_fn emit;
    void *emit_ctx;
    int readahead; /* 1: a walk thread reads ahead; emit is still called in the caller's thread */
} kiln_layer_walk_t;

/* Walks dirfd/name as relative path rel: its own entry (unless skip_self:
 * the root of a whole-tree write, which may be a symlink to a directory and
 * must be one) and, for a directory, everything below it. Returns 0, or -1
 * with err (an emit's error, or the walk's naming the path). */
int kiln_layer_walk(const kiln_layer_walk_t *cfg, int dirfd, const char *name, const char *rel,
                    int skip_self, kiln_error_t *err);

/* "<prefix>/<path>" (or path alone, or the prefix for ""); malloc'ed. */
char *kiln_layer_join_prefix(const char *prefix, const char *path);

/* Frees an item's strings and closes the fd it owns. */
void kiln_layer_item_release(kiln_layer_item_t *it);

#endif
