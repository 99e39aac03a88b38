/* kiln — pull + unpack while downloading (see pull_unpack.h). */
#include "oci/pull_unpack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "oci/image.h"
#include "oci/imagesize.h"
#include "oci/unpack.h"
#include "oci/unpack_merge.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define TMP_PREFIX ".kiln-unpack-"

/* Layers unpacked at once (each with its inflate thread): the first into the tree itself,
 * each later one into a directory of its own, merged onto the tree in order. */
#define PARALLEL 3

enum { L_WAITING, L_RUNNING, L_DONE, L_FAILED };

/* The download hooks, the unpack workers and the merge thread: layer i is unpacked once its
 * stream exists (its download started) or its blob is in the store; layers are merged in
 * order. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kiln_registry_t *r;
    const char *ref;
    kiln_store_t *s;
    int keep; /* the layers' blobs go into the store (else streamed only) */
    kiln_digest_t config;
    kiln_digest_t *diff_ids; /* the config's, once read (have_config) */
    int have_config;
    const char *work;   /* the locked temp directory */
    const char *rootfs; /* work/root: the tree */
    kiln_digest_t *layers;
    uint64_t *sizes;
    kiln_blob_stream_t **streams;
    int *ready;
    int *state;
    kiln_unpack_record_t *recs;
    kiln_error_t *errs;
    size_t n;
    size_t next; /* the next layer a worker takes */
    int have_manifest;
    int aborted;
    int failed;
    kiln_error_t err;
} unpack_pipe_t;

static void pipe_on_manifest(void *ud, const kiln_manifest_t *m)
{
    unpack_pipe_t *p = ud;
    pthread_mutex_lock(&p->lock);
    p->layers = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->layers));
    p->sizes = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->sizes));
    p->streams = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->streams));
    p->ready = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->ready));
    p->state = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->state));
    p->recs = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->recs));
    p->errs = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->errs));
    for (size_t i = 0; i < m->n_layers; i++)
        p->layers[i] = m->layers[i].digest, p->sizes[i] = m->layers[i].size;
    p->n = m->n_layers;
    p->config = m->config.digest;
    p->have_manifest = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Fails the pipe with e (locked; the first error is kept): no layer is read any more, so
 * every stream is let go (a streamed-only download waits for its reader otherwise). */
static void pipe_fail(unpack_pipe_t *p, const kiln_error_t *e)
{
    if (!p->failed && e != NULL)
        p->err = *e;
    p->failed = 1;
    for (size_t i = 0; i < p->n; i++)
        kiln_blob_stream_abandon(p->streams[i]);
    pthread_cond_broadcast(&p->cond);
}

/* The diff_ids of config blob d (n of them, one per layer) from the store: *out. */
static int read_diff_ids(kiln_store_t *s, const kiln_digest_t *d, size_t n, kiln_digest_t **out,
                         kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    json_t *cfg = NULL, *ids;
    char ds[KILN_DIGEST_STR_MAX];
    int rc = -1;

    if (kiln_store_read_blob(s, d, KILN_IMAGE_CONFIG_MAX, &body, &len, err) < 0 ||
        kiln_image_parse_config(body, len, &cfg, err) < 0)
        return kiln_error_prefix(err, "config %s", kiln_digest_str(d, ds));
    ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    if (json_array_size(ids) != n) {
        kiln_error_set(err, EINVAL, "config %s lists %zu diff_ids for the manifest's %zu layers",
                       kiln_digest_str(d, ds), json_array_size(ids), n);
        goto out;
    }
    *out = kiln_xzalloc((n + 1) * sizeof(**out));
    for (size_t i = 0; i < n; i++)
        if (kiln_digest_parse(json_string_value(json_array_get(ids, i)), &(*out)[i], err) < 0) {
            free(*out);
            *out = NULL;
            goto out;
        }
    rc = 0;
out:
    json_decref(cfg);
    return rc;
}

