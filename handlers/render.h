/* kiln — a plan rendered into the multi-stage Dockerfile that the engine runs (planning
 * only: nothing is fetched or run here).
 *
 * Stages of the rendered Dockerfile:
 *   deps     FROM the build image: the dependency manifests, then the install
 *            command with the plan's cache mounts (cached until a manifest
 *            changes);
 *   build    FROM deps: the app and the build command; relative deps paths
 *            (node_modules) are removed so the app layer does not carry them;
 *   run      (image output) FROM the run image: a deps layer, an app layer,
 *            ENV PORT + EXPOSE, CMD from the start command;
 *   site     (static output) FROM scratch holding only the built site dir;
 *   function (function output) FROM scratch: the function dir + production deps.
 * A toolchain (a Node major other than the image's) comes from the named
 * build context "node" (`--build-context node=DIR`) and is copied to its prefix. */
#ifndef KILN_HANDLERS_RENDER_H
#define KILN_HANDLERS_RENDER_H

#include <stddef.h>

#include "handlers/plan.h"
#include "utils/error.h"

typedef struct kiln_render_opts {
    const char *const *secret_ids; /* build secrets to mount into the install step */
    size_t n_secrets;
} kiln_render_opts_t;

/* Renders the plan as a Dockerfile (malloc'ed). Fails when a command, path or
 * image name cannot be written safely (control characters). */
int kiln_render_dockerfile(const kiln_plan_t *plan, const kiln_render_opts_t *opts, char **out,
                           kiln_error_t *err);

/* The Dockerfile target building each output kind: "run", "site", "function". */
const char *kiln_render_target(kiln_plan_output_t kind);

/* True when a start command is a program's absolute path and plain words: the image runs it
 * without a shell (exec form), as a run image without one (minimal-run) needs. */
bool kiln_render_is_exec(const char *cmd);

#endif
