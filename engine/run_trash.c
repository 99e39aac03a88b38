/* kiln — the spent work dirs of RUN steps, removed by a thread off the steps' path. */
#include "engine/run_trash.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "engine/strv.h"
#include "utils/fs.h"
#include "utils/mem.h"

struct kiln_run_trash {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    strv_t queue; /* paths waiting for removal, under lock */
    pthread_t thread;
    bool on, stop;
};

kiln_run_trash_t *kiln_run_trash_new(void)
{
    kiln_run_trash_t *t = kiln_xzalloc(sizeof(*t));

    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    return t;
}

/* The thread: removes the queued trees one at a time until told to stop with none left. */
static void *trash_main(void *arg)
{
    kiln_run_trash_t *t = arg;

    pthread_mutex_lock(&t->lock);
    for (;;) {
        char *path;
        if (t->queue.n == 0) {
            if (t->stop)
                break;
            pthread_cond_wait(&t->cond, &t->lock);
            continue;
        }
        path = t->queue.v[--t->queue.n];
        t->queue.v[t->queue.n] = NULL;
        pthread_mutex_unlock(&t->lock);
        kiln_fs_rm_rf(path, NULL); /* inside the build's work dir, removed with it anyway */
        free(path);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int kiln_run_trash_move(kiln_run_trash_t *t, const char *dir, const char *trash_path)
{
    if (rename(dir, trash_path) < 0) {
        struct stat st;
        int e = errno;
        /* ENOENT also when trash_path's parent is missing: only a missing dir is done */
        if (e == ENOENT && lstat(dir, &st) < 0 && errno == ENOENT)
            return 0;
        errno = e;
        return -1;
    }
    pthread_mutex_lock(&t->lock);
    strv_add(&t->queue, kiln_xstrdup(trash_path));
    if (!t->on && !t->stop)
        t->on = pthread_create(&t->thread, NULL, trash_main, t) == 0;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void kiln_run_trash_free(kiln_run_trash_t *t)
{
    bool on;

    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    on = t->on;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (on)
        pthread_join(t->thread, NULL);
    /* no thread could be started: removed here */
    for (size_t i = 0; i < t->queue.n; i++)
        kiln_fs_rm_rf(t->queue.v[i], NULL);
    strv_clear(&t->queue);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
