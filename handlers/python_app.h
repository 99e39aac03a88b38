/* kiln — the Python provider's web app and function detection: Django (settings module,
 * WSGI module, collectstatic), Flask, FastAPI / Starlette, any WSGI/ASGI `app`, a plain
 * script; the Lambda handler. Fills the plan's framework, start command, build step
 * and reasons. */
#ifndef KILN_HANDLERS_PYTHON_APP_H
#define KILN_HANDLERS_PYTHON_APP_H

#include "handlers/detect.h"
#include "handlers/pyproject.h"

/* The servers kiln adds to the venv when a framework needs one the project does not list
 * (pinned: a build never picks up a new release by surprise). */
#define KILN_PY_GUNICORN "gunicorn==27.0.1"
#define KILN_PY_UVICORN "uvicorn==0.55.0"

/* Decides framework, start command, build step (Django's collectstatic) and function
 * handler from the source and its dependencies (`deps`, whose file is `deps_file`).
 * *add is set to the server package to add to the venv (KILN_PY_GUNICORN, …) or NULL.
 * Returns 0, or -1 when a file cannot be read. */
int kiln_python_app(const kiln_detect_ctx_t *ctx, const kiln_pyproject_t *deps,
                    const char *deps_file, kiln_plan_t *plan, const char **add, kiln_error_t *err);

#endif
