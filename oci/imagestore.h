/* kiln — the local image store: names (docker's name:tag) given to images whose blobs are in
 * the content store (oci/store.h), as `docker images` lists them.
 *
 *   <root>/images/index.json   {"version":1,"images":{"<full name>":{"digest":"sha256:…",
 *                              "size":N,"created":"RFC 3339","tagged":UNIX}}}
 *   <root>/images/lock         flock(LOCK_EX) of every writer of the index
 *
 * A name is a full normalised reference with a tag ("docker.io/library/app:latest"); the
 * digest is the image's manifest in the content store. The index is the only record of a
 * name: prune keeps every blob an indexed manifest reaches (kiln_imagestore_foreach), and
 * removing a name (rmi) leaves the blobs to the next prune.
 *
 * Writers (build -t, tag, rmi, load) take the lock, read the index, change it and write it
 * to a temp file renamed over index.json: two builds tagging at once each see the other's
 * names, and a reader (images) always sees one whole index. Every writer holds the content
 * store open (its shared lock), so prune, which holds it exclusively, never sees the index
 * change while it marks. */
#ifndef KILN_OCI_IMAGESTORE_H
#define KILN_OCI_IMAGESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

/* Largest index file read (a hostile or damaged one is refused, not half read). */
#define KILN_IMAGESTORE_INDEX_MAX (16u * 1024 * 1024)
/* Most names the index holds. */
#define KILN_IMAGESTORE_MAX_NAMES 65536

typedef struct kiln_imagestore_entry {
    char *name;           /* full normalised reference with a tag */
    kiln_digest_t digest; /* the manifest's */
    uint64_t size;        /* the layers unpacked (docker images' SIZE) */
    int size_unknown;     /* not measured yet (a pulled image's layers): no "size" in the file */
    char *created;        /* the config's "created" (may be NULL) */
    int64_t tagged;       /* when the name was set (unix seconds) */
} kiln_imagestore_entry_t;

typedef struct kiln_imagestore_index {
    kiln_imagestore_entry_t *entries; /* sorted by name */
    size_t n;
} kiln_imagestore_index_t;

/* ---- the index codec (imagestore_index.c) ---- */

/* Parses an index file's text. Fails naming what is wrong (version, a name that is not a
 * normalised tagged reference, a bad digest, too many names); *out untouched then. */
int kiln_imagestore_index_parse(const char *buf, size_t len, kiln_imagestore_index_t *out,
                                kiln_error_t *err);
/* The index as text (keys sorted, one trailing newline), malloc'ed. */
char *kiln_imagestore_index_dump(const kiln_imagestore_index_t *ix);
/* The entry of name, or NULL. */
const kiln_imagestore_entry_t *kiln_imagestore_index_find(const kiln_imagestore_index_t *ix,
                                                          const char *name);
/* Sets (adds or replaces) an entry; e's strings are copied. Fails past
 * KILN_IMAGESTORE_MAX_NAMES. */
int kiln_imagestore_index_set(kiln_imagestore_index_t *ix, const kiln_imagestore_entry_t *e,
                              kiln_error_t *err);
/* Removes name: 1 when it was there, 0 when not. */
int kiln_imagestore_index_remove(kiln_imagestore_index_t *ix, const char *name);
void kiln_imagestore_index_clear(kiln_imagestore_index_t *ix);
void kiln_imagestore_entry_clear(kiln_imagestore_entry_t *e);

/* The full name of a name as people write it ("app" -> "docker.io/library/app:latest"),
 * malloc'ed in *full; a digest reference or a bad name fails naming it. */
int kiln_imagestore_normalize(const char *name, char **full, kiln_error_t *err);
/* Splits a full name into docker's REPOSITORY ("app", "ghcr.io/o/app") and TAG, malloc'ed. */
void kiln_imagestore_familiar(const char *full, char **repository, char **tag);

/* ---- the index under a kiln root (imagestore.c) ---- */

/* Reads <root>/images/index.json (an absent file is an empty index). */
int kiln_imagestore_load(const char *root, kiln_imagestore_index_t *out, kiln_error_t *err);

/* Finds name (as people write it) in the index of an open store: 1 and *out filled, 0 when
 * there is no such name, <0 on error. */
int kiln_imagestore_lookup(kiln_store_t *s, const char *name, kiln_imagestore_entry_t *out,
                           kiln_error_t *err);

/* Names the image whose manifest is in the store: each of names (as people write them)
 * points at it, under the lock, in one index write. The manifest must be a manifest (not an
 * index) in the store; its size and created time are recorded with the names (the size
 * when every layer's is known without decompressing it: else it is left to
 * kiln_imagestore_measure, so naming a pulled image inflates nothing). */
int kiln_imagestore_tag(kiln_store_t *s, const char *const *names, size_t n,
                        const kiln_digest_t *manifest, kiln_error_t *err);

/* The unpacked size of the image of manifest d in the store, measuring (decompressing) each
 * layer whose size was never noted: *size. The index's entries naming d with no size get it
 * (under the lock; best effort: a root this user cannot write still gets *size). A layer
 * that cannot be read fails naming it. */
int kiln_imagestore_measure(kiln_store_t *s, const kiln_digest_t *d, uint64_t *size,
                            kiln_error_t *err);

/* Removes names (as people write them) from the index in one write. Every name must be
 * there: an unknown one fails naming it and nothing is removed. The blobs stay until prune.
 * The digest each name had goes to digests[i] when digests != NULL. */
int kiln_imagestore_untag(kiln_store_t *s, const char *const *names, size_t n,
                          kiln_digest_t *digests, kiln_error_t *err);

/* Calls fn with every indexed manifest digest (prune's roots); stops at fn's negative return.
 * An unreadable index fails (prune must not take its images for garbage). */
int kiln_imagestore_foreach(const char *root,
                            int (*fn)(const char *name, const kiln_digest_t *d, void *ud), void *ud,
                            kiln_error_t *err);

#endif
