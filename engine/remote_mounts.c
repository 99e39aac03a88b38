/* kiln — RUN --mount=type=cache directories kept in S3 across ephemeral workers.
 *
 * Restore (lazy): the first step that runs with a cache id mounted finds its directory
 * empty (a fresh kiln root) and fills it from the first --cache-from holding the id's
 * manifest (engine/cachemanifest): directories, files from their packs (fetched in
 * parallel, each blob's digest checked), links, modes and times, all created under the
 * directory only. A step that is a cache hit mounts nothing and restores nothing.
 *
 * Save (after a successful build): every cache id the build mounted is listed (hashes of
 * every file), bounded to max-size (least recently used files left out), and compared
 * with the manifest in --cache-to: files whose content it already holds keep their ranges,
 * the others are packed into new 16 MiB blobs (engine/remote_mounts_pack) and uploaded, then the
 * manifest is written (one PutObject) unless it is byte for byte the one there: an unchanged cache
 * costs one GET and a HEAD per reused blob (one per 16 MiB), no upload. */
#include "engine/remote_mounts.h"

#include "engine/cache.h"
#include "engine/cachemanifest.h"
#include "engine/regcache.h"
#include "engine/remote_cache.h"
#include "engine/remote_mounts_pack.h"
#include "utils/workers.h"

#define FETCH_THREADS 8
#define UPLOAD_THREADS 8

static void *http_new(void)
{
    return kiln_http_new();
}

static void http_free(void *h)
{
    kiln_http_free(h);
}

/* The manifest object of cache id: mounts/<sha256 of id>.json (no tenant text in keys). */
static char *manifest_rel(const char *id)
{
    kiln_digest_t d;
    kiln_digest_bytes(id, strlen(id), &d);
    return kiln_xasprintf("mounts/%s.json", d.hex);
}

static int open_spec(engine_t *e, const char *spec, kiln_rstore_t **rs, uint64_t *max,
                     int *mode_max, kiln_error_t *err)
{
    kiln_rcache_spec_t s = {0};
    int r;
    if (kiln_rcache_spec_parse(spec, e->req->server_mode, &s, err) < 0)
        return -1;
    if (strcmp(s.type, "s3") != 0) {
        kiln_rcache_spec_clear(&s);
        return kiln_error_set(err, EINVAL, "cache %s: not type=s3", spec);
    }
    *max = s.max_size ? s.max_size : KILN_CM_DEFAULT_MAX_SIZE;
    if (mode_max)
        *mode_max = s.mode_max;
    r = kiln_rstore_open(&s, e->req->cache_namespace, rs, err);
    kiln_rcache_spec_clear(&s);
    return r;
}

int kiln_remote_mounts_init(engine_t *e, kiln_error_t *err)
{
    const kiln_build_request_t *req = e->req;
    kiln_rcache_t *rc;
    if (req->n_remote_cache_from == 0 && req->remote_cache_to == NULL && req->n_cache_from == 0 &&
        req->cache_to == NULL)
        return 0;
    rc = e->rcache = kiln_xzalloc(sizeof(*rc));
    pthread_mutex_init(&rc->lock, NULL);
    rc->reg_old = json_object();
    rc->reg_new = json_object();
    rc->reg_saved = json_object();
    if (!req->no_cache) {
        rc->from = kiln_xzalloc((req->n_remote_cache_from + 1) * sizeof(*rc->from));
        rc->from_max = kiln_xzalloc((req->n_remote_cache_from + 1) * sizeof(*rc->from_max));
        for (size_t i = 0; i < req->n_remote_cache_from; i++, rc->n_from++)
            if (open_spec(e, req->remote_cache_from[i], &rc->from[i], &rc->from_max[i], NULL, err) <
                0)
                return -1;
    }
    if (req->remote_cache_to &&
        open_spec(e, req->remote_cache_to, &rc->to, &rc->to_max, &rc->to_mode_max, err) < 0)
        return -1;
    return 0;
}