static void pipe_on_blob(void *ud, const kiln_digest_t *d)
{
    unpack_pipe_t *p = ud;
    kiln_digest_t *ids = NULL;
    kiln_error_t e = {0};
    int is_config;

    pthread_mutex_lock(&p->lock);
    is_config = !p->have_config && kiln_digest_equal(&p->config, d);
    pthread_mutex_unlock(&p->lock);
    /* the layers are checked against it: no layer is unpacked before (its blob is tiny and
     * fetched first) */
    int rc = is_config ? read_diff_ids(p->s, d, p->n, &ids, &e) : 0;
    pthread_mutex_lock(&p->lock);
    if (is_config) {
        p->diff_ids = ids;
        p->have_config = 1;
        if (rc < 0)
            pipe_fail(p, &e);
    }
    for (size_t i = 0; i < p->n; i++)
        if (kiln_digest_equal(&p->layers[i], d))
            p->ready[i] = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void pipe_on_stream(void *ud, kiln_blob_stream_t *bs)
{
    unpack_pipe_t *p = ud;
    pthread_mutex_lock(&p->lock);
    kiln_blob_stream_adopt(p->streams, p->layers, p->n, bs);
    if (p->failed)
        kiln_blob_stream_abandon(bs);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* stream_only: without keep, a layer's blob is only streamed. */
static int pipe_stream_only(void *ud, const kiln_descriptor_t *d)
{
    const unpack_pipe_t *p = ud;
    return !p->keep;
}

/* Applies layer d onto dir (uo: the mode, its diff_id to check): from its download while it
 * streams (verified by the download's commit: the stream's last read waits for it; a failed
 * unpack lets the download run to its end), or from the store (its digest checked). A blob
 * in the store gets its uncompressed size noted (naming the image then reads no layer). */
static int apply_layer(unpack_pipe_t *p, const kiln_digest_t *d, kiln_blob_stream_t *bs,
                       const char *dir, kiln_unpack_opts_t *uo, kiln_error_t *err)
{
    kiln_unpack_stats_t st;
    uo->stats_no_digest = 1;
    if (bs != NULL) {
        kiln_blob_reader_t rd = {bs, 0};
        /* a blob streamed in memory is inflated where it is in the stream's ring */
        int r = kiln_blob_stream_in_memory(bs)
                    ? kiln_unpack_blocks(kiln_blob_stream_block, &rd, dir, uo, &st, err)
                    : kiln_unpack_reader(kiln_blob_stream_read, &rd, dir, uo, &st, err);
        if (r < 0) {
            kiln_blob_stream_abandon(bs);
            return -1;
        }
        if (kiln_blob_stream_wait(bs, err) < 0)
            return -1;
    } else {
        _cleanup_close_ int fd = -1;
        uo->expect_digest = d;
        if (kiln_store_open_blob(p->s, d, &fd, NULL, err) < 0 ||
            kiln_layer_unpack(fd, dir, uo, &st, err) < 0)
            return -1;
    }
    if (p->keep || bs == NULL)
        kiln_image_size_note(p->s, d, st.diff_size);
    return 0;
}

/* The directory layer i (> 0) is unpacked into before its merge. */
static char *layer_dir(const unpack_pipe_t *p, size_t i)
{
    return kiln_xasprintf("%s/layer-%zu", p->work, i);
}

/* A worker: takes the next layer, waits for its bytes, unpacks it (the first into the tree,
 * a later one into its own directory, its whiteouts recorded), until none is left. */
static void *pipe_worker(void *arg)
{
    unpack_pipe_t *p = arg;
    pthread_setname_np(pthread_self(), "kiln-unpack"); /* as ps and perf show it */
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->aborted && !p->have_manifest)
            pthread_cond_wait(&p->cond, &p->lock);
        size_t i = p->next;
        if (p->aborted || p->failed || i >= p->n) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        p->next++;
        while (!p->aborted && !p->failed &&
               ((p->streams[i] == NULL && !p->ready[i]) || !p->have_config))
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->aborted || p->failed) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        kiln_digest_t d = p->layers[i];
        kiln_digest_t diff_id = p->diff_ids[i];
        kiln_blob_stream_t *bs = p->streams[i] ? kiln_blob_stream_ref(p->streams[i]) : NULL;
        p->state[i] = L_RUNNING;
        pthread_mutex_unlock(&p->lock);

        kiln_unpack_opts_t uo;
        kiln_unpack_opts_init(&uo);
        uo.expect_diff_id = &diff_id;
        kiln_error_t e = {0};
        int r;
        if (i == 0) {
            r = apply_layer(p, &d, bs, p->rootfs, &uo, &e);
        } else {
            _cleanup_free_ char *dir = layer_dir(p, i);
            uo.record = &p->recs[i];
            r = mkdir(dir, 0755) < 0 ? kiln_error_set(&e, errno, "mkdir %s", dir)
                                     : apply_layer(p, &d, bs, dir, &uo, &e);
        }
        kiln_blob_stream_unref(bs);
        pthread_mutex_lock(&p->lock);
        p->state[i] = r < 0 ? L_FAILED : L_DONE;
        p->errs[i] = e;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Layer i that could not be unpacked on its own (e.g. a hardlink to a lower layer's file) or
 * whose merge could differ from applying it in place (oci/unpack_merge returned 1):
 * applied in place once its blob is in the store (its digest checked again; a blob that
 * was only streamed is fetched into the store once more). */
static int apply_in_place(unpack_pipe_t *p, size_t i, kiln_error_t *err)
{
    pthread_mutex_lock(&p->lock);
    while (!p->aborted && !p->ready[i])
        pthread_cond_wait(&p->cond, &p->lock);
    int aborted = p->aborted;
    kiln_digest_t diff_id = p->diff_ids[i];
    pthread_mutex_unlock(&p->lock);
    if (aborted)
        return kiln_error_set(err, ECANCELED, "the pull failed");
    kiln_descriptor_t d = {.digest = p->layers[i], .size = p->sizes[i]};
    if (kiln_store_has(p->s, &d.digest, NULL) != 1 &&
        kiln_registry_pull_blob(p->r, p->s, p->ref, &d, err) < 0)
        return -1;
    kiln_unpack_opts_t uo;
    kiln_unpack_opts_init(&uo);
    uo.expect_diff_id = &diff_id;
    return apply_layer(p, &p->layers[i], NULL, p->rootfs, &uo, err);
}

/* The merge thread: layer by layer in order, once unpacked, onto the tree. */
static void *pipe_merger(void *arg)
{
    unpack_pipe_t *p = arg;
    pthread_setname_np(pthread_self(), "kiln-merge"); /* as ps and perf show it */
    char ds[KILN_DIGEST_STR_MAX];
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&p->lock);
        while (!p->aborted && !p->failed &&
               (!p->have_manifest || (i < p->n && p->state[i] < L_DONE)))
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->aborted || p->failed || i >= p->n) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        int ok = p->state[i] == L_DONE;
        kiln_error_t err = p->errs[i];
        pthread_mutex_unlock(&p->lock);
        int r = 0;
        if (i > 0) {
            _cleanup_free_ char *dir = layer_dir(p, i);
            if (ok) /* 1: its result depends on the tree (nothing merged) */
                r = kiln_unpack_merge(p->rootfs, dir, &p->recs[i], &err);
            if (!ok && err.code == EBADMSG) /* a digest or diff_id mismatch: so it is anywhere */
                r = -1;
            else if (!ok || r > 0) /* its own error is the stream's (then the pull fails) or it
                                      needs the tree */
                r = apply_in_place(p, i, &err);
            kiln_fs_rm_rf(dir, NULL);
        } else if (!ok) {
            r = -1;
        }
        if (r < 0) {
            kiln_error_prefix(&err, "unpacking layer %zu (%s)", i,
                              kiln_digest_str(&p->layers[i], ds));
            pthread_mutex_lock(&p->lock);
            pipe_fail(p, &err);
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
    }
}

