/* kiln — remote caches of a build (see remote_mounts.c): the `type=s3` --cache-from /
 * --cache-to of the request opened, RUN --mount=type=cache directories restored from them
 * lazily (before the first step that runs with the cache id mounted) and saved to
 * --cache-to after a successful build, incrementally. Internal to the engine. */
#ifndef KILN_ENGINE_REMOTE_MOUNTS_H
#define KILN_ENGINE_REMOTE_MOUNTS_H

#include "engine/engine.h"
#include "engine/remote_store.h"

typedef struct rc_mount {
    char *id;              /* the cache id as written */
    char *dir;             /* its directory in the namespace's cache mounts */
    struct kiln_cm *known; /* what was restored into dir (engine/cachemanifest), or NULL */
    int ran;               /* a step that ran mounted it (a cached step mounts nothing) */
} rc_mount_t;

typedef struct kiln_rcache {
    kiln_rstore_t **from; /* type=s3 --cache-from, in order */
    uint64_t *from_max;
    size_t n_from;
    kiln_rstore_t *to; /* type=s3 --cache-to, or NULL */
    uint64_t to_max;
    int to_mode_max;
    rc_mount_t *mounts; /* cache ids this build mounted */
    size_t n_mounts;
    strv_t looked;        /* directories restored (or found in use) already */
    pthread_mutex_t lock; /* one restore at a time; guards the lists above */
    /* the registry cache's cache mounts ("kiln.mounts.v1" of the cache image's config:
     * "mounts/<sha256 of id>.json" -> manifest): imported (--cache-from, the first image
     * holding an id wins; its packs pulled with the image) and to export (--cache-to) */
    json_t *reg_old, *reg_new;
    json_t *reg_saved; /* "kiln.mounts.saved.v1": when each id was saved (engine/regcache) */
} kiln_rcache_t;

/* Opens the request's remote caches (e->rcache stays NULL without any). -1 with err
 * naming a bad spec. */
int kiln_remote_mounts_init(engine_t *e, kiln_error_t *err);
void kiln_remote_mounts_free(engine_t *e);

/* RUN --mount=type=cache,id=ID mounts dir (engine/mounts.c): remembered for the save. */
void kiln_remote_mounts_note(engine_t *e, const char *id, const char *dir);

/* A step is about to run with cache directory dir (or a private instance of it) mounted
 * (only such a cache id is saved): the first time, when dir is empty, it is filled from the first
 * --cache-from holding its id. A remote cache that cannot be read or is refused is a warning (the
 * step runs with an empty cache), never a failure. */
void kiln_remote_mounts_restore(engine_t *e, const char *dir);

/* Whether d is a pack of a cache mount manifest the registry --cache-to will name (*size
 * then its size). */
bool kiln_remote_mounts_pack_size(engine_t *e, const kiln_digest_t *d, uint64_t *size);

/* Keeps the cache mount manifests of a registry cache image's config (cfg); their packs are
 * fetched when a step mounts the id (the import pulls none). */
void kiln_remote_mounts_imported(engine_t *e, json_t *cfg);

/* Saves every cache id the build mounted to --cache-to (see remote_mounts.c): to S3, and for
 * a registry --cache-to into the store and rc->reg_new (engine/remote_cache pushes them with
 * the cache image, so this runs before it). */
int kiln_remote_mounts_save(engine_t *e, kiln_error_t *err);

#endif
