/* kiln — a step's filesystem as layers: lower dirs per diff_id under <root>/build/lowers
 * (unpacked once, marked with the blob they came from), commit of a step's changes as a
 * layer (the upper dir of a RUN, the staging tree of a COPY), a stage's merged rootfs and
 * in-stage path resolution through the overlay rules. */
#include "engine/snapshot.h"

#include "engine/base_store.h"
#include "engine/cache.h"
#include "engine/remote_base.h"
#include "engine/step_meta.h"
#include "oci/imagesize.h"
#include "oci/store_lazy.h"
#include "utils/workers.h"

/* Whether steps run in chroot isolation (no user namespace). */
bool kiln_snapshot_is_chroot(const kiln_build_request_t *req)
{
    return req->isolation != NULL && strcmp(req->isolation, "chroot") == 0;
}

/* The marker saying blob l->desc holds the tree lowers/<diff_id>. */
static char *lower_proof(const engine_t *e, const layer_t *l)
{
    return kiln_xasprintf("%s/%s.blob-%s", e->lowers_dir, l->diff_id.hex, l->desc.digest.hex);
}

/* Records that layer l's blob was seen to hold its diff_id's tree (unpacked
 * with the diff_id checked, or written from that very tree). */
static void lower_prove(const engine_t *e, const layer_t *l)
{
    _cleanup_free_ char *proof = lower_proof(e, l);
    int fd = open(proof, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

/* The unpacked (overlay form) directory of a layer, made on first use. The
 * tree lowers/<diff_id> is shared by every build whose layer has that diff_id,
 * but it stands for a layer blob only once that blob was seen to hold it
 * (lower_prove): an image whose config names someone else's diff_id next to a
 * blob of its own gets its own blob unpacked (and refused for the mismatch),
 * never the other tree. */
/* The lower dir of layer l when it is there already (NULL when it must be unpacked). */
static char *lower_ready(const engine_t *e, const layer_t *l)
{
    _cleanup_free_ char *proof = lower_proof(e, l);
    char *dir = kiln_xasprintf("%s/%s", e->lowers_dir, l->diff_id.hex);
    struct stat st;

    if (stat(dir, &st) == 0 && access(proof, F_OK) == 0)
        return dir;
    free(dir);
    return NULL;
}

/* A tree unpacked already (maybe by another namespace's build) stands for the namespace's
 * layer only once the namespace may use its blob: a base layer of this build is waited for
 * (its pull fetches it again), a lazy blob of the namespace's own is fetched from its source
 * (oci/store_lazy), so a tenant never reads through a shared tree the bytes it could not have
 * fetched itself. 0, or -1 with err naming the blob. */
static int lower_entitled(engine_t *e, const layer_t *l, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    kiln_store_lazy_t lz;
    if (kiln_cache_ns_knows(e, &l->desc.digest))
        return 0;
    if (kiln_remote_base_wait(e, &l->desc.digest, err) < 0)
        return -1;
    if (kiln_cache_ns_knows(e, &l->desc.digest) ||
        kiln_store_lazy_get(e->store, &l->desc.digest, &lz, NULL) != 1)
        return 0;
    return kiln_store_open_blob(e->store, &l->desc.digest, &fd, NULL, err);
}

int kiln_snapshot_lower_dir(engine_t *e, const layer_t *l, char **out, kiln_error_t *err)
{
    char ds[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -1;
    kiln_unpack_opts_t o;
    kiln_unpack_stats_t st;
    kiln_blob_stream_t *bs = NULL;

    if ((*out = lower_ready(e, l)) != NULL) {
        if (lower_entitled(e, l, err) < 0) {
            free(*out);
            *out = NULL;
            return -1;
        }
        return 0;
    }
    kiln_digest_str(&l->diff_id, ds);
    dir = kiln_xasprintf("%s/%s", e->lowers_dir, strchr(ds, ':') + 1);
    /* a FROM image's layer may still be downloading (engine/remote_base): then it is
     * unpacked as its bytes arrive, the stream's last read waiting for the blob's
     * digest-checked commit */
    if (kiln_remote_base_stream(e, &l->desc.digest, &bs, err) < 0)
        return kiln_error_prefix(err, "unpacking layer %s", ds);
    if (kiln_fs_mkdtemp(e->lowers_dir, ".tmp-", &tmp, err) < 0)
        goto fail;
    kiln_unpack_opts_init(&o);
    o.overlay_form = 1;
    o.expect_diff_id = &l->diff_id;
    /* the sizes only: the blob's digest is the download's or the store's to check */
    o.stats_no_digest = 1;
    if (bs != NULL) {
        kiln_blob_reader_t rd = {bs, 0};
        if (kiln_unpack_reader(kiln_blob_stream_read, &rd, tmp, &o, &st, err) < 0 ||
            kiln_blob_stream_wait(bs, err) < 0)
            goto fail;
    } else {
        if (kiln_store_open_blob(e->store, &l->desc.digest, &fd, NULL, err) < 0)
            goto fail;
        if (kiln_layer_unpack(fd, tmp, &o, &st, err) < 0)
            goto fail;
    }
    /* the image's size (oci/imagesize) then never inflates this layer again to measure it */
    kiln_image_size_note(e->store, &l->desc.digest, st.diff_size);
    /* an existing tree of this diff_id is the same tree (the diff_id just checked) */
    if (rename(tmp, dir) < 0 && errno != EEXIST && errno != ENOTEMPTY) {
        kiln_error_set(err, errno, "rename %s", dir);
        goto fail;
    }
    kiln_fs_rm_rf(tmp, NULL);
    kiln_blob_stream_unref(bs);
    lower_prove(e, l);
    *out = steal_pointer(&dir);
    return 0;
fail:
    if (tmp != NULL)
        kiln_fs_rm_rf(tmp, NULL);
    kiln_blob_stream_unref(bs);
    return kiln_error_prefix(err, "unpacking layer %s", ds);
}

/* The build's layer options (compression, level, SOURCE_DATE_EPOCH). */
static void layer_opts(const engine_t *e, kiln_layer_opts_t *o)
{
    kiln_layer_opts_init(o);
    o->compression = e->req->compression;
    o->level = e->req->compression_level;
    o->source_date_epoch = e->have_sde ? (int64_t)e->created : -1;
}

/* Appends the layer of blob w (finished: info) to the stage: *out. */
static int add_layer(engine_t *e, stage_t *st, kiln_store_writer_t *w,
                     const kiln_layer_info_t *info, layer_t *out, kiln_error_t *err)
{
    layer_t l = {0};

    if (kiln_store_writer_commit(w, &l.desc.digest, &l.desc.size, err) < 0)
        return -1;
    kiln_cache_ns_note(e, &l.desc.digest);
    kiln_image_size_note(e->store, &l.desc.digest,
                         info->diff_size); /* never re-inflated to measure */
    snprintf(l.desc.media_type, sizeof(l.desc.media_type), "%s", info->media_type);
    l.diff_id = info->diff_id;
    st->layers = kiln_xrealloc(st->layers, (st->n_layers + 1) * sizeof(layer_t));
    st->layers[st->n_layers++] = l;
    kiln_image_config_add_diff_id(st->config, &l.diff_id);
    *out = l;
    return 0;
}

/* Writes dir as a layer into the store and appends it to the stage. */
int kiln_snapshot_commit_layer(engine_t *e, stage_t *st, const char *dir, int overlay, layer_t *out,
                               kiln_error_t *err)
{
    kiln_layer_opts_t o;
    kiln_store_writer_t *w = NULL;
    kiln_sink_t sink;
    kiln_layer_info_t info;

    layer_opts(e, &o);
    o.overlay_upper = overlay;
    if (kiln_store_writer_new(e->store, NULL, -1, &w, err) < 0)
        return -1;
    sink = kiln_store_writer_sink(w);
    if (kiln_layer_write_dir(dir, &o, &sink, &info, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    if (add_layer(e, st, w, &info, out, err) < 0)
        return -1;
    {
        /* The tree just written is this layer's unpacked (overlay) form: keep
         * it as the lower dir for later steps instead of unpacking the blob. */
        char ds[KILN_DIGEST_STR_MAX];
        _cleanup_free_ char *lower = NULL;
        kiln_digest_str(&out->diff_id, ds);
        lower = kiln_xasprintf("%s/%s", e->lowers_dir, strchr(ds, ':') + 1);
        if (access(lower, F_OK) != 0)
            (void)rename(dir, lower);
        lower_prove(e, out);
    }
    return 0;
}

int kiln_snapshot_layer_begin(engine_t *e, kiln_snapshot_layer_t *sl, kiln_error_t *err)
{
    kiln_layer_opts_t o;

    memset(sl, 0, sizeof(*sl));
    layer_opts(e, &o);
    if (kiln_store_writer_new(e->store, NULL, -1, &sl->blob, err) < 0)
        return -1;
    sl->sink = kiln_store_writer_sink(sl->blob);
    if (kiln_layer_writer_new(&o, &sl->sink, &sl->w, err) < 0) {
        kiln_store_writer_abort(sl->blob);
        sl->blob = NULL;
        return -1;
    }
    return 0;
}

void kiln_snapshot_layer_abort(kiln_snapshot_layer_t *sl)
{
    kiln_layer_writer_free(sl->w);
    sl->w = NULL;
    if (sl->blob != NULL)
        kiln_store_writer_abort(sl->blob);
    sl->blob = NULL;
}

int kiln_snapshot_layer_commit_step(engine_t *e, stage_t *st, kiln_snapshot_layer_t *sl,
                                    const char *created_by, const kiln_digest_t *key,
                                    kiln_error_t *err)
{
    kiln_layer_info_t info;
    layer_t l;
    int r = kiln_layer_writer_finish(sl->w, &info, err);

    kiln_layer_writer_free(sl->w);
    sl->w = NULL;
    if (r < 0) {
        kiln_snapshot_layer_abort(sl);
        return -1;
    }
    r = add_layer(e, st, sl->blob, &info, &l, err);
    sl->blob = NULL; /* committed or aborted by the commit */
    if (r < 0)
        return -1;
    kiln_step_history(e, st, created_by, 0);
    st->key = *key;
    return kiln_cache_store(e, st, key, &l, err);
}

/* Whether the directory holds no entry (1), some (0), or cannot be read (-1 with err). */
static int dir_empty(const char *dir, kiln_error_t *err)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL)
        return kiln_error_set(err, errno, "open %s", dir);
    errno = 0;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return 0;
    return errno ? kiln_error_set(err, errno, "read %s", dir) : 1;
}

/* A step that made a layer: commit `dir` as the layer, add its history entry,
 * advance the stage's cache key and record the cache entry. An overlay upper dir left
 * empty (a RUN that changed no file) makes no layer, as in BuildKit: the history entry
 * says empty_layer, the cache entry names the config alone. */
int kiln_snapshot_commit_step(engine_t *e, stage_t *st, const char *dir, int overlay,
                              const char *created_by, const kiln_digest_t *key, kiln_error_t *err)
{
    layer_t l;
    int empty = overlay ? dir_empty(dir, err) : 0;

    if (empty < 0 || (!empty && kiln_snapshot_commit_layer(e, st, dir, overlay, &l, err) < 0))
        return -1;
    kiln_step_history(e, st, created_by, empty);
    st->key = *key;
    return kiln_cache_store(e, st, key, empty ? NULL : &l, err);
}

typedef struct lowers_job {
    engine_t *e;
    const layer_t *layers;
    size_t from, to;
    char **v;
} lowers_job_t;

static int lower_one(void *ud, void *local, size_t i, kiln_error_t *err)
{
    lowers_job_t *j = ud;
    size_t li = j->from + i;
    (void)local;
    return kiln_snapshot_lower_dir(j->e, &j->layers[li], &j->v[j->to - 1 - li], err);
}

int kiln_snapshot_lower_dirs(engine_t *e, const layer_t *layers, size_t from, size_t to, char **v,
                             kiln_error_t *err)
{
    /* A fresh worker unpacks a whole base image here: one layer per CPU, at least three (as
     * `kiln pull -o type=local`, oci/pull_unpack: each layer's inflate has a thread of its
     * own), so a big layer or one still downloading does not hold the others up. */
    lowers_job_t j = {e, layers, from, to, v};
    long cpus;
    unsigned threads;
    size_t ready = 0;
    if (to <= from)
        return 0;
    /* the bottom of the stack may be in an additional store (engine/base_store): the rest
     * only is unpacked; v holds the layers top-most first */
    if (from == 0) {
        j.from = kiln_base_store_lowers(e, layers, to, v);
        if (j.from == to)
            return 0;
    }
    /* every later step of a stage finds them all there: no threads started for that (a
     * layer the namespace has yet to fetch goes through kiln_snapshot_lower_dir) */
    for (size_t li = j.from; li < to; li++)
        if (kiln_cache_ns_knows(e, &layers[li].desc.digest) &&
            (v[to - 1 - li] = lower_ready(e, &layers[li])) != NULL)
            ready++;
    if (ready == to - j.from)
        return 0;
    for (size_t li = j.from; li < to; li++) {
        free(v[to - 1 - li]);
        v[to - 1 - li] = NULL;
    }
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cpus < 3 ? 3 : cpus > 8 ? 8 : (unsigned)cpus;
    if (kiln_workers_run(to - j.from, threads, lower_one, NULL, NULL, &j, err) < 0) {
        for (size_t k = 0; k < to - from; k++) {
            free(v[k]);
            v[k] = NULL;
        }
        return -1;
    }
    return 0;
}

/* The stage's unpacked layer dirs (made when missing), top-most first:
 * *out has st->n_layers entries (+ a NULL), freed with free_lowers. */
static int stage_lowers(engine_t *e, stage_t *st, char ***out, kiln_error_t *err)
{
    char **lowers = kiln_xzalloc((st->n_layers + 1) * sizeof(char *));
    if (kiln_snapshot_lower_dirs(e, st->layers, 0, st->n_layers, lowers, err) < 0) {
        free(lowers);
        return -1;
    }
    *out = lowers;
    return 0;
}

/* Merges path of the stage's layers (their unpacked dirs, made when missing)
 * into dir with kiln_lowerview_extract: 1 done, 0 needs the full rootfs, -1. */
int kiln_snapshot_extract(engine_t *e, stage_t *st, const char *path, const char *dir,
                          kiln_error_t *err)
{
    char **lowers = NULL;
    int r;

    if (stage_lowers(e, st, &lowers, err) < 0)
        return -1;
    r = kiln_lowerview_extract((const char *const *)lowers, st->n_layers, path, dir, err);
    kiln_strv_free(lowers);
    return r;
}

/* path as the stage's merged tree sees it (kiln_lowerview_resolve: links
 * followed inside the tree; flags KILN_PATHRES_*): *out the canonical path,
 * *dir (when not NULL) the unpacked layer dir holding it or NULL when it
 * does not exist. A stage without layers: path as written. -1 with err. */
int kiln_snapshot_resolve(engine_t *e, stage_t *st, const char *path, unsigned flags, char **out,
                          char **dir, kiln_error_t *err)
{
    char **lowers = NULL;
    int layer = -1, r;

    if (dir)
        *dir = NULL;
    if (st->n_layers == 0) {
        if (!(flags & KILN_PATHRES_MISSING_OK))
            return kiln_error_set(err, ENOENT, "resolving %s", path);
        *out = kiln_xstrdup(path);
        return 0;
    }
    if (stage_lowers(e, st, &lowers, err) < 0)
        return -1;
    r = kiln_lowerview_resolve((const char *const *)lowers, st->n_layers, path, flags, out, &layer,
                               err);
    if (r == 0 && dir && layer >= 0)
        *dir = kiln_xstrdup(lowers[layer]);
    kiln_strv_free(lowers);
    return r;
}

/* A merged rootfs of the stage (all layers, files hardlinked from their
 * unpacked dirs: read-only), for COPY --from sources that need it whole. */
static int stage_rootfs_locked(engine_t *e, stage_t *st, char **out, kiln_error_t *err)
{
    if (st->rootfs == NULL) {
        _cleanup_free_ char *dir = NULL;
        if (kiln_fs_mkdtemp(e->work, "rootfs-", &dir, err) < 0)
            return -1;
        if (kiln_snapshot_extract(e, st, ".", dir, err) < 0) {
            kiln_fs_rm_rf(dir, NULL);
            return -1;
        }
        st->rootfs = steal_pointer(&dir);
    }
    *out = st->rootfs;
    return 0;
}

/* Serialized: two stages may COPY --from the same stage at once. */
int kiln_snapshot_rootfs(engine_t *e, stage_t *st, char **out, kiln_error_t *err)
{
    int r;
    pthread_mutex_lock(&e->lock);
    r = stage_rootfs_locked(e, st, out, err);
    pthread_mutex_unlock(&e->lock);
    return r;
}
