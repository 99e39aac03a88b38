/* kiln — the content-addressed blob store shared by every build on the machine.
 *
 * Layout under the root (default kiln_store_default_root(), `--root DIR` in the CLI):
 *
 *   <root>/blobs/sha256/<hex>   immutable blobs, named by the sha256 of their content
 *   <root>/tmp/                 blobs being written (temp files, renamed into blobs/)
 *   <root>/refs/<hex(name)>     named pins: "sha256:<hex>\n<name>\n" (see kiln_store_ref_set)
 *   <root>/lock, <root>/gate    the lock files of the protocol below
 *   <root>/build/lowers/<hex>   unpacked layer trees (by diff_id) the build engine keeps;
 *                               prune removes those no kept image config lists, and every
 *                               other entry there (flat-<hex> snapshots, temp trees)
 *
 * Writes: a blob is streamed into a temp file in <root>/tmp while being hashed;
 * on commit it is checked against the expected digest/size (when given),
 * fsynced, renamed to blobs/sha256/<hex>, and the directory fsynced. A failed,
 * aborted or interrupted write leaves no blob (at worst a temp file that the
 * next prune removes).
 *
 * Reachability: a ref pins a blob. When the pinned blob is an image index or
 * manifest (OCI or Docker v2s2), everything it names is reachable too:
 * index -> manifests (recursively), manifest -> config + layers. A ref may also
 * pin a plain blob (e.g. a cache entry's layer). Everything else is garbage.
 *
 * Lock protocol (why prune is safe while builds run):
 *   - every user of the store (a build, a pull, an import, `kiln inspect` of the
 *     store) holds flock(LOCK_SH) on <root>/lock for as long as its
 *     kiln_store_t is open; kiln_store_open takes it and kiln_store_close drops it.
 *     Hold the handle for the duration of one build/pull and pin what you want
 *     to keep with a ref before closing it; do not keep a handle open forever
 *     (a server opens one per build) or prune can never run.
 *   - kiln_store_prune takes flock(LOCK_EX) on the same file: it runs only when
 *     no build holds the store, and new builds wait in kiln_store_open until it
 *     is done. So that overlapping builds cannot starve a waiting prune, it
 *     first takes <root>/gate exclusively; kiln_store_open passes the gate
 *     (LOCK_SH, released once "lock" is held) before taking "lock". A
 *     second handle on a store this process already holds skips the gate, so
 *     nested opens cannot deadlock against a waiting prune. So no blob being written,
 * checked with kiln_store_has or read is ever removed, and all of <root>/tmp is stale when prune
 * runs. */
#ifndef KILN_OCI_STORE_H
#define KILN_OCI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/sink.h"
#include "utils/error.h"

typedef struct kiln_store kiln_store_t;
typedef struct kiln_store_writer kiln_store_writer_t;
struct kiln_astore;

/* Largest blob kiln_store_read_blob reads into memory when cap is 0. */
#define KILN_STORE_READ_DEFAULT_CAP (16u * 1024 * 1024)

/* The default root: /var/lib/kiln when running as root, else
 * $XDG_DATA_HOME/kiln, else $HOME/.local/share/kiln. Returns a malloc'ed
 * string, or NULL when none can be determined (no HOME). */
char *kiln_store_default_root(void);

/* Opens (creating as needed, mode 0700 for a new root) the store at root and
 * takes the shared lock (blocking while a prune runs). */
int kiln_store_open(const char *root, kiln_store_t **out, kiln_error_t *err);
/* Drops the shared lock and frees the handle. NULL is fine. */
void kiln_store_close(kiln_store_t *s);
/* The root directory of an open store. */
const char *kiln_store_root(const kiln_store_t *s);

/* "<root>/blobs/sha256/<hex>", malloc'ed (the blob need not exist). */
char *kiln_store_blob_path(const kiln_store_t *s, const kiln_digest_t *d);

/* 1 when the blob exists (its size in *size when size != NULL), 0 when not. */
int kiln_store_has(kiln_store_t *s, const kiln_digest_t *d, uint64_t *size);

/* Opens a blob read-only (O_CLOEXEC); its size in *size when size != NULL.
 * Fails with ENOENT and a message naming the digest when it is missing. */