void kiln_remote_mounts_free(engine_t *e)
{
    kiln_rcache_t *rc = e->rcache;
    if (rc == NULL)
        return;
    for (size_t i = 0; i < rc->n_from; i++)
        kiln_rstore_free(rc->from[i]);
    free(rc->from);
    free(rc->from_max);
    kiln_rstore_free(rc->to);
    for (size_t i = 0; i < rc->n_mounts; i++) {
        free(rc->mounts[i].id);
        free(rc->mounts[i].dir);
        if (rc->mounts[i].known)
            kiln_cm_clear(rc->mounts[i].known);
        free(rc->mounts[i].known);
    }
    free(rc->mounts);
    strv_clear(&rc->looked);
    json_decref(rc->reg_old);
    json_decref(rc->reg_new);
    json_decref(rc->reg_saved);
    pthread_mutex_destroy(&rc->lock);
    free(rc);
    e->rcache = NULL;
}

void kiln_remote_mounts_note(engine_t *e, const char *id, const char *dir)
{
    kiln_rcache_t *rc = e->rcache;
    if (rc == NULL)
        return;
    pthread_mutex_lock(&rc->lock);
    for (size_t i = 0; i < rc->n_mounts; i++)
        if (strcmp(rc->mounts[i].dir, dir) == 0) {
            pthread_mutex_unlock(&rc->lock);
            return;
        }
    rc->mounts = kiln_xrealloc(rc->mounts, (rc->n_mounts + 1) * sizeof(*rc->mounts));
    memset(&rc->mounts[rc->n_mounts], 0, sizeof(*rc->mounts));
    rc->mounts[rc->n_mounts].id = kiln_xstrdup(id);
    rc->mounts[rc->n_mounts++].dir = kiln_xstrdup(dir);
    pthread_mutex_unlock(&rc->lock);
}

/* The noted mount whose directory dir is (or is a private instance "<dir>.pN" of). */
static rc_mount_t *find_mount(kiln_rcache_t *rc, const char *dir)
{
    for (size_t i = 0; i < rc->n_mounts; i++) {
        size_t n = strlen(rc->mounts[i].dir);
        if (strncmp(dir, rc->mounts[i].dir, n) == 0 &&
            (dir[n] == '\0' || strncmp(dir + n, ".p", 2) == 0))
            return &rc->mounts[i];
    }
    return NULL;
}

/* A listing of directory fd (fd stays open), or NULL. */
static DIR *list_dir(int fd)
{
    /* opened again, not dup'ed: a listing of its own, from the start */
    int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (d == NULL && dup >= 0)
        close(dup);
    return d;
}

/* The next name of d other than "." and "..", or NULL. */
static const char *next_name(DIR *d)
{
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return de->d_name;
    return NULL;
}

/* 1 when directory fd holds nothing, 0 when it holds something, -1 on an error. */
static int dir_empty(int fd)
{
    _cleanup_closedir_ DIR *d = list_dir(fd);
    return d == NULL ? -1 : next_name(d) == NULL;
}

/* Removes everything inside directory fd (a restore that failed half way). */
static void empty_dir(int fd)
{
    _cleanup_closedir_ DIR *d = list_dir(fd);
    const char *name;
    while (d && (name = next_name(d)) != NULL)
        kiln_fs_rm_rf_at(fd, name, NULL);
}

static int fetch_blob(void *ud, void *http, const kiln_cm_blob_t *b, char **buf, kiln_error_t *err)
{
    return kiln_rstore_get_blob(ud, http, &b->digest, b->size, buf, err);
}

/* A pack of a registry cache image: in the store when this namespace pulled or made it
 * (checked then), else fetched now from the registry cache (the import pulls no pack). */
