/* kiln — a member of a uv workspace built with --subdir: the repository root is the
 * context, uv.lock and the workspace's pyproject.toml files are the deps stage's manifests,
 * and uv installs the member (--package NAME) and the workspace packages it needs. */
#ifndef KILN_HANDLERS_PYTHON_WORKSPACE_H
#define KILN_HANDLERS_PYTHON_WORKSPACE_H

#include "handlers/detect.h"
#include "handlers/plan.h"
#include "utils/error.h"

/* Most member directories of a workspace kiln reads. */
#define KILN_UV_MAX_MEMBERS 256

/* When `plan` is a Python plan of `subdir` (detected on its own) and `root` is a uv workspace
 * (uv.lock, [tool.uv.workspace] members) that has subdir as a member, rewrites the plan for
 * the root context and returns 1; 0 when it is not such a member (the plan stays); -1 with err
 * naming the file at fault. */
int kiln_python_workspace_apply(const char *root, const char *subdir,
                                const kiln_detect_opts_t *opts, kiln_plan_t *plan,
                                kiln_error_t *err);

#endif
