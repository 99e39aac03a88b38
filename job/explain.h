/* kiln — an auto build's failing step in the user's terms.
 *
 * The engine reports a failing RUN of the Dockerfile rendered from the plan
 * ("Dockerfile:N: process "RUN … npm run build" did not complete successfully:
 * exit code: 3" and the step's last output lines). The user never wrote that
 * Dockerfile: this says which of the plan's steps failed (install, build,
 * package manager setup, production prune), the command as the user knows it,
 * where it comes from (the package.json script it runs, or why the plan chose
 * it), its exit status and the last lines of its output. */
#ifndef KILN_JOB_EXPLAIN_H
#define KILN_JOB_EXPLAIN_H

#include "handlers/plan.h"

/* The message for the engine's failure text msg of an auto build of plan
 * whose app directory is app_dir (its package.json is read inside it, never
 * through a link leaving it; NULL: not read). malloc'ed; NULL when msg is not
 * a failing step of the plan (the engine's message is then the right one). */
char *kiln_explain_step_failure(const kiln_plan_t *plan, const char *app_dir, const char *msg);

#endif
