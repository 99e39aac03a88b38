/* kiln — a list worked through by a few threads (see workers.h). */
#include "utils/workers.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct pool {
    size_t n;
    atomic_size_t next;
    atomic_int failed;
    kiln_workers_fn fn;
    void *(*local_new)(void);
    void (*local_free)(void *);
    void *ud;
    pthread_mutex_t lock;
    kiln_error_t err;
} pool_t;

static void *worker(void *arg)
{
    pool_t *p = arg;
    void *local = p->local_new ? p->local_new() : NULL;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        kiln_error_t e = {0};
        if (i >= p->n || atomic_load(&p->failed))
            break;
        if (p->fn(p->ud, local, i, &e) < 0) {
            pthread_mutex_lock(&p->lock);
            if (!atomic_exchange(&p->failed, 1))
                p->err = e;
            pthread_mutex_unlock(&p->lock);
            break;
        }
    }
    if (local && p->local_free)
        p->local_free(local);
    return NULL;
}

int kiln_workers_run(size_t n, unsigned threads, kiln_workers_fn fn, void *(*local_new)(void),
                     void (*local_free)(void *), void *ud, kiln_error_t *err)
{
    pool_t p = {.n = n, .fn = fn, .local_new = local_new, .local_free = local_free, .ud = ud};
    pthread_t th[KILN_WORKERS_MAX];
    unsigned started = 0;
    if (n == 0)
        return 0;
    if (threads == 0)
        threads = 1;
    if (threads > KILN_WORKERS_MAX)
        threads = KILN_WORKERS_MAX;
    if (threads > n)
        threads = (unsigned)n;
    pthread_mutex_init(&p.lock, NULL);
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&th[started], NULL, worker, &p) == 0)
            started++;
    if (started == 0)
        worker(&p);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p.lock);
    if (atomic_load(&p.failed)) {
        if (err)
            *err = p.err;
        return -1;
    }
    return 0;
}
