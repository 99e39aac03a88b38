/* kiln — a blob read while it downloads (see pull_stream.h). */
#include "oci/pull_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utils/mem.h"

enum { BS_RUNNING, BS_DONE, BS_FAILED };

/* Memory mode: a waiting reader is woken once this much is there (not for every piece the
 * network gives: a download comes in pieces of a few KiB), a paused producer once a
 * `cap / RESUME_DIV` is free. */
#define READER_BATCH (256u * 1024)
/* The most bytes of the ring one block (kiln_blob_stream_block) holds: the producer keeps the
 * rest of the ring to fill meanwhile. */
#define BLOCK_MAX (256u * 1024)
#define RESUME_DIV 2

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
    /* memory mode (kiln_blob_stream_memory): bytes [taken, avail) wait in ring (cap bytes,
     * offset = stream position % cap) for the one reader */
    unsigned char *ring;
    size_t cap;
    uint64_t taken;
    int blocked;        /* a push found no room: wake once there is `need` */
    int rwaiting;       /* the reader waits for bytes */
    size_t need;        /* (the producer holds its bytes meanwhile) */
    int abandoned;      /* the reader stopped: later bytes are hashed and dropped */
    kiln_sha256_t hash; /* of every byte pushed */
    void (*wake)(void *ud);
    void *wake_ud;
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
    if (bs->ring != NULL)
        kiln_sha256_dispose(&bs->hash);
    free(bs->ring);
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

/* Copies len bytes at stream position pos between the ring and buf (out: from the ring). */
static void ring_copy(kiln_blob_stream_t *bs, uint64_t pos, void *buf, size_t len, int out)
{
    size_t off = (size_t)(pos % bs->cap), first = bs->cap - off < len ? bs->cap - off : len;
    unsigned char *b = buf;
    if (out) {
        memcpy(b, bs->ring + off, first);
        memcpy(b + first, bs->ring, len - first);
    } else {
        memcpy(bs->ring + off, b, first);
        memcpy(bs->ring, b + first, len - first);
    }
}

/* The producer waiting for room (locked): woken once `need` bytes are free (the wake-up
 * under the lock: kiln_blob_stream_set_wake may be ending it). */
static void room_made(kiln_blob_stream_t *bs)
{
    size_t room = bs->cap - (size_t)(bs->avail - bs->taken);
    if (!bs->blocked || ((room < bs->need || room < bs->cap / RESUME_DIV) && !bs->abandoned))
        return;
    bs->blocked = 0;
    pthread_cond_broadcast(&bs->cond);
    if (bs->wake != NULL)
        bs->wake(bs->wake_ud);
}

void kiln_blob_stream_set_wake(kiln_blob_stream_t *bs, void (*wake)(void *ud), void *ud)
{
    pthread_mutex_lock(&bs->lock);
    bs->wake = wake;
    bs->wake_ud = ud;
    pthread_mutex_unlock(&bs->lock);
}

