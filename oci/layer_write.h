/* kiln — the layer writer: a directory tree (or a list of changes) to a
 * compressed PAX tar stream, in one pass, computing the compressed digest and
 * size, the diff_id (sha256 of the uncompressed tar) and its size.
 *
 * The tar is deterministic: entries of a directory in bytewise name order (a
 * directory's entry before its children), numeric uid/gid only (no user or
 * group names), no atime/ctime, mtimes in whole seconds clamped to
 * source_date_epoch when given, hardlinks as typeflag-1 links to the first
 * path seen, xattrs (incl. security.capability) as SCHILY.xattr records. Same
 * tree + same options ⇒ byte-identical layer on any machine.
 *
 * Nothing is held in memory beyond one directory listing per level of depth,
 * the hardlink table and a few MiB of buffers. */
#ifndef KILN_OCI_LAYER_WRITE_H
#define KILN_OCI_LAYER_WRITE_H

#include <stdint.h>
#include <sys/stat.h>

#include "oci/compress.h"
#include "oci/digest.h"
#include "oci/sink.h"
#include "utils/error.h"

#define KILN_MEDIA_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define KILN_MEDIA_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define KILN_MEDIA_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

/* Decides whether `path` (layer-relative, no prefix, no leading "/") goes into
 * the layer: 1 keep, 0 skip (a skipped directory skips its whole subtree),
 * <0 fail (err filled). */
typedef int (*kiln_layer_filter_fn)(void *ctx, const char *path, const struct stat *st,
                                    kiln_error_t *err);

typedef struct kiln_layer_opts {
    kiln_compression_t compression; /* default gzip */
    int level;                      /* -1: the compression's default */
    int64_t source_date_epoch;      /* >= 0: clamp mtimes to it; -1: keep mtimes */
    /* The tree is an overlayfs upper dir: a 0:0 character device becomes a
     * ".wh.<name>" whiteout, a directory with trusted.overlay.opaque or
     * user.overlay.opaque = "y" gets a ".wh..wh..opq" entry, and overlay
     * xattrs are dropped. */
    int overlay_upper;
    /* Subtracted from every uid/gid >= it (files of a sandbox that ran in a
     * subordinate id range base..base+N are written as 0..N). 0 = none. */
    uint32_t id_shift;
    /* Written under this directory (e.g. "app" or "usr/src/app"); its
     * components get 0755 root-owned directory entries. NULL/"" = at the root. */
    const char *prefix;
    kiln_layer_filter_fn filter; /* NULL = everything */
    void *filter_ctx;
    int threaded; /* 1 (default): compress in a second thread */
    /* 1 (default): a walk thread opens, stats and lists the tree ahead of the
     * tar and asks for the next files' data (oci/layer_walk); the same bytes
     * as 0, which walks in the writer's thread. */
    int readahead;
} kiln_layer_opts_t;

typedef struct kiln_layer_info {
    kiln_digest_t digest;  /* of the compressed blob */
    uint64_t size;         /* compressed size */
    kiln_digest_t diff_id; /* of the uncompressed tar */
    uint64_t diff_size;
    const char *media_type; /* static string (KILN_MEDIA_LAYER_*) */
    uint64_t entries;       /* tar entries written */
} kiln_layer_info_t;

/* Fills the defaults: gzip, default level, no epoch, no overlay, threaded, read-ahead. */
void kiln_layer_opts_init(kiln_layer_opts_t *opts);

/* The OCI media type of a layer compressed with c. */
const char *kiln_layer_media_type(kiln_compression_t c);

/* Writes the whole tree under dir (not dir's own entry, unless a prefix
 * is given) as one layer into out. info is filled on success. Fails naming
 * the path that could not be read; out may then have received a partial
 * stream (a store writer sink must be aborted by the caller). */
int kiln_layer_write_dir(const char *dir, const kiln_layer_opts_t *opts, kiln_sink_t *out,
                         kiln_layer_info_t *info, kiln_error_t *err);

/* Incremental form, for change lists: entries are written in call order
 * (the caller sorts them). */
typedef struct kiln_layer_writer kiln_layer_writer_t;

int kiln_layer_writer_new(const kiln_layer_opts_t *opts, kiln_sink_t *out,
                          kiln_layer_writer_t **res, kiln_error_t *err);
/* Adds the file dirfd/name (not recursing) as layer path `path`. */
int kiln_layer_writer_add(kiln_layer_writer_t *w, int dirfd, const char *name, const char *path,
                          kiln_error_t *err);
/* Adds one entry as layer path `path` as st describes it (type, mode, owner,
 * mtime, size: the caller's, whatever the file's own are), without xattrs: a
 * regular file's data read from fd (exactly st_size bytes; a file that shrank
 * fails) and, when tee is not NULL, hashed into it, a symlink's target given. A
 * regular file of st_nlink > 1 whose (st_dev, st_ino) was added before becomes a
 * hardlink to the first path. Returns 1 when data was read from fd (and went
 * through tee), 0 when none was (a link, an empty file, not a file), -1 with err. */
int kiln_layer_writer_add_stat(kiln_layer_writer_t *w, const char *path, const struct stat *st,
                               int fd, const char *target, kiln_sha256_t *tee, kiln_error_t *err);
/* Adds dirfd/name and, for a directory, everything below it (sorted). */
int kiln_layer_writer_add_tree(kiln_layer_writer_t *w, int dirfd, const char *name,
                               const char *path, kiln_error_t *err);
/* Copies every entry of a tar stream read from fd (gzip, zstd or plain,
 * detected) in its order, normalising it as the tree writer does (numeric
 * ids, clamped mtimes, no atime/ctime/user names). Entries named with ".." or
 * an absolute path are rejected; "./" prefixes are dropped. */
int kiln_layer_writer_add_tar(kiln_layer_writer_t *w, int fd, kiln_error_t *err);
/* Adds a whiteout for `path` (".wh.<base>") / an opaque marker in directory `dir`. */
int kiln_layer_writer_add_whiteout(kiln_layer_writer_t *w, const char *path, kiln_error_t *err);
int kiln_layer_writer_add_opaque(kiln_layer_writer_t *w, const char *dir, kiln_error_t *err);
/* Ends the tar and the compressed stream; info filled on success. */
int kiln_layer_writer_finish(kiln_layer_writer_t *w, kiln_layer_info_t *info, kiln_error_t *err);
/* Frees (after finish, or to abandon a write). NULL is fine. */
void kiln_layer_writer_free(kiln_layer_writer_t *w);

#endif
