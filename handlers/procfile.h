/* kiln — Procfile ("name: command" lines, as Heroku defines them). */
#ifndef KILN_HANDLERS_PROCFILE_H
#define KILN_HANDLERS_PROCFILE_H

#include <stddef.h>

#include "handlers/detect.h"
#include "handlers/plan.h"
#include "utils/error.h"

/* Finds process type `name` in Procfile text. Returns 1 and sets *cmd
 * (malloc'ed) when found, 0 when absent, -1 when a line is malformed (the
 * message names the line number). */
int kiln_procfile_get(const char *text, size_t len, const char *name, char **cmd,
                      kiln_error_t *err);

/* Reads the tree's Procfile: returns 1 with its "web" command, 0 when there is
 * no Procfile or no web line, -1 on error. */
int kiln_procfile_web(const kiln_detect_ctx_t *ctx, char **cmd, kiln_error_t *err);

/* The "procfile" provider: a Procfile alone, run on the base image. */
int kiln_procfile_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);

#endif
