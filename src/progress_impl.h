/* kiln — the progress renderer's state, shared by its event side (src/progress.c) and its
 * terminal frames (src/progress_tty.c). Not for other users. */
#ifndef KILN_SRC_PROGRESS_IMPL_H
#define KILN_SRC_PROGRESS_IMPL_H

#include <pthread.h>
#include <stdbool.h>

#include "src/progress.h"
#include "utils/buf.h"

/* Most steps a build may number (a later number is not shown). */
#define PROGRESS_MAX_STEPS 100000

enum { PSTEP_NONE = 0, PSTEP_RUNNING, PSTEP_DONE, PSTEP_CACHED, PSTEP_ERROR };

typedef struct pstep {
    char *title;
    int line;
    int state;
    double started, seconds;
    /* the last output lines (ring: the oldest at head), raw; freed when the step ends well */
    char *tail[KILN_PROGRESS_TAIL_LINES];
    size_t tail_n, tail_head;
    size_t n_out; /* output lines seen */
} pstep_t;

struct kiln_progress {
    kiln_progress_opts_t o;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_on, stop, finished;
    double t0;
    pstep_t *steps; /* by step number; [0] unused */
    size_t n_alloc, max_step;
    size_t n_started, n_finished, n_cached;
    int failed_step; /* the first step that failed; 0: none */
    char *phase;
    kiln_buf_t pending; /* tty: finished lines to print above the live region */
    size_t live_lines;  /* tty: lines of the live region on the screen now */
    bool dirty;
};

double kiln_progress_now(kiln_progress_t *p);
/* "41.2 MB compressed, 112.3 MB uncompressed". */
void kiln_progress_size_text(const kiln_progress_result_t *res, char *buf, size_t len);
void kiln_progress_out(kiln_progress_t *p, const char *data, size_t len);
/* The i-th (0 = oldest) kept output line of s. */
const char *kiln_progress_tail_line(const pstep_t *s, size_t i);

/* tty (src/progress_tty.c), with p's lock held. */
void kiln_progress_tty_finished_line(kiln_progress_t *p, const pstep_t *s);
void kiln_progress_tty_note(kiln_progress_t *p, const char *line);
void kiln_progress_tty_frame(kiln_progress_t *p);
void kiln_progress_tty_finish(kiln_progress_t *p, const kiln_progress_result_t *res);
/* Appends text as a terminal shows it safely: control characters and escape sequences
 * dropped, what a carriage return overwrote dropped, at most cols columns (0: no limit). */
void kiln_progress_sanitize(kiln_buf_t *b, const char *text, size_t cols);
/* How job/explain introduces a failing step's last lines in the user's terms. */
#define KILN_PROGRESS_TAIL_HEADING "the last lines of its output:"
/* "ERROR: message\n" into b, each line made safe; the failing step's output lines left out
 * when they were printed before (s != NULL: its kept lines, and the heading above them said
 * as "its output is above (#N)"), and the engine's "Dockerfile:" named as the user's file. */
void kiln_progress_error_message(kiln_progress_t *p, kiln_buf_t *b, const pstep_t *s,
                                 const char *msg);
/* The columns text takes on a terminal (wide characters count 2). */
size_t kiln_progress_cols(const char *text);

#endif