/* Removes the temp trees of pulls into dir that were killed (their lock is free). */
static void remove_stale(const char *dir)
{
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dup(dfd));
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            continue;
        _cleanup_close_ int fd =
            openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
            (void)kiln_fs_rm_rf_at(dfd, de->d_name, NULL);
    }
    closedir(d);
}

int kiln_pull_unpacked(kiln_registry_t *r, kiln_store_t *s, const char *ref,
                       kiln_registry_pull_opts_t *po, kiln_registry_image_t *img, const char *dest,
                       int keep, kiln_error_t *err)
{
    _cleanup_free_ char *parent = kiln_xstrdup(dest);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_free_ char *tree = NULL;
    _cleanup_close_ int lockfd = -1;
    char *slash = strrchr(parent, '/');
    unpack_pipe_t p = {.r = r, .ref = ref, .s = s, .keep = keep};
    pthread_t merger, workers[PARALLEL];
    size_t started = 0;
    struct stat st;
    int rc;

    if (slash == parent)
        parent[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else {
        free(parent);
        parent = kiln_xstrdup(".");
    }
    if (stat(dest, &st) == 0 && (!S_ISDIR(st.st_mode) || rmdir(dest) < 0))
        return kiln_error_set(err, EEXIST, "%s exists and is not an empty directory", dest);
    if (kiln_fs_mkdir_p(parent, 0755, err) < 0)
        return -1;
    remove_stale(parent);
    if (kiln_fs_mkdtemp(parent, TMP_PREFIX, &tmp, err) < 0)
        return -1;
    /* held until the end: a temp tree whose lock is free belongs to a killed pull */
    lockfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
        rc = kiln_error_set(err, errno, "locking %s", tmp);
        kiln_fs_rm_rf(tmp, NULL);
        return rc;
    }
    /* the tree and the later layers' own directories side by side in it (one filesystem:
     * a merge renames) */
    tree = kiln_xasprintf("%s/root", tmp);
    if (mkdir(tree, 0755) < 0) {
        rc = kiln_error_set(err, errno, "mkdir %s", tree);
        kiln_fs_rm_rf(tmp, NULL);
        return rc;
    }
    chmod(tree, 0755);
    p.work = tmp;
    p.rootfs = tree;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    po->on_manifest = pipe_on_manifest;
    po->on_blob = pipe_on_blob;
    po->on_blob_stream = pipe_on_stream;
    po->stream_only = pipe_stream_only;
    po->hook_ud = &p;
    rc = pthread_create(&merger, NULL, pipe_merger, &p) == 0 ? 0 : -1;
    for (; rc == 0 && started < PARALLEL; started++)
        if (pthread_create(&workers[started], NULL, pipe_worker, &p) != 0)
            break;
    if (rc < 0 || started == 0) {
        pthread_mutex_lock(&p.lock);
        p.aborted = 1;
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
        if (rc == 0)
            pthread_join(merger, NULL);
        rc = kiln_error_set(err, EAGAIN, "starting the unpack threads");
    } else {
        rc = kiln_registry_pull(r, s, ref, po, img, err);
        pthread_mutex_lock(&p.lock);
        if (rc < 0)
            p.aborted = 1;
        else /* everything is in the store now, whatever the hooks saw */
            for (size_t i = 0; i < p.n; i++)
                p.ready[i] = 1;
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
        pthread_join(merger, NULL);
        /* a worker still in a layer the merge no longer waits for (it failed) */
        pthread_mutex_lock(&p.lock);
        p.aborted = 1;
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(workers[i], NULL);
    if (rc == 0 && p.failed) {
        if (err != NULL)
            *err = p.err;
        rc = -1;
    }
    if (rc == 0 && rename(tree, dest) < 0)
        rc = kiln_error_set(err, errno, "rename %s to %s", tree, dest);
    kiln_fs_rm_rf(tmp, NULL);
    for (size_t i = 0; i < p.n; i++) {
        kiln_blob_stream_unref(p.streams[i]);
        kiln_unpack_record_free(&p.recs[i]);
    }
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    free(p.layers);
    free(p.sizes);
    free(p.streams);
    free(p.ready);
    free(p.state);
    free(p.recs);
    free(p.errs);
    free(p.diff_ids);
    return rc;
}