static int fetch_stored(void *ud, void *http, const kiln_cm_blob_t *b, char **buf,
                        kiln_error_t *err)
{
    engine_t *e = ud;
    size_t len = 0;
    char ds[KILN_DIGEST_STR_MAX];
    (void)http;
    if (!kiln_cache_ns_knows(e, &b->digest) || kiln_store_has(e->store, &b->digest, NULL) != 1)
        return kiln_remote_cache_fetch_pack(e, &b->digest, b->size, buf, err);
    if (kiln_store_read_blob(e->store, &b->digest, KILN_CM_PACK_MAX, buf, &len, err) < 0)
        return -1;
    if (len != b->size) {
        free(*buf);
        *buf = NULL;
        return kiln_error_set(err, 0, "blob %s: %zu bytes, not %llu",
                              kiln_digest_str(&b->digest, ds), len, (unsigned long long)b->size);
    }
    return 0;
}

bool kiln_remote_mounts_pack_size(engine_t *e, const kiln_digest_t *d, uint64_t *size)
{
    char ds[KILN_DIGEST_STR_MAX];
    json_t *m;
    const char *key;
    bool found = false;
    if (e->rcache == NULL)
        return false;
    kiln_digest_str(d, ds);
    pthread_mutex_lock(&e->rcache->lock);
    json_object_foreach(e->rcache->reg_new, key, m)
    {
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(m, "blobs"), i, b)
        {
            const char *s = json_string_value(json_array_get(b, 0));
            json_int_t n = json_integer_value(json_array_get(b, 1));
            if (!found && s && strcmp(s, ds) == 0 && n > 0) {
                *size = (uint64_t)n;
                found = true;
            }
        }
    }
    pthread_mutex_unlock(&e->rcache->lock);
    return found;
}

void kiln_remote_mounts_imported(engine_t *e, json_t *cfg)
{
    json_t *map = json_object_get(cfg, "kiln.mounts.v1"), *v;
    const char *key;
    if (e->rcache == NULL || !json_is_object(map))
        return;
    pthread_mutex_lock(&e->rcache->lock);
    json_object_foreach(map, key, v)
    {
        json_t *t = json_object_get(json_object_get(cfg, KILN_REGCACHE_SAVED_KEY), key);
        if (json_object_get(e->rcache->reg_old, key) != NULL)
            continue;
        json_object_set(e->rcache->reg_old, key, v);
        if (json_is_integer(t) && json_integer_value(t) >= 0)
            json_object_set(e->rcache->reg_saved, key, t);
    }
    pthread_mutex_unlock(&e->rcache->lock);
}

/* Restores the manifest body (what names it, from names its source) into the empty
 * directory fd, fetching blobs with fetch; the restored entries (with their identities on
 * disk) go to *keep for the save's scan. 1, or -1 with err (the directory emptied again). */
static int restore_body(engine_t *e, const char *body, size_t len, uint64_t max, const char *id,
                        const char *from, int fd, kiln_cm_fetch_fn fetch, bool remote, void *ud,
                        kiln_cm_t **keep, kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("cache mount %s from %s", id, from);
    _cleanup_close_ int rootfd = -1;
    kiln_cm_t *m = kiln_xzalloc(sizeof(*m));
    double t0 = kiln_engine_now();
    if (kiln_cm_decode(body, len, max, what, m, err) < 0) {
        free(m);
        return -1;
    }
    rootfd = openat(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0 || kiln_cm_restore(rootfd, m, FETCH_THREADS, fetch, remote ? http_new : NULL,
                                      remote ? http_free : NULL, ud, err) < 0) {
        if (rootfd < 0)
            kiln_error_set(err, errno, "open the cache directory");
        kiln_error_prefix(err, "%s", what);
        kiln_cm_clear(m);
        free(m);
        empty_dir(fd);
        return -1;
    }
    kiln_engine_log(e, "cache mount %s: restored %zu entries (%.1f MB) from %s in %.2fs", id, m->n,
                    (double)kiln_cm_total(m) / 1e6, from, kiln_engine_now() - t0);
    if (*keep) {
        kiln_cm_clear(*keep);
        free(*keep);
    }
    *keep = m;
    return 1;
}

