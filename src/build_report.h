/* kiln build — what a build reports besides its terminal lines: the --metadata-file (image,
 * step timings, completion event, notifications), the completion event's outputs as each
 * exporter writes them, and, for whoever runs the build (kiln job run: --events-fd), its
 * typed events as JSON lines: phase changes (planning, building, exporting, pushing,
 * uploading, notifying), step events (engine/events.h) and its error with a code
 * (job/stream.h: no_space, disk_limit, build_failed), never read from a log line. */
#ifndef KILN_SRC_BUILD_REPORT_H
#define KILN_SRC_BUILD_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "engine/build.h"
#include "engine/events.h"
#include "job/auto.h"
#include "oci/store.h"
#include "src/build_opts.h"
#include "utils/error.h"

/* Writes the --metadata-file: the image (res NULL when the build failed), step timings, the
 * completion event ev, what each notification did and the bytes pushed. */
int kiln_build_write_metadata(const kiln_build_opts_t *o, const kiln_build_result_t *res,
                              json_t *ev, json_t *notified, uint64_t pushed, kiln_error_t *err);

/* Writes every --output through its exporter (export/): the function zips of an auto-build
 * first, then the others in order, each announced as a phase on o->events_fd; their results
 * go into the completion event ev; *pushed grows by the blob bytes uploaded. */
int kiln_build_do_outputs(const kiln_build_opts_t *o, const kiln_build_request_t *req,
                          const char *root, kiln_store_t *store, const kiln_build_result_t *res,
                          const kiln_auto_build_t *ab, json_t *ev, uint64_t *pushed,
                          kiln_error_t *err);

/* Typed events on fd (nothing when fd < 0): a phase, a step event, the build's error. */
void kiln_build_report_phase(int fd, const char *phase);
/* The image's size (compressed, uncompressed) on the completion event (the build record)
 * and on the terminal; a layer that cannot be measured only leaves the size out. */
void kiln_build_report_size(const kiln_build_opts_t *o, kiln_store_t *store,
                            const kiln_build_result_t *res, json_t *ev);
void kiln_build_report_step(int fd, const kiln_step_event_t *ev);
void kiln_build_report_error(int fd, const char *code, const char *message);

#endif