int kiln_store_open_blob(kiln_store_t *s, const kiln_digest_t *d, int *fd, uint64_t *size,
                         kiln_error_t *err);

/* Reads a whole blob into memory (NUL-terminated, malloc'ed), failing with
 * EFBIG past cap bytes (0 = KILN_STORE_READ_DEFAULT_CAP) and with EIO when the
 * content does not hash to d (a corrupted store). */
int kiln_store_read_blob(kiln_store_t *s, const kiln_digest_t *d, size_t cap, char **out,
                         size_t *len, kiln_error_t *err);

/* Stores a buffer; its digest in *out (when out != NULL). Idempotent. */
int kiln_store_put_bytes(kiln_store_t *s, const void *buf, size_t len, kiln_digest_t *out,
                         kiln_error_t *err);

/* Starts a streamed blob write. expected (may be NULL) and expected_size
 * (-1 = unknown) are verified at commit; writing more than expected_size bytes
 * fails at once. */
int kiln_store_writer_new(kiln_store_t *s, const kiln_digest_t *expected, int64_t expected_size,
                          kiln_store_writer_t **out, kiln_error_t *err);
/* Appends bytes (hashing them). */
int kiln_store_writer_write(kiln_store_writer_t *w, const void *buf, size_t len, kiln_error_t *err);
/* The writer as a sink (for the layer writer and copiers). */
kiln_sink_t kiln_store_writer_sink(kiln_store_writer_t *w);
/* Verifies, fsyncs and renames the blob into place; digest/size of what was
 * written in *digest / *size (either may be NULL). ALWAYS frees w; on failure
 * (digest or size mismatch, I/O error) nothing is left in the store. When the
 * blob already exists with that size the temp file is simply dropped (another size: a blob
 * cut short, replaced). */
int kiln_store_writer_commit(kiln_store_writer_t *w, kiln_digest_t *digest, uint64_t *size,
                             kiln_error_t *err);
/* Drops a write in progress (removes its temp file) and frees w. NULL is fine. */
void kiln_store_writer_abort(kiln_store_writer_t *w);
/* A blob that can be fetched again (a pull, a layout import): its commit does
 * not fsync. After a crash it may be short or missing, which its users notice
 * (the pull and the import compare sizes; an unpack checks the digest or
 * diff_id): it is fetched again. Never for a blob only kiln has (a layer it
 * built). */
void kiln_store_writer_no_sync(kiln_store_writer_t *w);
/* Deferred durability (on: +1, off: -1; nested calls count): while on, a blob written
 * through this handle (not kiln_store_writer_no_sync) is renamed into place without an
 * fsync (its fd kept, at most 64), and the next kiln_store_ref_set /
 * kiln_store_ref_set_volatile first makes every such blob durable (kiln_store_sync): a ref
 * never names a blob a crash could cut short. A build writes dozens of small blobs (a layer
 * and a cache entry per step), each of which cost a file and a directory fsync on the step's
 * path before; now a flusher thread pays them, once per group. */
void kiln_store_defer_sync(kiln_store_t *s, int on);
/* Makes the deferred blobs written so far durable: an fsync of each (their fds were kept
 * open), then one of the blobs directory; nothing when none is pending. Not a syncfs, which
 * would wait for every other writer of the filesystem. -1 with err (the next call then
 * syncs the whole filesystem). */
int kiln_store_sync(kiln_store_t *s, kiln_error_t *err);
/* A new read-only fd of the blob being written (its temp file), for a reader
 * following the write: the bytes up to kiln_store_writer_flushed are in it;
 * it keeps the bytes after commit or abort. -1 with err. */
int kiln_store_writer_open_read(kiln_store_writer_t *w, kiln_error_t *err);
/* How many bytes are in the temp file (written past the writer's buffer). */
uint64_t kiln_store_writer_flushed(const kiln_store_writer_t *w);

/* Copies everything readable from fd into the store (expected may be NULL). */
int kiln_store_put_fd(kiln_store_t *s, int fd, const kiln_digest_t *expected, int64_t expected_size,
                      kiln_digest_t *out, uint64_t *size, kiln_error_t *err);

/* Additional stores (oci/additional_store.h): read-only stores whose blobs kiln_store_has,
 * kiln_store_open_blob and kiln_store_read_blob find when the root lacks them (nothing is
 * ever written there). Opens dir (its ownership and permissions checked) and adds it to the
 * handle (freed with it). -1 with err naming the store and what would allow it: the caller
 * warns and goes on without it. */
