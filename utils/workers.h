/* kiln — a few threads working through a list: item i of n goes to fn on whichever thread
 * is free, each thread with a local value of its own (an HTTP connection); the first
 * failure stops the others taking new items and is the result. */
#ifndef KILN_UTILS_WORKERS_H
#define KILN_UTILS_WORKERS_H

#include <stddef.h>

#include "utils/error.h"

#define KILN_WORKERS_MAX 32

typedef int (*kiln_workers_fn)(void *ud, void *local, size_t i, kiln_error_t *err);

/* Runs fn(ud, local, i) for i in 0..n-1 on up to threads threads (1..KILN_WORKERS_MAX; on
 * the caller's thread when none can start). local_new/local_free may be NULL. Returns 0,
 * or -1 with err the first failure's. */
int kiln_workers_run(size_t n, unsigned threads, kiln_workers_fn fn, void *(*local_new)(void),
                     void (*local_free)(void *), void *ud, kiln_error_t *err);

#endif
