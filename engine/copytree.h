/* kiln — the copytree walk of COPY/ADD: one walk that either copies a source tree into a
 * staging directory (COPY's ownership and mode rules, symlinks copied as symlinks, hardlinks
 * within one copy kept, FIFOs/sockets/devices skipped and reported, never opened) or hashes
 * it for a cache key (names as written, modes, link targets, contents; context files through
 * the stat cache). Everything is opened under a dirfd with O_NOFOLLOW: a link in the source
 * or the staging tree is never followed. */
#ifndef KILN_ENGINE_COPYTREE_H
#define KILN_ENGINE_COPYTREE_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "engine/statcache.h"
#include "engine/strv.h"
#include "handlers/dockerfile/dockerignore.h"
#include "oci/digest.h"
#include "oci/layer_write.h"
#include "utils/error.h"

typedef struct kiln_copytree {
    /* Told about each skipped entry (a FIFO, socket or device) unless quiet; NULL: not told. */
    void (*note)(void *ctx, int step, const char *msg);
    void *note_ctx;
    int step;                          /* passed to note */
    const kiln_dockerignore_t *ignore; /* only for the main context */
    long uid, gid;                     /* -1 keep */
    long mode;                         /* -1 keep */
    bool root_owned;                   /* files without --chown belong to 0:0 */
    bool quiet;                        /* skipped entries were reported by the hash pass */
    kiln_sha256_t *hash;               /* hash mode: walk and hash, copy nothing */
    kiln_statcache_t *statcache;       /* for context files in hash mode, or NULL */
    nlink_t nlink_bias;                /* links the source tree itself adds (a lower view: 1) */
    int dest_root;                     /* copy mode: the staging directory */
    /* Layer mode: entries written straight into this layer, each as copy mode would leave
     * it in the staging tree (drel its layer path), in the walk's order, which is the
     * tree writer's (names sorted bytewise, a directory before its entries). */
    kiln_layer_writer_t *layer;
    /* Hash and layer mode at once (both set; COPY's one pass when no stat cache entry
     * spares reading): each file read once, hashed as it is streamed into the layer; the
     * source of kiln_copytree_hash_source goes into the layer as layer_as. */
    const char *layer_as;
    const char *hash_from; /* hash mode: the source's canonical path … */
    const char *hash_as;   /* … hashed as written (cache keys as before) */
    struct copy_link {
        dev_t dev;
        ino_t ino;
        char *path; /* from dest_root */
    } * links;      /* first copy of each multiply-linked source file */
    size_t n_links;
} kiln_copytree_t;

/* What a FIFO, socket or device is called in messages. */
const char *kiln_copytree_special_kind(mode_t m);

/* Frees what a walk kept (the hardlinks seen). */
void kiln_copytree_clear(kiln_copytree_t *c);

/* A directory's entries (source dir fd sub, path rel) into the staging directory dsub
 * (copy mode; path drel), then its metadata from st. */
int kiln_copytree_dir(kiln_copytree_t *c, int sub, const char *rel, int dsub, const char *drel,
                      const struct stat *st, kiln_error_t *err);

/* Layer mode: the entry drel as copy mode would leave it in the staging tree: the source's
 * type, size and mtime (st), hardlinks of one walk kept, the walk's owner and mode rules;
 * fd: a regular file's data (hashed into tee when not NULL), target: a symlink's. 1 when
 * the data was read from fd, 0 when not (a hardlink, empty, not a file), -1 with err. */
int kiln_copytree_layer_entry(kiln_copytree_t *c, const char *drel, const struct stat *st, int fd,
                              const char *target, kiln_sha256_t *tee, kiln_error_t *err);

/* Walks the entry name of the source directory sfd (rel: its path from the source root),
 * honouring the ignore rules, never following a link: hash mode hashes it into c->hash, copy
 * mode copies it into dfd (drel: its path in the staging tree). -1 with err. */
int kiln_copytree_entry(kiln_copytree_t *c, int sfd, const char *name, const char *rel, int dfd,
                        const char *drel, kiln_error_t *err);

/* Opens the directory holding the in-root canonical path canon under rootfd: *dirfd and
 * *name (borrowed from canon, "." for the root). -1 with err. */
int kiln_copytree_source_at(int rootfd, const char *canon, int *dirfd, const char **name,
                            kiln_error_t *err);

/* Hashes the source at canon (canonical, inside rootfd; written: as the Dockerfile wrote
 * it, which is what is hashed) into c->hash. -1 with err. */
int kiln_copytree_hash_source(kiln_copytree_t *c, int rootfd, const char *canon,
                              const char *written, kiln_error_t *err);

/* The sorted names of the directory fd (without . and ..) appended to out. */
int kiln_copytree_list_dir(int fd, const char *what, strv_t *out, kiln_error_t *err);

#endif
