/* kiln — regular files of a layer written by threads beside the tar reader (see
 * unpack_pool.h). */
#include "oci/unpack_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* The most bytes of file data queued at once, and the most files. */
#define QUEUE_BYTES (8u << 20)
#define QUEUE_FILES 4096u
#define MAX_THREADS 4
/* The most directory fds the queue holds (files of as many directories): the process's
 * limit of open files is shared. */
#define MAX_DIRS 32
/* Queued files per writer beyond which the reader makes a file itself. */
#define BEHIND_FILES 8

/* A directory's fd shared by the files queued under it: closed with the last of them. */
struct pool_dir {
    int fd;
    unsigned refs;
};

struct job {
    struct job *next;
    struct pool_dir *dir;
    kiln_unpack_pool_file_t f; /* name and entry point into this allocation */
    unsigned char data[];
};

struct kiln_unpack_pool {
    int nthreads, started;
    pthread_t th[MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job is queued, or stop */
    pthread_cond_t room; /* a job is done: room in the queue, or drained */
    struct job *head, *tail;
    size_t queued_bytes, queued_files;
    unsigned busy; /* jobs taken by a thread and not done */
    int stop, failed;
    kiln_error_t err;
    struct job *reserved; /* the caller's, between reserve and add */
    struct pool_dir *dir; /* the last directory added, while the caller's fd is that one */
    unsigned ndirs;       /* pool_dirs open */
    int dir_src;          /* the caller's fd it duplicates */
};

/* Drops a reference to d (locked). */
static void dir_unref(kiln_unpack_pool_t *p, struct pool_dir *d)
{
    if (d != NULL && --d->refs == 0) {
        close(d->fd);
        free(d);
        p->ndirs--;
    }
}

/* Creates one file: 0, or -1 with err naming its entry. */
static int make_file(const struct job *j, kiln_error_t *err)
{
    const kiln_unpack_pool_file_t *f = &j->f;
    _cleanup_close_ int fd =
        openat(j->dir->fd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, f->made);
    if (fd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': creating the file", f->entry);
    if (f->len > 0 && kiln_fs_write_all(fd, j->data, f->len, err) < 0)
        return kiln_error_prefix(err, "layer entry '%.512s'", f->entry);
    if (f->chown >= 0 && fchown(fd, f->uid, f->gid) < 0 && !(errno == EPERM && f->chown == 0))
        return kiln_error_set(err, errno, "layer entry '%.512s': chown %u:%u", f->entry,
                              (unsigned)f->uid, (unsigned)f->gid);
    if (f->chmod && fchmod(fd, f->mode) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': chmod", f->entry);
    struct timespec ts[2] = {f->mtime, f->mtime};
    if (futimens(fd, ts) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': setting mtime", f->entry);
    return 0;
}

/* A writer: creates the queued files in order until stopped; after a failure the queue is
 * dropped (the reader reports the first error). */
static void *writer_main(void *arg)
{
    kiln_unpack_pool_t *p = arg;
    pthread_setname_np(pthread_self(), "kiln-write"); /* as ps and perf show it */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->head == NULL)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        struct job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->busy++;
        int failed = p->failed;
        pthread_mutex_unlock(&p->lock);
        kiln_error_t e = {0};
        int r = failed ? 0 : make_file(j, &e);
        pthread_mutex_lock(&p->lock);
        if (r < 0 && !p->failed) {
            p->failed = 1;
            p->err = e;
        }
        p->queued_bytes -= j->f.len;
        p->queued_files--;
        p->busy--;
        dir_unref(p, j->dir);
        free(j);
        pthread_cond_broadcast(&p->room);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int kiln_unpack_pool_auto_threads(void)
{
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set) - 1;
    return n < 0 ? 0 : n > MAX_THREADS ? MAX_THREADS : n; /* (one CPU: none, the reader alone) */
}

kiln_unpack_pool_t *kiln_unpack_pool_new(int threads)
{
    if (threads < 1)
        return NULL;
    kiln_unpack_pool_t *p = kiln_xzalloc(sizeof(*p));
    p->nthreads = threads > MAX_THREADS ? MAX_THREADS : threads;
    p->dir_src = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->room, NULL);
    return p;
}

/* The pool's first failure as err (locked). */
static int failed_err(kiln_unpack_pool_t *p, kiln_error_t *err)
{
    if (err != NULL)
        *err = p->err;
    return -1;
}

void *kiln_unpack_pool_reserve(kiln_unpack_pool_t *p, const kiln_unpack_pool_file_t *f,
                               kiln_error_t *err)
{
    size_t nl = strlen(f->name) + 1, el = strlen(f->entry) + 1;
    pthread_mutex_lock(&p->lock);
    /* room for it (an empty queue always takes one) */
    while (!p->failed && p->queued_files > 0 &&
           (p->queued_bytes + f->len > QUEUE_BYTES || p->queued_files >= QUEUE_FILES))
        pthread_cond_wait(&p->room, &p->lock);
    if (p->failed) {
        failed_err(p, err);
        pthread_mutex_unlock(&p->lock);
        return NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(p->reserved);
    struct job *j = kiln_xmalloc(sizeof(*j) + f->len + nl + el);
    j->next = NULL;
    j->dir = NULL;
    j->f = *f;
    char *names = (char *)j->data + f->len;
    memcpy(names, f->name, nl);
    memcpy(names + nl, f->entry, el);
    j->f.name = names;
    j->f.entry = names + nl;
    p->reserved = j;
    return j->data;
}

/* Starts the writers (once): -1 with err when none could start. */
static int start_threads(kiln_unpack_pool_t *p, kiln_error_t *err)
{
    for (; p->started < p->nthreads; p->started++) {
        int r = pthread_create(&p->th[p->started], NULL, writer_main, p);
        if (r != 0) {
            if (p->started > 0)
                break; /* fewer writers, still writers */
            return kiln_error_set(err, r, "starting the layer's file writers");
        }
    }
    p->nthreads = p->started;
    return 0;
}

int kiln_unpack_pool_add(kiln_unpack_pool_t *p, int dirfd, kiln_error_t *err)
{
    struct job *j = p->reserved;
    if (j == NULL)
        return kiln_error_set(err, EINVAL, "no file reserved in the layer's file writers");
    p->reserved = NULL;
    if (!p->started && start_threads(p, err) < 0) {
        free(j);
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    if (p->dir == NULL || p->dir_src != dirfd) {
        dir_unref(p, p->dir);
        p->dir = NULL;
        while (!p->failed && p->ndirs >= MAX_DIRS) /* the writers close theirs */
            pthread_cond_wait(&p->room, &p->lock);
        if (p->failed) {
            failed_err(p, err);
            pthread_mutex_unlock(&p->lock);
            free(j);
            return -1;
        }
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            int e = errno;
            pthread_mutex_unlock(&p->lock);
            kiln_error_set(err, e, "layer entry '%.512s': duplicating its directory's fd",
                           j->f.entry);
            free(j);
            return -1;
        }
        p->dir = kiln_xmalloc(sizeof(*p->dir));
        p->ndirs++;
        p->dir->fd = fd;
        p->dir->refs = 1;
        p->dir_src = dirfd;
    }
    j->dir = p->dir;
    p->dir->refs++;
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued_bytes += j->f.len;
    p->queued_files++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void kiln_unpack_pool_forget_dir(kiln_unpack_pool_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    dir_unref(p, p->dir);
    p->dir = NULL;
    p->dir_src = -1;
    pthread_mutex_unlock(&p->lock);
}

int kiln_unpack_pool_behind(kiln_unpack_pool_t *p)
{
    pthread_mutex_lock(&p->lock);
    int behind = p->queued_files > (size_t)p->nthreads * BEHIND_FILES;
    pthread_mutex_unlock(&p->lock);
    return behind;
}

int kiln_unpack_pool_drain(kiln_unpack_pool_t *p, kiln_error_t *err)
{
    if (p == NULL)
        return 0;
    pthread_mutex_lock(&p->lock);
    while (p->queued_files > 0 && p->started > 0)
        pthread_cond_wait(&p->room, &p->lock);
    int r = p->failed ? failed_err(p, err) : 0;
    pthread_mutex_unlock(&p->lock);
    return r;
}

void kiln_unpack_pool_free(kiln_unpack_pool_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->th[i], NULL);
    for (struct job *j = p->head, *next; j != NULL; j = next) {
        next = j->next;
        dir_unref(p, j->dir);
        free(j);
    }
    dir_unref(p, p->dir);
    free(p->reserved);
    pthread_cond_destroy(&p->room);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
