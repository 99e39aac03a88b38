/* kiln — the manifest of a remote cache mount (RUN --mount=type=cache saved to S3): what
 * a cache directory holds, file by file, with each file's content as byte ranges of
 * content-addressed blobs ("packs" of many small files, or a large file cut in pieces).
 *
 *   {"kiln.cachemount.v1": 1,
 *    "blobs":   [["sha256:<hex>", size], ...],
 *    "entries": [{"p": "a/b", "t": "f", "m": 420, "u": 0, "g": 0, "mt": 1700000000,
 *                 "s": 123, "h": "sha256:<file hex>", "c": [[blob, offset, length], ...]},
 *                {"p": "a", "t": "d", ...}, {"p": "l", "t": "l", "l": "target", ...}]}
 *
 * Entries are sorted by path, so the same tree always encodes to the same bytes (an
 * unchanged cache is seen by comparing manifests). A manifest is untrusted input (another
 * worker, another build wrote it): decoding checks every path (relative, no "." / ".." /
 * empty component), every range against its blob and every size against the caps, and
 * restoring creates everything under the cache root only (utils/pathres), never through a
 * symbolic link, with set-id bits dropped. */
#ifndef KILN_ENGINE_CACHEMANIFEST_H
#define KILN_ENGINE_CACHEMANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "oci/digest.h"
#include "utils/error.h"

/* The media type of a pack as a blob of a registry cache image. */
#define KILN_CM_PACK_MEDIA_TYPE "application/vnd.kiln.cachemount.pack.v1"
/* A pack blob holds at most this much (a larger file spans several blobs). */
#define KILN_CM_PACK_MAX (16u << 20)
/* The caps of a manifest (and of a scanned directory). */
#define KILN_CM_MANIFEST_MAX (64u << 20) /* encoded bytes */
#define KILN_CM_ENTRIES_MAX 1000000
#define KILN_CM_PATH_MAX 4096
#define KILN_CM_DEPTH_MAX 128
/* The default size bound of one cache id (file bytes), see kiln_cm_evict. */
#define KILN_CM_DEFAULT_MAX_SIZE (4ull << 30)

typedef struct kiln_cm_seg {
    uint32_t blob; /* index into blobs */
    uint64_t off, len;
} kiln_cm_seg_t;

typedef struct kiln_cm_entry {
    char *path; /* relative, '/'-separated, validated */
    char type;  /* 'f' file, 'd' directory, 'l' symbolic link */
    uint32_t mode, uid, gid;
    int64_t mtime;
    uint64_t size;      /* files */
    kiln_digest_t hash; /* files: sha256 of the content */
    char *link;         /* links: the target as stored */
    kiln_cm_seg_t *segs;
    size_t n_segs;
    int64_t used; /* scan only (not encoded): max(atime, mtime), for eviction */
    /* scan and restore only (not encoded): the file's identity on disk when its hash was
     * taken; a later scan finding the same one reuses the hash (ctime cannot be set back) */
    uint64_t ino;
    int64_t mtime_ns, ctime_ns;
} kiln_cm_entry_t;

typedef struct kiln_cm_blob {
    kiln_digest_t digest;
    uint64_t size;
} kiln_cm_blob_t;

typedef struct kiln_cm {
    kiln_cm_entry_t *e;
    size_t n, cap;
    kiln_cm_blob_t *blobs;
    size_t nb, capb;
} kiln_cm_t;

void kiln_cm_clear(kiln_cm_t *m);

/* The JSON form (see above), malloc'ed, NUL-terminated; *len its length. */
char *kiln_cm_encode(const kiln_cm_t *m, size_t *len);

/* Parses and checks an untrusted manifest whose file bytes may total max_size at most.
 * what names it in errors ("cache npm from s3://b/p"). -1 with err naming the entry
 * and what is wrong with it; *out written on success only. */
int kiln_cm_decode(const char *buf, size_t len, uint64_t max_size, const char *what, kiln_cm_t *out,
                   kiln_error_t *err);

/* Checks one relative path of a manifest: -1 with err when it is empty, absolute, too long,
 * or has an empty, "." or ".." component. */
int kiln_cm_check_path(const char *path, kiln_error_t *err);

/* Lists the directory dirfd (not followed out of: symbolic links are entries, special
 * files skipped) with every file's hash, sorted by path, no segments yet. A file that known
 * (a restore's or an earlier scan's entries, sorted; may be NULL) lists at the same path with
 * the same inode, size, mtime and ctime keeps that hash unread. At most KILN_CM_ENTRIES_MAX
 * entries. -1 with err naming the path. */
int kiln_cm_scan(int dirfd, const kiln_cm_t *known, kiln_cm_t *out, kiln_error_t *err);

/* Drops the least recently used files (max(atime, mtime) of the scan) until the files
 * total max_size at most. Returns the number of files dropped. */
size_t kiln_cm_evict(kiln_cm_t *m, uint64_t max_size);

/* Gives every file of now (a scan) whose content old holds old's segments, with now's
 * blob table made of the blobs these use. *missing (malloc'ed, *n_missing long) lists the
 * indices of the files whose content must be uploaded; they have no segments yet. */
void kiln_cm_diff(const kiln_cm_t *old, kiln_cm_t *now, size_t **missing, size_t *n_missing);

/* Adds blob d of size bytes to m's table (once) and returns its index. */
uint32_t kiln_cm_add_blob(kiln_cm_t *m, const kiln_digest_t *d, uint64_t size);
/* Appends a segment to entry i. */
void kiln_cm_add_seg(kiln_cm_t *m, size_t i, uint32_t blob, uint64_t off, uint64_t len);

/* The sum of the file sizes. */
uint64_t kiln_cm_total(const kiln_cm_t *m);

/* Where a restore gets blob i's bytes: fills *buf (malloc'ed, exactly the blob's size
 * bytes, their digest checked). -1 with err. Called from several threads at once. */
typedef int (*kiln_cm_fetch_fn)(void *ud, void *http, const kiln_cm_blob_t *b, char **buf,
                                kiln_error_t *err);

/* Recreates m's tree under the empty directory rootfd: directories, then every file's
 * bytes from the blobs (fetch, with threads workers each given its own new_http()), then
 * symbolic links, then modes and times. Nothing is created outside rootfd. Each file's
 * identity on disk is noted in m (for kiln_cm_scan's known). -1 with err naming the entry;
 * what is half made is the caller's to remove. */
int kiln_cm_restore(int rootfd, kiln_cm_t *m, unsigned threads, kiln_cm_fetch_fn fetch,
                    void *(*new_http)(void), void (*free_http)(void *), void *ud,
                    kiln_error_t *err);

#endif
