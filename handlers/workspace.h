/* kiln — monorepos: a Node app inside an npm/yarn/pnpm/bun workspace.
 *
 * With --subdir naming one workspace package, the build context is the repository
 * root: the install runs there with the root lockfile (the root's package manager,
 * its config files and every workspace's package.json are the deps stage's
 * manifests), the build runs for the app and the workspace packages it depends on
 * (in dependency order; pnpm through its --filter NAME...), and the other
 * workspace packages are removed before the run image takes the tree. */
#ifndef KILN_HANDLERS_WORKSPACE_H
#define KILN_HANDLERS_WORKSPACE_H

#include "handlers/detect.h"

/* Adapts `plan` (detected on root/subdir) when `root` is a workspace root and `subdir`
 * one of its packages. Returns 1 when adapted (the context becomes `root`), 0 when
 * `root` holds no workspace with that package (the plan is left as it was), -1 on
 * error (a workspace manifest that cannot be read, a package name unfit for a shell). */
int kiln_workspace_apply(const char *root, const char *subdir, const kiln_detect_opts_t *opts,
                         kiln_plan_t *plan, kiln_error_t *err);

#endif
