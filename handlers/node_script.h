/* kiln — a Node app's start command as the shell text it runs, without a package manager.
 *
 * kiln's Node run image carries the toolchain's node binary and nothing of npm, pnpm,
 * yarn or bun (they are build tools: tens of MB, and Debian's npm dragged its own Node
 * 18 in). A start command that calls one (`npm start`, a Procfile's `yarn serve`,
 * Nest's `npm run start:prod`) is rewritten at plan time into what the manager would
 * run, as Cloud Native Buildpacks do:
 *   npm start / npm run X / yarn [run] X / pnpm [run] X / bun run X (X a script)
 *            → the script's text (with its preX / postX hooks, but for yarn Berry,
 *              which runs none), itself expanded; arguments after the name (and
 *              npm's `--`) are appended to a one-command script
 *   npx / pnpx / bunx CMD, npm exec CMD, yarn / pnpm exec CMD, yarn / pnpm BIN
 *            → CMD (the run image has node_modules/.bin on PATH)
 * Only unquoted words at a command's start count (after `&&`, `||`, `;`, `|`, `&`, `(`
 * and leading VAR=value assignments, which are then exported to the expansion). A call
 * that needs the manager itself (`npm install`, a script that is not there, a loop of
 * scripts) fails the plan naming the script and what to do instead; bun, when it is the
 * project's manager, is the exception: the run image then carries its binary. */
#ifndef KILN_HANDLERS_NODE_SCRIPT_H
#define KILN_HANDLERS_NODE_SCRIPT_H

#include <jansson.h>
#include <stdbool.h>

#include "utils/error.h"

/* The start command `cmd` with its package manager calls expanded from package.json
 * `pkg` (malloc'ed in *out; a copy when there are none). `pm` is the plan's package
 * manager ("npm", "pnpm", "yarn", "yarn-berry", "bun"). Under bun, whose binary the run
 * image can carry, a call of bun itself (`bun run index.ts`) is kept and sets
 * *needs_bun (when needs_bun is not NULL; else it is refused). *event (when event is not
 * NULL) is the first script the command runs (malloc'ed: "start" for `npm start`,
 * "start:prod" for `npm run start:prod`; NULL when it runs none), the npm_lifecycle_event
 * the manager would have set. Returns 0 or -1. */
int kiln_node_script_expand(json_t *pkg, const char *pm, const char *cmd, char **out,
                            bool *needs_bun, char **event, kiln_error_t *err);

#endif