/* Restores id from the registry cache's manifest (its packs in the store): 1, 0 none, -1. */
static int restore_stored(engine_t *e, rc_mount_t *mt, int fd, kiln_error_t *err)
{
    _cleanup_free_ char *rel = manifest_rel(mt->id);
    _cleanup_free_ char *body = NULL;
    json_t *m = json_object_get(e->rcache->reg_old, rel);
    if (m == NULL)
        return 0;
    body = json_dumps(m, JSON_COMPACT);
    return restore_body(e, body, strlen(body), KILN_CM_DEFAULT_MAX_SIZE, mt->id,
                        "the registry cache", fd, fetch_stored, false, e, &mt->known, err);
}

/* Restores the manifest of id from rs into the empty directory fd: 1 done, 0 none there,
 * -1 with err (the directory is emptied again). */
static int restore_from(engine_t *e, kiln_rstore_t *rs, uint64_t max, rc_mount_t *mt, int fd,
                        kiln_error_t *err)
{
    _cleanup_free_ char *rel = manifest_rel(mt->id);
    _cleanup_free_ char *body = NULL;
    kiln_http_t *http = kiln_http_new();
    size_t len = 0;
    int r = kiln_rstore_get(rs, http, rel, KILN_CM_MANIFEST_MAX, &body, &len, err);
    kiln_http_free(http);
    if (r <= 0)
        return r;
    return restore_body(e, body, len, max, mt->id, kiln_rstore_name(rs), fd, fetch_blob, true, rs,
                        &mt->known, err);
}

void kiln_remote_mounts_restore(engine_t *e, const char *dir)
{
    kiln_rcache_t *rc = e->rcache;
    rc_mount_t *mt;
    _cleanup_close_ int fd = -1;
    _cleanup_close_ int lock = -1;
    _cleanup_free_ char *lockpath = NULL;
    if (rc == NULL)
        return;
    pthread_mutex_lock(&rc->lock);
    mt = find_mount(rc, dir);
    if (mt)
        mt->ran = 1; /* a step ran with it mounted: it is saved */
    if (rc->n_from == 0 && json_object_size(rc->reg_old) == 0)
        mt = NULL;
    for (size_t i = 0; mt && i < rc->looked.n; i++)
        if (strcmp(rc->looked.v[i], dir) == 0)
            mt = NULL;
    if (mt == NULL) {
        pthread_mutex_unlock(&rc->lock);
        return;
    }
    strv_add(&rc->looked, kiln_xstrdup(dir));
    /* another kiln process of this root may restore the same directory: one at a time (a
     * lock file beside it: the directory's own flock is sharing=locked's) */
    lockpath = kiln_xasprintf("%s.restore-lock", dir);
    lock = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lock >= 0)
        (void)flock(lock, LOCK_EX);
    if (fd >= 0 && dir_empty(fd) == 1) {
        int r = 0;
        for (size_t i = 0; i <= rc->n_from && r <= 0; i++) {
            kiln_error_t err = {0};
            r = i < rc->n_from ? restore_from(e, rc->from[i], rc->from_max[i], mt, fd, &err)
                               : restore_stored(e, mt, fd, &err);
            if (r < 0)
                kiln_engine_log(e, "WARNING: %s (the step runs with the cache empty)", err.msg);
        }
    }
    pthread_mutex_unlock(&rc->lock);
}

/* ---- save */

/* Where a save goes: S3 (an rstore) or the registry cache image (the store, then pushed
 * with the image by engine/remote_cache). */
typedef struct mount_dest {
    const char *name; /* for messages */
    uint64_t max;     /* max-size */
    int always_put;   /* put_manifest also when unchanged (the registry image is made anew) */
    /* the manifest saved last time: 1 with *body (malloc'ed), 0 none, -1 with err */
    int (*get_old)(engine_t *e, void *ud, kiln_http_t *http, const char *id, char **body,
                   size_t *len, kiln_error_t *err);
    int (*has_blob)(engine_t *e, void *ud, void *http, const kiln_digest_t *d, kiln_error_t *err);
    int (*put_blob)(engine_t *e, void *ud, void *http, const kiln_digest_t *d, int fd,
                    uint64_t size, kiln_error_t *err);
    int (*put_manifest)(engine_t *e, void *ud, kiln_http_t *http, const char *id, const char *body,
                        size_t len, kiln_error_t *err);
    void *ud;
} mount_dest_t;

