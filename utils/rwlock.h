/* kiln — a reader-writer lock whose writer is not starved by a steady stream of readers
 * (glibc's default prefers readers: a writer could wait as long as readers keep overlapping). */
#ifndef KILN_UTILS_RWLOCK_H
#define KILN_UTILS_RWLOCK_H

#include <pthread.h>

static inline void kiln_rwlock_init_writer_first(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
}

#endif