ssize_t kiln_blob_stream_read(void *reader, void *buf, size_t len, kiln_error_t *err)
{
    kiln_blob_reader_t *r = reader;
    kiln_blob_stream_t *bs = r->bs;
    int fd;
    size_t n;

    pthread_mutex_lock(&bs->lock);
    while (bs->state == BS_RUNNING && ((bs->fd < 0 && bs->ring == NULL) || r->pos >= bs->avail)) {
        bs->rwaiting = 1;
        pthread_cond_wait(&bs->cond, &bs->lock);
    }
    bs->rwaiting = 0;
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
    n = bs->avail - r->pos < len ? (size_t)(bs->avail - r->pos) : len;
    if (bs->ring != NULL) { /* the one reader: what it takes leaves the ring */
        ring_copy(bs, r->pos, buf, n, 1);
        r->pos += n;
        bs->taken = r->pos;
        room_made(bs);
        pthread_mutex_unlock(&bs->lock);
        return (ssize_t)n;
    }
    /* the fd stays open while the stream lives (a restart keeps the old one), and a
     * restarted download writes the same blob's bytes */
    fd = bs->fd;
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

const void *kiln_blob_stream_block(void *reader, size_t *len, kiln_error_t *err)
{
    kiln_blob_reader_t *r = reader;
    kiln_blob_stream_t *bs = r->bs;
    const void *p = NULL;

    pthread_mutex_lock(&bs->lock);
    if (bs->ring != NULL && r->pos > bs->taken) { /* the previous block given back */
        bs->taken = r->pos;
        room_made(bs);
    }
    while (bs->state == BS_RUNNING && (bs->ring == NULL || r->pos >= bs->avail)) {
        if (bs->fd >= 0) /* (a stream in memory mode never gets a file) */
            break;
        bs->rwaiting = 1;
        pthread_cond_wait(&bs->cond, &bs->lock);
    }
    bs->rwaiting = 0;
    if (bs->state == BS_FAILED) {
        if (err != NULL)
            *err = bs->err;
    } else if (bs->ring == NULL) {
        kiln_error_set(err, EINVAL, "blob sha256:%s: not streamed in memory", bs->digest.hex);
    } else if (r->pos >= bs->avail) { /* done and read to the end */
        *len = 0;
        p = "";
    } else {
        size_t off = (size_t)(r->pos % bs->cap), n = (size_t)(bs->avail - r->pos);
        n = n < bs->cap - off ? n : bs->cap - off;
        *len = n < BLOCK_MAX ? n : BLOCK_MAX;
        p = bs->ring + off;
        r->pos += *len;
    }
    pthread_mutex_unlock(&bs->lock);
    return p;
}

int kiln_blob_stream_in_memory(kiln_blob_stream_t *bs)
{
    pthread_mutex_lock(&bs->lock);
    int m = bs->ring != NULL;
    pthread_mutex_unlock(&bs->lock);
    return m;
}

int kiln_blob_stream_memory(kiln_blob_stream_t *bs, size_t cap, void (*wake)(void *ud), void *ud,
                            kiln_error_t *err)
{
    if (kiln_sha256_init(&bs->hash, err) < 0)
        return -1;
    pthread_mutex_lock(&bs->lock);
    bs->ring = kiln_xmalloc(cap);
    bs->cap = cap;
    bs->wake = wake;
    bs->wake_ud = ud;
    pthread_cond_broadcast(&bs->cond);
    pthread_mutex_unlock(&bs->lock);
    return 0;
}

int kiln_blob_stream_push(kiln_blob_stream_t *bs, const void *buf, size_t len, int wait)
{
    pthread_mutex_lock(&bs->lock);
    if (len > bs->cap && !bs->abandoned) { /* never in one piece: a larger ring */
        while (bs->avail != bs->taken && !bs->abandoned && wait)
            pthread_cond_wait(&bs->cond, &bs->lock);
        if (bs->avail != bs->taken && !bs->abandoned) {
            bs->blocked = 1;
            bs->need = 0;
            pthread_mutex_unlock(&bs->lock);
            return 0;
        }
        free(bs->ring);
        bs->ring = kiln_xmalloc(len);
        bs->cap = len;
    }
    while (!bs->abandoned && bs->cap - (size_t)(bs->avail - bs->taken) < len) {
        if (bs->rwaiting) /* a full ring wakes its reader (a ring smaller than a batch too) */
            pthread_cond_broadcast(&bs->cond);
        if (!wait) {
            bs->blocked = 1;
            bs->need = len;
            pthread_mutex_unlock(&bs->lock);
            return 0;
        }
        bs->blocked = 1;
        bs->need = len;
        pthread_cond_wait(&bs->cond, &bs->lock);
    }
    if (!bs->abandoned)
        ring_copy(bs, bs->avail, (void *)buf, len, 0);
    bs->avail += len;
    if (bs->abandoned)
        bs->taken = bs->avail;
    /* (the end wakes the reader for the last bytes: kiln_blob_stream_finish) */
    if (bs->rwaiting && bs->avail - bs->taken >= READER_BATCH)
        pthread_cond_broadcast(&bs->cond);
    pthread_mutex_unlock(&bs->lock);
    kiln_sha256_update(&bs->hash, buf, len); /* the producer's alone */
    return 1;
}

int kiln_blob_stream_blocked(kiln_blob_stream_t *bs)
{
    pthread_mutex_lock(&bs->lock);
    int b = bs->blocked;
    pthread_mutex_unlock(&bs->lock);
    return b;
}

uint64_t kiln_blob_stream_pushed(kiln_blob_stream_t *bs)
{
    pthread_mutex_lock(&bs->lock);
    uint64_t n = bs->avail;
    pthread_mutex_unlock(&bs->lock);
    return n;
}

void kiln_blob_stream_abandon(kiln_blob_stream_t *bs)
{
    if (bs == NULL)
        return;
    pthread_mutex_lock(&bs->lock);
    bs->abandoned = 1;
    bs->taken = bs->avail;
    room_made(bs);
    pthread_mutex_unlock(&bs->lock);
}

int kiln_blob_stream_commit(kiln_blob_stream_t *bs, uint64_t size, kiln_error_t *err)
{
    kiln_digest_t got;
    uint64_t n = kiln_blob_stream_pushed(bs);
    kiln_error_t e = {0};
    kiln_sha256_final(&bs->hash, &got); /* (disposes it: a second dispose is a no-op) */
    if (!kiln_digest_equal(&got, &bs->digest))
        kiln_error_set(&e, EIO, "blob sha256:%s: content does not match its digest (got sha256:%s)",
                       bs->digest.hex, got.hex);
    else if (n != size)
        kiln_error_set(&e, EIO, "blob sha256:%s: size %llu does not match the expected %llu",
                       bs->digest.hex, (unsigned long long)n, (unsigned long long)size);
    kiln_blob_stream_finish(bs, e.msg[0] == '\0', n, &e);
    if (e.msg[0] != '\0') {
        if (err != NULL)
            *err = e;
        return -1;
    }
    return 0;
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