typedef struct saver {
    engine_t *e;
    const mount_dest_t *dest;
    kiln_mount_packer_t pk;
} saver_t;

static int upload_pack(void *ud, void *http, size_t i, kiln_error_t *err)
{
    saver_t *s = ud;
    kiln_mount_pack_t *p = &s->pk.packs[i];
    _cleanup_close_ int fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s", p->path);
    return s->dest->put_blob(s->e, s->dest->ud, http, &s->pk.now->blobs[p->blob].digest, fd,
                             p->size, err);
}

typedef struct checker {
    engine_t *e;
    const mount_dest_t *dest;
    const kiln_cm_t *m;
    char *gone; /* per blob: 1 when it is not in the bucket */
} checker_t;

static int check_blob(void *ud, void *http, size_t i, kiln_error_t *err)
{
    checker_t *c = ud;
    int r = c->dest->has_blob(c->e, c->dest->ud, http, &c->m->blobs[i].digest, err);
    if (r < 0)
        return -1;
    c->gone[i] = r == 0;
    return 0;
}

/* The blobs now reuses from the previous manifest are checked (HEAD, in parallel): a blob
 * gone from the bucket (a lifecycle rule, a hand) makes its files missing again, so they are
 * uploaded anew instead of the new manifest naming what is not there. */
static int recheck_reused(engine_t *e, const mount_dest_t *dest, kiln_cm_t *now, size_t **missing,
                          size_t *n_missing, kiln_error_t *err)
{
    checker_t c = {.e = e, .dest = dest, .m = now, .gone = kiln_xzalloc(now->nb + 1)};
    int ret = -1;
    if (kiln_workers_run(now->nb, UPLOAD_THREADS, check_blob, http_new, http_free, &c, err) < 0)
        goto out;
    for (size_t i = 0; i < now->n; i++) {
        kiln_cm_entry_t *x = &now->e[i];
        bool lost = false;
        for (size_t k = 0; k < x->n_segs && !lost; k++)
            lost = c.gone[x->segs[k].blob];
        if (!lost)
            continue;
        free(x->segs);
        x->segs = NULL;
        x->n_segs = 0;
        (*missing)[(*n_missing)++] = i; /* room for every entry: kiln_cm_diff */
    }
    ret = 0;
out:
    free(c.gone);
    return ret;
}

