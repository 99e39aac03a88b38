/* kiln build — a build job's events (job/run.h) rendered for whoever ran it: on the terminal
 * (the engine's progress lines, notes, warnings, the failure once: "ERROR: …" for a step's,
 * "kiln: …" for anything else) and, for whoever runs the build as a child (kiln job run:
 * --events-fd), as typed JSON lines: phase changes (checkout, planning, building, exporting,
 * pushing, uploading, notifying), step events (engine/events.h) and the error with its code
 * (job/stream.h: source_failed, no_space, disk_limit, build_failed), never read from a log
 * line. */
#ifndef KILN_SRC_BUILD_REPORT_H
#define KILN_SRC_BUILD_REPORT_H

#include "engine/events.h"
#include "job/run.h"
#include "src/build_opts.h"

/* The job's event callback (ud: the kiln_build_opts_t whose events_fd and progress apply). */
void kiln_build_render(void *ud, const kiln_job_run_event_t *ev);

/* The job run options of kiln build's options (the operator's policy, root, metadata file,
 * progress, environment), rendering through kiln_build_render with o as its ud. */
void kiln_build_run_opts(const kiln_build_opts_t *o, kiln_job_run_opts_t *ro);

/* Typed events on fd (nothing when fd < 0): a phase, a step event, the build's error. */
void kiln_build_report_phase(int fd, const char *phase);
void kiln_build_report_step(int fd, const kiln_step_event_t *ev);
void kiln_build_report_error(int fd, const char *code, const char *message);

#endif
