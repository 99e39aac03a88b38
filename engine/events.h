/* kiln — the engine's typed step events and their two wire forms.
 *
 * Each step of a build reports start (its name), log (a line of its output or a note),
 * cached (a cache hit), done (its seconds) or error (its message). `kiln build` shows them
 * as plain lines ("#N text", "#N CACHED", "#N DONE 1.2s", "#N ERROR: text") or, with
 * --progress=json, one JSON object per line:
 *   {"step": N, "event": "start|log|cached|done|error", "text": …, "seconds": …, "line": L}
 * ("text", "seconds" and "line" only when set; "line" is the Dockerfile line of a start
 * event's instruction, so a renderer can name FILE:LINE of the step that failed). The JSON form is
 * what a job's event stream reads back (kiln_step_event_parse), so the two sides share one codec.
 */
#ifndef KILN_ENGINE_EVENTS_H
#define KILN_ENGINE_EVENTS_H

typedef enum kiln_step_event_kind {
    KILN_STEP_EVENT_START = 0,
    KILN_STEP_EVENT_LOG,
    KILN_STEP_EVENT_CACHED,
    KILN_STEP_EVENT_DONE,
    KILN_STEP_EVENT_ERROR,
} kiln_step_event_kind_t;

typedef struct kiln_step_event {
    int step;
    kiln_step_event_kind_t kind;
    char *text;     /* NULL: none (owned by the caller, or by parse's result) */
    double seconds; /* < 0: none */
    int line;       /* start: the instruction's first Dockerfile line; 0: none */
} kiln_step_event_t;

/* "start", "log", "cached", "done", "error". */
const char *kiln_step_event_name(kiln_step_event_kind_t kind);

/* The kind named name; -1 for anything else. */
int kiln_step_event_kind(const char *name, kiln_step_event_kind_t *out);

/* The JSON line of ev (compact, ASCII, no newline), malloc'ed; NULL when out of memory. */
char *kiln_step_event_json(const kiln_step_event_t *ev);

/* The plain line of ev, malloc'ed. */
char *kiln_step_event_plain(const kiln_step_event_t *ev);

/* Reads one JSON line into *out (text malloc'ed, freed by kiln_step_event_clear); -1 when
 * line is not a step event (not JSON, no integer "step", unknown "event", a "text" that is
 * not a string, a "seconds" that is not a number or a "line" that is not a positive integer). */
int kiln_step_event_parse(const char *line, kiln_step_event_t *out);

void kiln_step_event_clear(kiln_step_event_t *ev);

#endif
