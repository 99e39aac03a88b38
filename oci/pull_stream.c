/* kiln — a blob read while it downloads (see pull_stream.h). */
#include "oci/pull_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "utils/mem.h"

enum { BS_RUNNING, BS_DONE, BS_FAILED };

struct kiln_blob_stream {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned refs;
    kiln_digest_t digest;
    int fd;         /* the file being written, or -1 before the download starts */
    uint64_t avail; /* bytes of it written */
    int state;
    kiln_error_t err;
    /* files of earlier attempts, closed with the stream (a reader may still be in a pread) */
    int *old_fds;
    size_t n_old;
};

kiln_blob_stream_t *kiln_blob_stream_new(const kiln_digest_t *d)
{
    kiln_blob_stream_t *bs = kiln_xzalloc(sizeof(*bs));
    pthread_mutex_init(&bs->lock, NULL);
    pthread_cond_init(&bs->cond, NULL);
    bs->refs = 1;
    bs->digest = *d;
    bs->fd = -1;
    return bs;
}

kiln_blob_stream_t *kiln_blob_stream_ref(kiln_blob_stream_t *bs)
{
    pthread_mutex_lock(&bs->lock);
    bs->refs++;
    pthread_mutex_unlock(&bs->lock);
    return bs;
}

void kiln_blob_stream_unref(kiln_blob_stream_t *bs)
{
    if (bs == NULL)
        return;
    pthread_mutex_lock(&bs->lock);
    unsigned left = --bs->refs;
    pthread_mutex_unlock(&bs->lock);
    if (left > 0)
        return;
    if (bs->fd >= 0)
        close(bs->fd);
    for (size_t i = 0; i < bs->n_old; i++)
        close(bs->old_fds[i]);
    free(bs->old_fds);
    pthread_cond_destroy(&bs->cond);
    pthread_mutex_destroy(&bs->lock);
    free(bs);
}

const kiln_digest_t *kiln_blob_stream_digest(const kiln_blob_stream_t *bs)
{
    return &bs->digest;
}

size_t kiln_blob_stream_adopt(kiln_blob_stream_t **slots, const kiln_digest_t *digests, size_t n,
                              kiln_blob_stream_t *bs)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++)
        if (slots[i] == NULL && kiln_digest_equal(&digests[i], &bs->digest)) {
            slots[i] = kiln_blob_stream_ref(bs);
            got++;
        }
    return got;
}

void kiln_blob_stream_restart(kiln_blob_stream_t *bs, int fd)
{
    pthread_mutex_lock(&bs->lock);
    if (bs->fd >= 0) {
        bs->old_fds = kiln_xrealloc(bs->old_fds, (bs->n_old + 1) * sizeof(int));
        bs->old_fds[bs->n_old++] = bs->fd;
    }
    bs->fd = fd;
    bs->avail = 0;
    pthread_cond_broadcast(&bs->cond);
    pthread_mutex_unlock(&bs->lock);
}

void kiln_blob_stream_grow(kiln_blob_stream_t *bs, uint64_t avail)
{
    pthread_mutex_lock(&bs->lock);
    if (avail > bs->avail) {
        bs->avail = avail;
        pthread_cond_broadcast(&bs->cond);
    }
    pthread_mutex_unlock(&bs->lock);
}

void kiln_blob_stream_finish(kiln_blob_stream_t *bs, int ok, uint64_t avail, const kiln_error_t *e)
{
    pthread_mutex_lock(&bs->lock);
    if (bs->state == BS_RUNNING) {
        bs->state = ok ? BS_DONE : BS_FAILED;
        if (ok)
            bs->avail = avail;
        else if (e != NULL && e->msg[0] != '\0')
            bs->err = *e;
        else
            kiln_error_set(&bs->err, EIO, "blob sha256:%s: the download failed", bs->digest.hex);
        pthread_cond_broadcast(&bs->cond);
    }
    pthread_mutex_unlock(&bs->lock);
}

ssize_t kiln_blob_stream_read(void *reader, void *buf, size_t len, kiln_error_t *err)
{
    kiln_blob_reader_t *r = reader;
    kiln_blob_stream_t *bs = r->bs;
    int fd;
    size_t n;

    pthread_mutex_lock(&bs->lock);
    while (bs->state == BS_RUNNING && (bs->fd < 0 || r->pos >= bs->avail))
        pthread_cond_wait(&bs->cond, &bs->lock);
    if (bs->state == BS_FAILED) {
        if (err != NULL)
            *err = bs->err;
        pthread_mutex_unlock(&bs->lock);
        return -1;
    }
    if (r->pos >= bs->avail) { /* done and read to the end */
        pthread_mutex_unlock(&bs->lock);
        return 0;
    }
    /* the fd stays open while the stream lives (a restart keeps the old one), and a
     * restarted download writes the same blob's bytes */
    fd = bs->fd;
    n = bs->avail - r->pos < len ? (size_t)(bs->avail - r->pos) : len;
    pthread_mutex_unlock(&bs->lock);
    ssize_t got;
    do
        got = pread(fd, buf, n, (off_t)r->pos);
    while (got < 0 && errno == EINTR);
    if (got <= 0)
        return kiln_error_set(err, got < 0 ? errno : EIO,
                              "blob sha256:%s: reading it while it downloads", bs->digest.hex);
    r->pos += (uint64_t)got;
    return got;
}

int kiln_blob_stream_wait(kiln_blob_stream_t *bs, kiln_error_t *err)
{
    int rc = 0;
    pthread_mutex_lock(&bs->lock);
    while (bs->state == BS_RUNNING)
        pthread_cond_wait(&bs->cond, &bs->lock);
    if (bs->state == BS_FAILED) {
        if (err != NULL)
            *err = bs->err;
        rc = -1;
    }
    pthread_mutex_unlock(&bs->lock);
    return rc;
}
