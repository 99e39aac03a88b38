/* kiln — the stat cache: content hashes of build-context files keyed by what
 * stat says about them, so an unchanged file is not read again to compute a
 * COPY/ADD (or RUN bind mount) cache key.
 *
 * Contract. A cache belongs to one context identity: the canonical context
 * path for a CLI build, "git <repo> <subdir>" for a server's checkout (so
 * every build of the repository shares it although each checks it out into a
 * new directory), whatever the caller names it. An entry is keyed by the
 * path relative to the context root and holds (device, inode, size, mtime ns,
 * ctime ns) → sha256 of the content; any other stat is a miss. Lookups are
 * hashed (keyed SipHash, O(1) per file whatever the paths are).
 *
 * Storage: one file per context in a directory of the kiln root
 * (<root>/build/statcache/, or <root>/ns/NAME/statcache/ for a cache
 * namespace), named by the sha256 of the identity: bounded, versioned,
 * checksummed, replaced atomically (temp file + rename), so concurrent
 * builds never see a torn file (the last writer wins; a lost update only
 * costs hashing again). A file that is damaged, truncated, of another
 * version or hostile in any way is ignored as a whole (the cache starts
 * empty) and replaced on the next save. A file's mtime is its last use: the
 * directory is kept under a total size cap by deleting the least recently
 * used contexts' files.
 *
 * Rescans: the caller says which subtrees it walked completely
 * (kiln_statcache_scanned); entries under them that were not looked up are
 * of files that no longer exist and are dropped on save.
 *
 * Checkouts: kiln checkout, which writes every file of a commit itself, notes
 * each file's new stat with its git blob id (kiln_statcache_note). An entry
 * whose blob id is unchanged keeps its digest under the new stat, so the
 * build that follows reads only the files the commit changed.
 *
 * Racy entries: a file changed within the filesystem's timestamp granularity
 * of being hashed could keep its stat; an entry hashed less than
 * KILN_STATCACHE_RACY_NS after the file's last change is trusted only once
 * the file has been hashed again later (files kiln checkout wrote itself are
 * exempt: nothing else writes them). */
#ifndef KILN_ENGINE_STATCACHE_H
#define KILN_ENGINE_STATCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "oci/digest.h"
#include "utils/error.h"

/* The default total cap of a stat cache directory. */
#define KILN_STATCACHE_DEFAULT_MAX (256ULL << 20)
/* The longest context identity and relative path kept. */
#define KILN_STATCACHE_ID_MAX 4096
#define KILN_STATCACHE_PATH_MAX 4096
/* How long after a file's last change its hash is trusted (see above). */
#define KILN_STATCACHE_RACY_NS 2000000000LL
/* The size of a git blob id (SHA-1). */
#define KILN_STATCACHE_OID_LEN 20

typedef struct kiln_statcache kiln_statcache_t;

typedef struct kiln_statcache_stats {
    uint64_t hits;    /* files whose digest came from the cache */
    uint64_t hashed;  /* files read and hashed */
    uint64_t noted;   /* files a checkout noted */
    uint64_t kept;    /* … of which the digest carried over (same blob) */
    uint64_t loaded;  /* entries in the file when opened */
    uint64_t dropped; /* entries of vanished files dropped by the last save */
    uint64_t evicted; /* other contexts' files deleted for the cap by the last save */
    int damaged;      /* the file was there but refused (and is replaced on save) */
} kiln_statcache_stats_t;

/* Opens the cache of context_id (1..KILN_STATCACHE_ID_MAX bytes) stored in
 * the directory dir, which is made 0700 when missing (an old single-file
 * cache at that path is replaced); a damaged file loads as an empty cache.
 * max_bytes is the directory's total cap: 0 the default, negative no cache at
 * all (nothing is read or written; every file is hashed). The directory is
 * opened without following links and must be kiln's own. Returns -1 with err
 * naming the directory or the identity when it cannot be used. */
int kiln_statcache_open(const char *dir, const char *context_id, int64_t max_bytes,
                        kiln_statcache_t **out, kiln_error_t *err);

/* The content digest of the regular file rel (relative to the context root;
 * fd is the file, opened by the caller inside its root) whose lstat is st:
 * from the cache when the entry matches, else by reading fd (remembered).
 * -1 with err naming rel when the file cannot be read. */
int kiln_statcache_hash(kiln_statcache_t *c, const char *rel, int fd, const struct stat *st,
                        kiln_digest_t *out, kiln_error_t *err);

/* As kiln_statcache_hash, the file read (when the entry does not match) by digest(ctx),
 * which fills *out with the sha256 of its content (COPY's one pass: the file streamed into
 * its layer as it is hashed) or fails with err. */
int kiln_statcache_hash_with(kiln_statcache_t *c, const char *rel, const struct stat *st,
                             int (*digest)(void *ctx, kiln_digest_t *out, kiln_error_t *err),
                             void *ctx, kiln_digest_t *out, kiln_error_t *err);

/* Notes that the regular file rel, whose stat is st, was just written with
 * the content of the git blob oid (for kiln checkout). */
void kiln_statcache_note(kiln_statcache_t *c, const char *rel, const struct stat *st,
                         const unsigned char oid[KILN_STATCACHE_OID_LEN]);

/* Says that the subtree rel ("" = the whole context; a file is a subtree of
 * one) was walked completely since the cache was opened: its entries that
 * were not looked up or noted are dropped on save. */
void kiln_statcache_scanned(kiln_statcache_t *c, const char *rel);

/* Writes the cache back when it changed (temp file + rename), then deletes
 * the least recently used contexts' files while the directory is over its
 * cap (this one last). -1 with err naming the file on failure. */
int kiln_statcache_save(kiln_statcache_t *c, kiln_error_t *err);

/* What the cache did since it was opened. */
void kiln_statcache_stats(const kiln_statcache_t *c, kiln_statcache_stats_t *out);

void kiln_statcache_free(kiln_statcache_t *c);

/* Parses a cap as kiln_statcache_open takes it from a size ("512m", "1g",
 * bytes): "0" means no stat cache (-1). -1 with err quoting s. */
int kiln_statcache_parse_max(const char *s, int64_t *out, kiln_error_t *err);

/* Checks that data (len bytes) is a valid stat cache file of context_id, as
 * the loader does; *entries (may be NULL) is its entry count. -1 with err
 * saying what is wrong. For tests and the fuzz target. */
int kiln_statcache_check(const void *data, size_t len, const char *context_id, size_t *entries,
                         kiln_error_t *err);

#endif
