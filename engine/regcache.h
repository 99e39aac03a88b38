/* kiln — the bound of a registry cache image (`--cache-to type=registry,ref=R[,max-size=S]`)
 * and `kiln cache gc` of one.
 *
 * A registry cache image carries the layer cache of the build that pushed it (its step cache
 * entries and their layers: one build's worth, replaced by each save) and every cache mount
 * id ever saved to it (an id a build did not use keeps the manifest and packs it imported).
 * The cache mounts are what grows, so the save bounds them: each id's files to max-size as on
 * S3 (least recently used files left out), then whole ids, least recently saved first, until
 * the packs of every id kept total max-size at most (default KILN_REGCACHE_DEFAULT_MAX). When
 * each id was last saved is kept in the cache image's config ("kiln.mounts.saved.v1").
 *
 * `kiln cache gc` of a registry cache reads the image, checks it (every size in range, every
 * blob its config names one of its own layers, no foreign `urls`), evicts as the save does
 * and drops packs nothing names, pushes the rewritten image to the same tag, and deletes the
 * old manifest where the registry allows DELETE. Blobs are never deleted by kiln (other
 * images of the repository may share them): those nothing references any more go at the
 * registry's own garbage collection. */
#ifndef KILN_ENGINE_REGCACHE_H
#define KILN_ENGINE_REGCACHE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "oci/registry.h"
#include "utils/error.h"

#define KILN_REGCACHE_DEFAULT_MAX (16ull << 30)
#define KILN_REGCACHE_SAVED_KEY "kiln.mounts.saved.v1"
#define KILN_REGCACHE_MOUNTS_KEY "kiln.mounts.v1"
#define KILN_REGCACHE_ENTRIES_KEY "kiln.cache.v1"
/* the largest layer a cache image may declare (a pack: KILN_CM_PACK_MAX) */
#define KILN_REGCACHE_LAYER_MAX (1ull << 40)

/* The bytes of the packs mounts (rel -> cache mount manifest) name, each pack once. */
uint64_t kiln_regcache_mounts_bytes(const json_t *mounts);

/* Removes whole cache ids from mounts, least recently saved first (saved: rel -> seconds;
 * an id without a time is the oldest; ties by name), until their packs total max at most;
 * their times go from saved too. Returns the number removed; *bytes (may be NULL) what is
 * left. */
size_t kiln_regcache_evict(json_t *mounts, json_t *saved, uint64_t max, uint64_t *bytes);

/* The saved times of the ids of mounts (a new object). */
json_t *kiln_regcache_saved_of(const json_t *mounts, const json_t *saved);

/* Checks a cache image from a registry (what names it in errors): its manifest man (an
 * image manifest, not an index) and config cfg. -1 with err naming the entry when a size is
 * negative or past its cap, a layer names `urls`, or a pack, a cache entry's layer or a saved
 * time in the config is not one of the image's own layers / a time. */
int kiln_regcache_check(const char *what, const json_t *man, const json_t *cfg, kiln_error_t *err);

typedef struct kiln_regcache_gc_stats {
    size_t ids, evicted;    /* cache ids found, removed */
    size_t packs_dropped;   /* packs left out of the rewritten image */
    uint64_t before, after; /* the packs' bytes */
    int rewritten;          /* a new image was pushed (0: nothing to do, or dry run) */
    int old_deleted;        /* 1 deleted, 0 left (DELETE not allowed), -1 not tried */
} kiln_regcache_gc_stats_t;

/* `kiln cache gc` of the registry cache image ref (see above), bounded to max (0: the
 * default). dry_run: only counts. -1 with err naming ref and what failed; nothing is written
 * when the image is refused or changed while being collected. */
int kiln_regcache_gc(kiln_registry_t *r, const char *ref, uint64_t max, int dry_run,
                     kiln_regcache_gc_stats_t *st, kiln_error_t *err);

#endif
