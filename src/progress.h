/* kiln — the build's progress on the terminal: a renderer of the engine's typed step events
 * (engine/events.h), the build's phases and notes, and its result, in one of four forms:
 *
 *   tty    a live view in the style of buildx: the finished steps scroll up as one line each
 *          (" => CACHED [a 2/3] RUN make   0.0s"), below them a region redrawn in place with
 *          a header ("[+] Building 3.2s (4/6)"), one line per running step (parallel stages
 *          each have theirs) with its elapsed time and its last output lines; at the end a
 *          summary (steps, cache hits, the slowest steps, the image's digest and size), or the
 *          failing step's instruction with its FILE:LINE and its output, once.
 *   plain  the log: "#N [stage 1/2] RUN make", "#N output", "#N CACHED", "#N DONE 1.2s",
 *          "#N ERROR" (the error's message, with the step's last lines, comes once at the end).
 *   json   one JSON object per line: the engine's step events as engine/events.h writes them,
 *          {"event":"note","text"} for the build's own lines, {"event":"phase","phase"} and
 *          a last {"event":"result","status","digest","seconds","error","image_size"}.
 *   quiet  nothing.
 *
 * Events may come from several threads (stages run in parallel): every call takes the
 * renderer's lock. In tty mode nothing is drawn by an event; kiln_progress_tick draws a frame
 * (a thread calls it every 100 ms when the renderer was made with a ticker), so the cost of a
 * step's output line is a copy into a ring of its last lines. Text from a step is untrusted:
 * the tty form drops its control characters and escape sequences before they reach the
 * terminal. */
#ifndef KILN_SRC_PROGRESS_H
#define KILN_SRC_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/build.h"
#include "engine/events.h"

/* Lines of a running step's output shown under it (tty). */
#define KILN_PROGRESS_LIVE_LINES 6
/* Lines of each step's output kept for its failure (the engine's error keeps as many). */
#define KILN_PROGRESS_TAIL_LINES 20
/* Bytes of one line of output kept. */
#define KILN_PROGRESS_LINE_MAX 512

typedef struct kiln_progress kiln_progress_t;

typedef struct kiln_progress_opts {
    kiln_build_progress_t mode;
    /* Where the frames go: fd (stderr when write is NULL), whose terminal size is read at
     * each frame when it is one; or write(write_ud, data, len) with width x height. */
    int fd;
    void (*write)(void *ud, const char *data, size_t len);
    void *write_ud;
    int width, height; /* fixed terminal size (0: from fd, else 80x24) */
    /* The clock in seconds (NULL: CLOCK_MONOTONIC). */
    double (*now)(void *ud);
    void *now_ud;
    /* The Dockerfile's name for FILE:LINE ("Dockerfile" when NULL). */
    const char *dockerfile;
    /* tty: a thread draws a frame every 100 ms until kiln_progress_finish. */
    int ticker;
} kiln_progress_opts_t;

/* The build's end, for the summary. */
typedef struct kiln_progress_result {
    int ok;
    const char *error;  /* failed: the whole message (its step's last lines included) */
    const char *digest; /* ok: the image's manifest digest, or NULL */
    uint64_t size_compressed, size_uncompressed; /* 0, 0: unknown */
    int user_terms; /* the error is told in the user's terms (an auto build): no FILE:LINE */
} kiln_progress_result_t;

/* Whether fd is a terminal a live view can draw on (not TERM=dumb). */
int kiln_progress_is_tty(int fd);

/* The mode --progress MODE names ("auto" is tty when is_tty, else plain; "rawjson" is json);
 * -1 for anything else. */
int kiln_progress_mode_parse(const char *name, int is_tty, kiln_build_progress_t *out);

/* A renderer (never NULL: allocation failure aborts). The clock starts now. */
kiln_progress_t *kiln_progress_new(const kiln_progress_opts_t *opts);

/* One step event (engine/events.h). */
void kiln_progress_step(kiln_progress_t *p, const kiln_step_event_t *ev);

/* A line of the build's own (not a step's): a note printed as it is in plain mode. */
void kiln_progress_note(kiln_progress_t *p, const char *line);

/* The build's phase (job/stream.h: planning, building, exporting, pushing, …). */
void kiln_progress_phase(kiln_progress_t *p, const char *phase);

/* tty: draws a frame when anything changed or a step is running (no-op in other modes). */
void kiln_progress_tick(kiln_progress_t *p);

/* The last frame and the summary; stops the ticker. Called once. */
void kiln_progress_finish(kiln_progress_t *p, const kiln_progress_result_t *res);

/* The engine's callbacks (kiln_build_request_t.event and .log) with p as their context. */
void kiln_progress_event_cb(void *p, const kiln_step_event_t *ev);
void kiln_progress_log_cb(void *p, const char *line);

void kiln_progress_free(kiln_progress_t *p);

#endif
