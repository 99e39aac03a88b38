/* kiln — the layer unpacker: applies one layer (a gzip, zstd or plain tar
 * stream, detected by its magic) onto a rootfs directory.
 *
 * OCI layer semantics: ".wh.<name>" removes <name> from the lower layers,
 * ".wh..wh..opq" empties its directory of what the lower layers put there;
 * hardlinks, symlinks, ownership (when permitted), modes incl. setuid/setgid,
 * xattrs and mtimes are restored.
 *
 * Safety: nothing is ever written outside rootfs. Entry names and hardlink
 * targets that are absolute or contain ".." are rejected with an error naming
 * the entry; every path is resolved with openat2(RESOLVE_IN_ROOT), so symlinks
 * (from this or a lower layer) pointing out of the rootfs resolve inside it.
 * Device nodes are rejected unless allowed. A failed unpack leaves the rootfs
 * partially written: the caller discards it. */
#ifndef KILN_OCI_UNPACK_H
#define KILN_OCI_UNPACK_H

#include <stdint.h>

#include "oci/compress.h"
#include "oci/digest.h"
#include "utils/error.h"

/* What a layer unpacked into a directory of its own (kiln_unpack_opts_t.record) leaves for
 * kiln_unpack_merge to apply onto the layers below it: paths cleaned, relative to the root. */
typedef struct kiln_unpack_record {
    char **whiteouts; /* "dir/name" (".wh.name" entries): removed from the lower layers */
    size_t n_whiteouts;
    char **opaques; /* directories (".wh..wh..opq"): emptied of the lower layers' entries */
    size_t n_opaques;
    /* directories made only to hold entries (no entry of their own): they take the lower
     * layers' directory there, symlinks followed inside the root, as a layer applied in
     * place would; sorted (strcmp) */
    char **implicit;
    size_t n_implicit;
    /* its entries keep the creator's owner (no chown): in place, those made in a setgid
     * directory would take its group */
    int no_chown;
} kiln_unpack_record_t;

void kiln_unpack_record_free(kiln_unpack_record_t *rec);

typedef struct kiln_unpack_opts {
    /* Store whiteouts as 0:0 character devices and opaque directories as the
     * overlay opaque xattr, so that the rootfs can be an overlayfs lower dir. */
    int overlay_form;
    /* With overlay_form: use user.overlay.opaque (userxattr mounts) instead of
     * trusted.overlay.opaque. */
    int overlay_user_xattr;
    /* -1 (default): chown when running as root, ignoring EPERM; 0 never;
     * 1 always, failing when not permitted. */
    int chown;
    uint32_t id_shift; /* added to every uid/gid (sandbox id range base) */
    int allow_devices; /* create block/char device nodes instead of failing */
    /* When not NULL: the stream must hash to these (checked at the end). */
    const kiln_digest_t *expect_digest;  /* of the compressed blob as read */
    const kiln_digest_t *expect_diff_id; /* of the uncompressed tar */
    /* With stats but no expect_digest: the blob's digest is not computed (its reader
     * checks it), only the sizes and diff_id. */
    int stats_no_digest;
    /* When not NULL (an empty record; not with overlay_form): the layer is unpacked into an
     * empty directory of its own, its whiteouts and opaque directories recorded here instead
     * of applied, for kiln_unpack_merge onto the layers below (oci/unpack_merge). Filled on
     * success (free it with kiln_unpack_record_free either way). */
    kiln_unpack_record_t *record;
} kiln_unpack_opts_t;

typedef struct kiln_unpack_stats {
    uint64_t entries;
    uint64_t size;      /* compressed bytes read */
    uint64_t diff_size; /* uncompressed bytes */
    kiln_digest_t digest;
    kiln_digest_t diff_id;
    kiln_compression_t format;
} kiln_unpack_stats_t;

void kiln_unpack_opts_init(kiln_unpack_opts_t *opts);

/* Applies the layer read from fd (to its end; fd is not closed) onto rootfs
 * (an existing directory). stats (may be NULL) filled on success. */
int kiln_layer_unpack(int fd, const char *rootfs, const kiln_unpack_opts_t *opts,
                      kiln_unpack_stats_t *stats, kiln_error_t *err);

/* The same reading the layer through fn(ctx, ...) (e.g. a blob still
 * downloading: kiln_blob_stream_read); fn's error ends the unpack. */
int kiln_unpack_reader(kiln_read_fn fn, void *ctx, const char *rootfs,
                       const kiln_unpack_opts_t *opts, kiln_unpack_stats_t *stats,
                       kiln_error_t *err);

/* The same taking the layer as blocks from fn(ctx, ...), inflated where they are (e.g. a
 * blob streamed in memory: kiln_blob_stream_block); fn's error ends the unpack. */
int kiln_unpack_blocks(kiln_block_fn fn, void *ctx, const char *rootfs,
                       const kiln_unpack_opts_t *opts, kiln_unpack_stats_t *stats,
                       kiln_error_t *err);

/* Normalises a path of a tar entry in place: drops leading "./", "."
 * components, repeated and trailing slashes. Rejects absolute paths and ".."
 * components with an error naming the entry (orig) and what is wrong with
 * `what` (e.g. "its name", "its hardlink target"). "" is the root itself. */
int kiln_layer_clean_path(char *path, const char *what, const char *orig, kiln_error_t *err);

#endif
