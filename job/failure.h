/* kiln — the failing step of a build, as its record and completion event carry it: its name
 * ("[stage-0 2/3] RUN make"), the instruction, the Dockerfile and line, a RUN's exit status
 * and the last KILN_JOB_FAILURE_TAIL lines of its output. Gathered from the engine's typed
 * step events as they come (only the steps running keep their last lines), so a server build
 * that failed says where and why without anyone reading its log. */
#ifndef KILN_JOB_FAILURE_H
#define KILN_JOB_FAILURE_H

#include <jansson.h>

#include "engine/events.h"

#define KILN_JOB_FAILURE_TAIL 20
/* a line of output kept is cut at this many bytes */
#define KILN_JOB_FAILURE_LINE_MAX 1024

typedef struct kiln_job_failure kiln_job_failure_t;

kiln_job_failure_t *kiln_job_failure_new(void);
void kiln_job_failure_free(kiln_job_failure_t *f);

/* Takes one step event (start: name and line; log: a line of output; cached/done: the step
 * ended well; error: the step failed, the first such one is the build's failing step). Safe from
 * several threads at once (parallel stages each report their steps). */
void kiln_job_failure_step(kiln_job_failure_t *f, const kiln_step_event_t *ev);

/* The failing step as JSON (new reference): {"step": N, "name", "instruction", "file",
 * "line", "exit_status", "error", "log": [last lines]} ("line" and "exit_status" when
 * known: exit_status > 0), or NULL when no step failed. dockerfile names the file. */
json_t *kiln_job_failure_json(const kiln_job_failure_t *f, const char *dockerfile, int exit_status);

#endif
