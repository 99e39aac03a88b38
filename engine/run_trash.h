/* kiln — the spent work dirs of RUN steps, removed by a thread off the steps' path.
 *
 * Each overlay mount makes `work/work` in its work dir (with the volatile marker
 * `work/incompat/volatile/dirty`) and removes the last mount's first. On a disk mounted with
 * `discard` every directory removed is a synchronous round trip to the device (~60 us here),
 * three a step, inside the next step's mount or kiln's cleanup. A stage's next RUN instead
 * finds its work dir empty: the spent `work/work` is renamed into the build's work dir (same
 * filesystem, one rename) and removed here while the next steps run. Whatever is queued when
 * the build ends is removed before kiln_run_trash_free returns. */
#ifndef KILN_ENGINE_RUN_TRASH_H
#define KILN_ENGINE_RUN_TRASH_H

typedef struct kiln_run_trash kiln_run_trash_t;

/* An empty queue; its thread starts with the first entry. Never NULL. */
kiln_run_trash_t *kiln_run_trash_new(void);

/* Moves dir (a spent work/work) to trash_path and queues it for removal. Returns 0 (dir is
 * gone from where it was, or was never there), or -1 with errno set when it cannot be moved
 * (the caller removes it itself). */
int kiln_run_trash_move(kiln_run_trash_t *t, const char *dir, const char *trash_path);

/* Removes what is queued, stops the thread and frees the queue. NULL is ignored. */
void kiln_run_trash_free(kiln_run_trash_t *t);

#endif
