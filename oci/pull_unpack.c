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

#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define TMP_PREFIX ".kiln-unpack-"

/* The download hooks and the unpack thread: layer i is applied once its stream exists (its
 * download started) or its blob is in the store, in order. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kiln_store_t *s;
    const char *rootfs;
    kiln_digest_t *layers;
    kiln_blob_stream_t **streams;
    int *ready;
    size_t n;
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
    p->streams = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->streams));
    p->ready = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->ready));
    for (size_t i = 0; i < m->n_layers; i++)
        p->layers[i] = m->layers[i].digest;
    p->n = m->n_layers;
    p->have_manifest = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void pipe_on_blob(void *ud, const kiln_digest_t *d)
{
    unpack_pipe_t *p = ud;
    pthread_mutex_lock(&p->lock);
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
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Applies layer d: from its download while it streams (verified by the download's commit:
 * the stream's last read waits for it), or from the store (its digest checked). */
static int apply_layer(unpack_pipe_t *p, const kiln_digest_t *d, kiln_blob_stream_t *bs,
                       kiln_error_t *err)
{
    kiln_unpack_opts_t uo;
    kiln_unpack_opts_init(&uo);
    if (bs != NULL) {
        kiln_blob_reader_t rd = {bs, 0};
        if (kiln_unpack_reader(kiln_blob_stream_read, &rd, p->rootfs, &uo, NULL, err) < 0)
            return -1;
        return kiln_blob_stream_wait(bs, err);
    }
    _cleanup_close_ int fd = -1;
    uo.expect_digest = d;
    if (kiln_store_open_blob(p->s, d, &fd, NULL, err) < 0)
        return -1;
    return kiln_layer_unpack(fd, p->rootfs, &uo, NULL, err);
}

static void *pipe_worker(void *arg)
{
    unpack_pipe_t *p = arg;
    char ds[KILN_DIGEST_STR_MAX];

    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&p->lock);
        while (!p->aborted &&
               (!p->have_manifest || (i < p->n && p->streams[i] == NULL && !p->ready[i])))
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->aborted || i >= p->n) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        kiln_digest_t d = p->layers[i];
        kiln_blob_stream_t *bs = p->streams[i];
        pthread_mutex_unlock(&p->lock);
        if (apply_layer(p, &d, bs, &p->err) < 0) {
            kiln_error_prefix(&p->err, "unpacking layer %zu (%s)", i, kiln_digest_str(&d, ds));
            p->failed = 1;
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
                       kiln_error_t *err)
{
    _cleanup_free_ char *parent = kiln_xstrdup(dest);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int lockfd = -1;
    char *slash = strrchr(parent, '/');
    unpack_pipe_t p = {.s = s};
    pthread_t th;
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
    chmod(tmp, 0755);
    p.rootfs = tmp;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    po->on_manifest = pipe_on_manifest;
    po->on_blob = pipe_on_blob;
    po->on_blob_stream = pipe_on_stream;
    po->hook_ud = &p;
    if (pthread_create(&th, NULL, pipe_worker, &p) != 0) {
        kiln_fs_rm_rf(tmp, NULL);
        return kiln_error_set(err, EAGAIN, "starting the unpack thread");
    }
    rc = kiln_registry_pull(r, s, ref, po, img, err);
    pthread_mutex_lock(&p.lock);
    if (rc < 0)
        p.aborted = 1;
    else /* everything is in the store now, whatever the hooks saw */
        for (size_t i = 0; i < p.n; i++)
            p.ready[i] = 1;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    pthread_join(th, NULL);
    if (rc == 0 && p.failed) {
        if (err != NULL)
            *err = p.err;
        rc = -1;
    }
    if (rc == 0 && rename(tmp, dest) < 0)
        rc = kiln_error_set(err, errno, "rename %s to %s", tmp, dest);
    if (rc < 0)
        kiln_fs_rm_rf(tmp, NULL);
    for (size_t i = 0; i < p.n; i++)
        kiln_blob_stream_unref(p.streams[i]);
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    free(p.layers);
    free(p.streams);
    free(p.ready);
    return rc;
}