/* Saves cache id (directory dir) to --cache-to. */
static int save_one(engine_t *e, const rc_mount_t *mt, const mount_dest_t *dest, kiln_error_t *err)
{
    _cleanup_free_ char *old_body = NULL;
    _cleanup_free_ char *new_body = NULL;
    _cleanup_free_ size_t *missing = NULL;
    _cleanup_close_ int dirfd = open(mt->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    kiln_http_t *http = kiln_http_new();
    kiln_cm_t old = {0}, now = {0};
    saver_t s = {.e = e, .dest = dest, .pk = {.now = &now, .rootfd = -1, .work = e->work}};
    size_t old_len = 0, new_len, n_missing = 0, dropped;
    double t0 = kiln_engine_now();
    int ret = -1, r;

    if (dirfd < 0) {
        kiln_error_set(err, errno, "open %s", mt->dir);
        goto out;
    }
    s.pk.rootfd = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    /* files restored by this build and not changed since keep their hashes unread */
    if (s.pk.rootfd < 0 || kiln_cm_scan(dirfd, mt->known, &now, err) < 0)
        goto out;
    dropped = kiln_cm_evict(&now, dest->max);
    if (dropped)
        kiln_engine_log(e,
                        "cache mount %s: %zu least recently used files left out (max-size "
                        "%llu bytes)",
                        mt->id, dropped, (unsigned long long)dest->max);
    r = dest->get_old(e, dest->ud, http, mt->id, &old_body, &old_len, err);
    if (r < 0)
        goto out;
    if (r > 0 &&
        kiln_cm_decode(old_body, old_len, UINT64_MAX, "the saved manifest", &old, NULL) < 0)
        memset(&old, 0, sizeof(old)); /* unreadable: replaced whole */
    kiln_cm_diff(&old, &now, &missing, &n_missing);
    if (recheck_reused(e, dest, &now, &missing, &n_missing, err) < 0 ||
        kiln_mount_packs_write(&s.pk, missing, n_missing, err) < 0)
        goto out;
    kiln_mount_packs_compact(&now);
    if (kiln_workers_run(s.pk.n_packs, UPLOAD_THREADS, upload_pack, http_new, http_free, &s, err) <
        0)
        goto out;
    new_body = kiln_cm_encode(&now, &new_len);
    if (r > 0 && new_len == old_len && memcmp(new_body, old_body, new_len) == 0) {
        kiln_engine_log(e, "cache mount %s: unchanged in %s (%zu entries)", mt->id, dest->name,
                        now.n);
        if (dest->always_put &&
            dest->put_manifest(e, dest->ud, http, mt->id, new_body, new_len, err) < 0)
            goto out;
    } else {
        /* written last: every blob it names is there already */
        if (dest->put_manifest(e, dest->ud, http, mt->id, new_body, new_len, err) < 0)
            goto out;
        kiln_engine_log(e,
                        "cache mount %s: saved %zu entries (%.1f MB) to %s, %zu new blobs "
                        "(%.1f MB) in %.2fs",
                        mt->id, now.n, (double)kiln_cm_total(&now) / 1e6, dest->name, s.pk.n_packs,
                        (double)kiln_mount_packs_bytes(&s.pk) / 1e6, kiln_engine_now() - t0);
    }
    ret = 0;
out:
    kiln_mount_packs_clear(&s.pk);
    if (s.pk.rootfd >= 0)
        close(s.pk.rootfd);
    kiln_http_free(http);
    kiln_cm_clear(&old);
    kiln_cm_clear(&now);
    if (ret < 0)
        kiln_error_prefix(err, "saving cache mount %s to %s", mt->id, dest->name);
    return ret;
}

/* ---- the S3 destination */

static int s3_get_old(engine_t *e, void *ud, kiln_http_t *http, const char *id, char **body,
                      size_t *len, kiln_error_t *err)
{
    _cleanup_free_ char *rel = manifest_rel(id);
    (void)e;
    return kiln_rstore_get(ud, http, rel, KILN_CM_MANIFEST_MAX, body, len, err);
}

static int s3_has_blob(engine_t *e, void *ud, void *http, const kiln_digest_t *d, kiln_error_t *err)
{
    (void)e;
    return kiln_rstore_has_blob(ud, http, d, err);
}

static int s3_put_blob(engine_t *e, void *ud, void *http, const kiln_digest_t *d, int fd,
                       uint64_t size, kiln_error_t *err)
{
    (void)e;
    return kiln_rstore_put_blob(ud, http, d, NULL, fd, size, err);
}

static int s3_put_manifest(engine_t *e, void *ud, kiln_http_t *http, const char *id,
                           const char *body, size_t len, kiln_error_t *err)
{
    _cleanup_free_ char *rel = manifest_rel(id);
    (void)e;
    return kiln_rstore_put(ud, http, rel, body, len, err);
}

/* ---- the registry destination: packs into the store, manifests into rc->reg_new */

static int reg_get_old(engine_t *e, void *ud, kiln_http_t *http, const char *id, char **body,
                       size_t *len, kiln_error_t *err)
{
    _cleanup_free_ char *rel = manifest_rel(id);
    json_t *m = json_object_get(e->rcache->reg_old, rel);
    (void)ud;
    (void)http;
    (void)err;
    if (m == NULL)
        return 0;
    *body = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    *len = strlen(*body);
    return 1;
}

static int reg_has_blob(engine_t *e, void *ud, void *http, const kiln_digest_t *d,
                        kiln_error_t *err)
{
    (void)ud;
    (void)http;
    (void)err;
    return kiln_store_has(e->store, d, NULL) && kiln_cache_ns_knows(e, d);
}

static int reg_put_blob(engine_t *e, void *ud, void *http, const kiln_digest_t *d, int fd,
                        uint64_t size, kiln_error_t *err)
{
    (void)ud;
    (void)http;
    if (kiln_store_put_fd(e->store, fd, d, (int64_t)size, NULL, NULL, err) < 0)
        return -1;
    kiln_cache_ns_note(e, d);
    return 0;
}

static int reg_put_manifest(engine_t *e, void *ud, kiln_http_t *http, const char *id,
                            const char *body, size_t len, kiln_error_t *err)
{
    _cleanup_free_ char *rel = manifest_rel(id);
    json_t *m = json_loadb(body, len, 0, NULL);
    (void)ud;
    (void)http;
    if (m == NULL)
        return kiln_error_set(err, 0, "cache mount %s: manifest not JSON", id);
    pthread_mutex_lock(&e->rcache->lock);
    json_object_set_new(e->rcache->reg_new, rel, m);
    json_object_set_new(e->rcache->reg_saved, rel, json_integer((json_int_t)time(NULL)));
    pthread_mutex_unlock(&e->rcache->lock);
    return 0;
}

/* The registry cache image's bound (engine/regcache.h): whole ids, least recently saved first,
 * until their packs fit max-size. */
static void bound_registry(engine_t *e)
{
    uint64_t max =
        e->req->cache_to_max_size ? e->req->cache_to_max_size : KILN_REGCACHE_DEFAULT_MAX;
    uint64_t left = 0;
    size_t n = kiln_regcache_evict(e->rcache->reg_new, e->rcache->reg_saved, max, &left);
    if (n)
        kiln_engine_log(e,
                        "registry cache %s: %zu least recently saved cache mounts left out "
                        "(max-size %llu bytes; %.1f MB kept)",
                        e->req->cache_to, n, (unsigned long long)max, (double)left / 1e6);
}

int kiln_remote_mounts_save(engine_t *e, kiln_error_t *err)
{
    kiln_rcache_t *rc = e->rcache;
    if (rc == NULL || (rc->to == NULL && e->req->cache_to == NULL))
        return 0;
    mount_dest_t s3 = {.max = rc->to_max,
                       .get_old = s3_get_old,
                       .has_blob = s3_has_blob,
                       .put_blob = s3_put_blob,
                       .put_manifest = s3_put_manifest,
                       .ud = rc->to};
    uint64_t reg_max = e->req->cache_to_max_size;
    mount_dest_t reg = {
        .name = e->req->cache_to,
        .max = reg_max && reg_max < KILN_CM_DEFAULT_MAX_SIZE ? reg_max : KILN_CM_DEFAULT_MAX_SIZE,
        .always_put = 1,
        .get_old = reg_get_old,
        .has_blob = reg_has_blob,
        .put_blob = reg_put_blob,
        .put_manifest = reg_put_manifest};
    for (size_t i = 0; i < rc->n_mounts; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = strcmp(rc->mounts[k].id, rc->mounts[i].id) == 0 && rc->mounts[k].ran;
        /* a cache id only cached steps mounted was not used: its local directory (empty on
         * a fresh root) must not replace the saved one */
        if (dup || !rc->mounts[i].ran)
            continue;
        if (rc->to) {
            s3.name = kiln_rstore_name(rc->to);
            if (save_one(e, &rc->mounts[i], &s3, err) < 0)
                return -1;
        }
        if (e->req->cache_to && save_one(e, &rc->mounts[i], &reg, err) < 0)
            return -1;
    }
    if (e->req->cache_to) {
        /* the registry image is made anew: cache ids this build did not use keep the
         * manifests (and packs, pulled with the image) it imported */
        json_t *v;
        const char *key;
        json_object_foreach(rc->reg_old, key, v)
        {
            if (json_object_get(rc->reg_new, key) == NULL)
                json_object_set(rc->reg_new, key, v);
        }
        bound_registry(e);
    }
    return 0;
}