int kiln_store_attach_additional(kiln_store_t *s, const char *dir, kiln_error_t *err);
/* The additional stores of the handle (n in *n). */
struct kiln_astore *const *kiln_store_additional(const kiln_store_t *s, size_t *n);
/* Whether blob d is found in an additional store only (not in the root). */
int kiln_store_in_additional(kiln_store_t *s, const kiln_digest_t *d);

/* Named pins. A name is 1..1024 bytes of printable ASCII without newline, by
 * convention "image/<full reference>" or "cache/<key>". Setting an existing
 * name replaces its target atomically. */
int kiln_store_ref_set(kiln_store_t *s, const char *name, const kiln_digest_t *d,
                       kiln_error_t *err);
/* As kiln_store_ref_set, for a ref whose loss costs only work done again (a step cache
 * entry): the blobs it names are made durable first (kiln_store_sync), the ref file itself is
 * not fsynced: after a crash it may be missing or unreadable (kiln_store_ref_get fails,
 * kiln_store_ref_foreach skips it), never naming a blob cut short. */
int kiln_store_ref_set_volatile(kiln_store_t *s, const char *name, const kiln_digest_t *d,
                                kiln_error_t *err);
/* 1 and *d filled when the name exists, 0 when it does not, <0 on error. */
int kiln_store_ref_get(kiln_store_t *s, const char *name, kiln_digest_t *d, kiln_error_t *err);
/* Removes a pin; a missing name is not an error. */
int kiln_store_ref_delete(kiln_store_t *s, const char *name, kiln_error_t *err);
/* Removes the refs whose name starts with prefix and that were neither set nor read
 * (kiln_store_ref_get refreshes a ref's mtime) for more than max_age_s seconds, e.g.
 * "cache/" entries of builds; what they pinned goes at the next prune. *removed = how many
 * (would be, with dry_run). <0 on error. */
int kiln_store_refs_expire(kiln_store_t *s, const char *prefix, double max_age_s, int dry_run,
                           unsigned *removed, kiln_error_t *err);
/* Calls fn for every ref (unspecified order); a negative return from fn stops
 * the walk and is returned. */
int kiln_store_ref_foreach(kiln_store_t *s,
                           int (*fn)(const char *name, const kiln_digest_t *d, void *ud), void *ud,
                           kiln_error_t *err);

typedef struct kiln_store_prune_stats {
    uint64_t blobs_kept;
    uint64_t blobs_removed;
    uint64_t bytes_freed;
    uint64_t tmp_removed;
    uint64_t refs_dangling;       /* refs whose target blob is missing (not lazy, in no store) */
    uint64_t blobs_lazy;          /* reachable lazy blobs (oci/store_lazy): fetched when needed */
    uint64_t blobs_in_additional; /* reachable blobs found in an additional store only */
    uint64_t lazy_removed;        /* lazy blob records dropped (unreachable, or fetched since) */
    uint64_t lowers_removed;      /* unpacked layer trees under build/lowers no kept config lists */
} kiln_store_prune_stats_t;

/* Removes every blob no ref reaches, all stale temp files, and the unpacked layer trees
 * under build/lowers whose diff_id no kept config lists, under the
 * exclusive lock (see the protocol above). wait=0 fails with EBUSY at once
 * when a build holds the store; wait=1 blocks until it can run. The caller
 * must not hold an open kiln_store_t on the same root in this process
 * (it would deadlock with wait=1). A ref whose target is missing is counted in
 * stats->refs_dangling, not an error. When dry_run, nothing is removed. */
int kiln_store_prune(const char *root, int wait, int dry_run, kiln_store_prune_stats_t *stats,
                     kiln_error_t *err);
/* As kiln_store_prune, knowing the operator's additional stores (n of them, opened): a
 * reachable blob the root lacks but one of them holds is counted in blobs_in_additional, not
 * as dangling, and what it names is kept too. Nothing in a store is ever changed. */
int kiln_store_prune_with(const char *root, struct kiln_astore *const *additional,
                          size_t n_additional, int wait, int dry_run,
                          kiln_store_prune_stats_t *stats, kiln_error_t *err);

#endif
