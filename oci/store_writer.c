/* kiln — blobs written into the store (see store.h): streamed into a temp file while hashed,
 * checked against the expected digest and size, fsynced (unless it can be fetched again, or
 * the store defers syncs to the next ref: kiln_store_defer_sync) and renamed into blobs/ on
 * commit; an aborted or failed write leaves no blob. */
#include "oci/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/store_impl.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define WRITER_BUF (256u * 1024)
/* Write-out of a blob that will be fsynced is started every this many bytes,
 * so that the fsync at commit waits for the last few MiB only. */
#define WRITEBACK_STEP (8u * 1024 * 1024)

struct kiln_store_writer {
    kiln_store_t *store;
    int fd;
    char tmp_name[64];
    kiln_sha256_t hash;
    uint64_t written;
    int has_expected;
    kiln_digest_t expected;
    int64_t expected_size;
    int no_sync; /* the blob can be fetched again: no fsync at commit */
    int hashed;  /* the hash was finished into `digest` (the sink's digest) */
    kiln_digest_t digest;
    size_t used;
    uint64_t on_disk; /* bytes written to fd */
    uint64_t wb_from; /* write-out started for the bytes before this offset */
    unsigned char buf[WRITER_BUF];
};

int kiln_store_writer_new(kiln_store_t *s, const kiln_digest_t *expected, int64_t expected_size,
                          kiln_store_writer_t **out, kiln_error_t *err)
{
    kiln_store_writer_t *w = kiln_xzalloc(sizeof(*w));
    int tries;

    w->store = s;
    w->fd = -1;
    w->expected_size = expected_size;
    if (expected != NULL) {
        w->has_expected = 1;
        w->expected = *expected;
    }
    for (tries = 0; tries < 100 && w->fd < 0; tries++) {
        unsigned long r = ((unsigned long)random() << 16) ^ (unsigned long)getpid() ^
                          ((unsigned long)tries << 40);
        snprintf(w->tmp_name, sizeof(w->tmp_name), "blob-%d-%lx", getpid(), r);
        w->fd = openat(s->tmp_fd, w->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->fd < 0 && errno != EEXIST) {
            kiln_error_set(err, errno, "blob store %s: create temp file", s->root);
            free(w);
            return -1;
        }
    }
    if (w->fd < 0) {
        free(w);
        return kiln_error_set(err, EEXIST, "blob store %s: cannot create a temp file", s->root);
    }
    if (kiln_sha256_init(&w->hash, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

/* Writes len bytes to the temp file and, for a blob fsynced at commit,
 * starts the write-out of each WRITEBACK_STEP written (asynchronously: the
 * disk writes while the producer goes on, instead of all at the fsync). */
static int writer_put(kiln_store_writer_t *w, const void *buf, size_t len, kiln_error_t *err)
{
    if (kiln_fs_write_all(w->fd, buf, len, err) < 0)
        return kiln_error_prefix(err, "blob store %s: write temp file", w->store->root);
    w->on_disk += len;
    if (!w->no_sync && w->on_disk - w->wb_from >= WRITEBACK_STEP) {
        (void)sync_file_range(w->fd, (off_t)w->wb_from, (off_t)(w->on_disk - w->wb_from),
                              SYNC_FILE_RANGE_WRITE);
        w->wb_from = w->on_disk;
    }
    return 0;
}

/* Writes the buffered bytes to the temp file. */
static int writer_flush(kiln_store_writer_t *w, kiln_error_t *err)
{
    if (w->used == 0)
        return 0;
    if (writer_put(w, w->buf, w->used, err) < 0)
        return -1;
    w->used = 0;
    return 0;
}

int kiln_store_writer_write(kiln_store_writer_t *w, const void *buf, size_t len, kiln_error_t *err)
{
    const unsigned char *p = buf;

    if (w->hashed)
        return kiln_error_set(err, EINVAL, "blob store %s: write after the digest was taken",
                              w->store->root);
    if (w->expected_size >= 0 && w->written + len > (uint64_t)w->expected_size)
        return kiln_error_set(err, EFBIG, "blob %s%s: more than the expected %lld bytes",
                              w->has_expected ? "sha256:" : "",
                              w->has_expected ? w->expected.hex : "", (long long)w->expected_size);
    kiln_sha256_update(&w->hash, buf, len);
    w->written += len;
    if (len >= WRITER_BUF) {
        if (writer_flush(w, err) < 0)
            return -1;
        return writer_put(w, p, len, err);
    }
    if (w->used + len > WRITER_BUF && writer_flush(w, err) < 0)
        return -1;
    memcpy(w->buf + w->used, p, len);
    w->used += len;
    return 0;
}

static int writer_sink_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    return kiln_store_writer_write(ctx, buf, len, err);
}

/* The digest of everything written (the writer hashes it anyway): finishes
 * the hash once; commit uses the same. */
static void writer_sink_digest(void *ctx, kiln_digest_t *out)
{
    kiln_store_writer_t *w = ctx;
    if (!w->hashed)
        kiln_sha256_final(&w->hash, &w->digest);
    w->hashed = 1;
    *out = w->digest;
}

kiln_sink_t kiln_store_writer_sink(kiln_store_writer_t *w)
{
    kiln_sink_t s = {writer_sink_write, w, writer_sink_digest};
    return s;
}

void kiln_store_writer_no_sync(kiln_store_writer_t *w)
{
    w->no_sync = 1;
}

int kiln_store_writer_open_read(kiln_store_writer_t *w, kiln_error_t *err)
{
    int fd = openat(w->store->tmp_fd, w->tmp_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "blob store %s: open temp file %s", w->store->root,
                              w->tmp_name);
    return fd;
}

uint64_t kiln_store_writer_flushed(const kiln_store_writer_t *w)
{
    return w->written - w->used;
}

void kiln_store_writer_abort(kiln_store_writer_t *w)
{
    if (w == NULL)
        return;
    kiln_sha256_dispose(&w->hash);
    kiln_closep(&w->fd);
    unlinkat(w->store->tmp_fd, w->tmp_name, 0);
    free(w);
}

/* At most this many blobs wait for a sync: past it, the writer syncs them first. */
#define PENDING_MAX 64

/* Hands the fd of a blob written deferred to the next kiln_store_sync. */
int kiln_store_pending_add(kiln_store_t *s, int fd, kiln_error_t *err)
{
    pthread_mutex_lock(&s->sync_mu);
    while (s->n_pending >= PENDING_MAX) {
        pthread_mutex_unlock(&s->sync_mu);
        if (kiln_store_sync(s, err) < 0)
            return -1;
        pthread_mutex_lock(&s->sync_mu);
    }
    s->pending = kiln_xrealloc(s->pending, (s->n_pending + 1) * sizeof(int));
    s->pending[s->n_pending++] = fd;
    pthread_mutex_unlock(&s->sync_mu);
    return 0;
}

int kiln_store_writer_commit(kiln_store_writer_t *w, kiln_digest_t *digest, uint64_t *size,
                             kiln_error_t *err)
{
    kiln_store_t *s = w->store;
    kiln_digest_t got;
    uint64_t n = w->written;

    if (writer_flush(w, err) < 0)
        goto fail;
    writer_sink_digest(w, &got);
    if (w->has_expected && !kiln_digest_equal(&got, &w->expected)) {
        kiln_error_set(err, EIO,
                       "blob sha256:%s: content does not match its digest (got sha256:%s)",
                       w->expected.hex, got.hex);
        goto fail;
    }
    if (w->expected_size >= 0 && n != (uint64_t)w->expected_size) {
        kiln_error_set(err, EIO, "blob sha256:%s: size %llu does not match the expected %lld",
                       got.hex, (unsigned long long)n, (long long)w->expected_size);
        goto fail;
    }
    {
        /* deferred: synced with the others before any ref names it (kiln_store_sync) */
        int defer = !w->no_sync && __atomic_load_n(&s->defer_sync, __ATOMIC_ACQUIRE) > 0;
        uint64_t have_size = 0;
        /* a blob of another size under this name was cut short (a crash before the sync of
         * a deferred write, or a pulled blob's): these complete bytes replace it */
        int have = kiln_store_has(s, &got, &have_size) && have_size == n;
        if (!have) {
            if (fchmod(w->fd, 0444) < 0 || (!w->no_sync && !defer && fsync(w->fd) < 0)) {
                kiln_error_set(err, errno, "blob store %s: sync temp file", s->root);
                goto fail;
            }
            if (renameat(s->tmp_fd, w->tmp_name, s->blobs_fd, got.hex) < 0) {
                kiln_error_set(err, errno, "blob store %s: rename blob sha256:%s into place",
                               s->root, got.hex);
                goto fail;
            }
            if (defer) {
                /* kept open: kiln_store_sync fsyncs it with the others */
                if (kiln_store_pending_add(s, w->fd, err) < 0)
                    goto fail;
                w->fd = -1;
            } else if (!w->no_sync) {
                fsync(s->blobs_fd);
            }
        }
    }
    kiln_store_writer_abort(w); /* closes, drops the temp name if still there */
    if (digest != NULL)
        *digest = got;
    if (size != NULL)
        *size = n;
    return 0;
fail:
    kiln_store_writer_abort(w);
    return -1;
}

void kiln_store_defer_sync(kiln_store_t *s, int on)
{
    __atomic_add_fetch(&s->defer_sync, on ? 1 : -1, __ATOMIC_ACQ_REL);
}

int kiln_store_sync(kiln_store_t *s, kiln_error_t *err)
{
    int *fds;
    size_t n;
    int all, r = 0, e = 0;

    pthread_mutex_lock(&s->sync_mu);
    fds = s->pending;
    n = s->n_pending;
    all = s->sync_all;
    s->pending = NULL;
    s->n_pending = 0;
    s->sync_all = 0;
    pthread_mutex_unlock(&s->sync_mu);
    /* each blob's own fsync, not a syncfs: that would wait for every other writer's data on
     * the filesystem too */
    for (size_t i = 0; i < n; i++) {
        if (!all && fsync(fds[i]) < 0 && r == 0)
            r = -1, e = errno;
        close(fds[i]);
    }
    free(fds);
    if (r == 0 && all && syncfs(s->blobs_fd) < 0)
        r = -1, e = errno;
    if (r == 0 && (n > 0 || all) && fsync(s->blobs_fd) < 0)
        r = -1, e = errno;
    if (r < 0) {
        /* those blobs are not known durable: the next sync makes everything so */
        pthread_mutex_lock(&s->sync_mu);
        s->sync_all = 1;
        pthread_mutex_unlock(&s->sync_mu);
        return kiln_error_set(err, e, "blob store %s: sync", s->root);
    }
    return 0;
}

int kiln_store_put_bytes(kiln_store_t *s, const void *buf, size_t len, kiln_digest_t *out,
                         kiln_error_t *err)
{
    kiln_store_writer_t *w;
    kiln_digest_t d;
    uint64_t have = 0;

    kiln_digest_bytes(buf, len, &d);
    /* one of another size was cut short: written again (kiln_store_writer_commit) */
    if (kiln_store_has(s, &d, &have) && have == len) {
        if (out != NULL)
            *out = d;
        return 0;
    }
    if (kiln_store_writer_new(s, &d, (int64_t)len, &w, err) < 0)
        return -1;
    if (kiln_store_writer_write(w, buf, len, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    return kiln_store_writer_commit(w, out, NULL, err);
}

int kiln_store_put_fd(kiln_store_t *s, int fd, const kiln_digest_t *expected, int64_t expected_size,
                      kiln_digest_t *out, uint64_t *size, kiln_error_t *err)
{
    kiln_store_writer_t *w;
    kiln_sink_t sink;

    if (kiln_store_writer_new(s, expected, expected_size, &w, err) < 0)
        return -1;
    sink = kiln_store_writer_sink(w);
    if (kiln_sink_copy_fd(&sink, fd, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    return kiln_store_writer_commit(w, out, size, err);
}
