/* kiln — what handlers/workspace.c reads of a Node workspace, shared with the command
 * builders of handlers/workspace_cmd.c. Internal to handlers/. */
#ifndef KILN_HANDLERS_WORKSPACE_INT_H
#define KILN_HANDLERS_WORKSPACE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "handlers/plan.h"
#include "handlers/tree.h"

/* Most workspace packages a plan takes (each is a manifest copied before the install). */
#define KILN_WS_MAX_PACKAGES 256

typedef struct kiln_ws_pkg {
    char *path; /* "packages/lib" */
    char *name; /* package.json name, or NULL */
    json_t *pkg;
    bool needed;
    bool visiting;
} kiln_ws_pkg_t;

/* The monorepo tool that runs the build, when the root has one. */
typedef enum kiln_ws_tool {
    KILN_WS_TOOL_NONE = 0,
    KILN_WS_TOOL_TURBO, /* turbo.json */
    KILN_WS_TOOL_NX,    /* nx.json */
} kiln_ws_tool_t;

typedef struct kiln_ws {
    kiln_ws_pkg_t p[KILN_WS_MAX_PACKAGES];
    size_t n;
    size_t order[KILN_WS_MAX_PACKAGES]; /* needed packages, dependencies first */
    size_t n_order;
    json_t *root_pkg;    /* the root's package.json */
    kiln_ws_tool_t tool; /* Turborepo or Nx at the root */
    bool turbo_v1;       /* turbo.json with "pipeline" (Turborepo 1) */
    size_t dirs_walked;  /* directories read expanding the patterns (bounded) */
} kiln_ws_t;

/* The build command of the app `app` of `w` with the package manager `pm` (Turborepo's
 * turbo run build --filter=NAME..., Nx's nx run NAME:build, pnpm --filter NAME...,
 * else each needed package's build script, dependencies first), followed by the
 * removal of the packages the app does not need and of the tools' per-package logs.
 * NULL when there is nothing to run. Adds the tool's env and caches to `plan`. */
char *kiln_ws_build_command(const kiln_ws_t *w, const kiln_ws_pkg_t *app, const char *pm,
                            kiln_plan_t *plan, kiln_error_t *err);

/* The production install of the app and its workspace dependencies only, from the
 * deps stage (npm ci --omit=dev -w, pnpm install --prod --filter NAME..., yarn
 * workspaces focus --production NAME), or NULL to keep the root plan's prune. */
char *kiln_ws_prune_command(const kiln_ws_t *w, const kiln_ws_pkg_t *app, const char *pm,
                            const kiln_plan_t *plan);

#endif
