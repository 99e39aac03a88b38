/* kiln — what the Python provider reads from a project's manifests: pyproject.toml
 * (PEP 621 [project], [build-system], [tool.poetry], [tool.uv], [tool.pdm]), Pipfile,
 * Pipfile.lock and requirements files: the runtime dependency names, the Python
 * constraint, whether the project installs as a package, and the local path
 * dependencies (each checked to stay inside the source). Reading only: nothing runs. */
#ifndef KILN_HANDLERS_PYPROJECT_H
#define KILN_HANDLERS_PYPROJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

/* Most dependency names and local paths kept. */
#define KILN_PYDEPS_MAX 512
#define KILN_PYPATHS_MAX 16

typedef struct kiln_pyproject {
    char *requires_python; /* the constraint, or NULL */
    char *python_source;   /* where it came from: "pyproject.toml requires-python", … */
    bool build_system;     /* [build-system] is there */
    bool package;          /* it installs as a package (build-system, not package-mode = false) */
    bool poetry;           /* [tool.poetry] */
    bool pdm;              /* [tool.pdm] */
    bool uv;               /* [tool.uv] */
    char *deps[KILN_PYDEPS_MAX]; /* runtime dependency names, normalised ("django", "uvicorn") */
    size_t n_deps;
    char *paths[KILN_PYPATHS_MAX]; /* local path dependencies inside the source, normalised,
                                    * relative, ending in '/' when a directory is meant */
    size_t n_paths;
    bool self_ref; /* a requirements file installs the project itself ("-e .", ".") */
} kiln_pyproject_t;

void kiln_pyproject_free(kiln_pyproject_t *p);

/* Reads pyproject.toml (`file` names it in messages). Fails on a TOML error (naming the
 * line) and on a local path dependency that leaves the source (naming the dependency and
 * its path). */
int kiln_pyproject_read(kiln_pyproject_t *p, const char *file, const char *text, size_t len,
                        kiln_error_t *err);
/* Reads a Pipfile (TOML): [packages] names, [requires] python_version / python_full_version,
 * path packages. */
int kiln_pyproject_read_pipfile(kiln_pyproject_t *p, const char *file, const char *text, size_t len,
                                kiln_error_t *err);
/* Reads a requirements file: names, "-e PATH" / "./PATH" / "file:PATH" lines as local paths,
 * "-r FILE" / "-c FILE" includes as local paths (their files are needed to install). */
int kiln_pyproject_read_requirements(kiln_pyproject_t *p, const char *file, const char *text,
                                     kiln_error_t *err);

/* True when `name` (any spelling: "Flask", "flask") is a runtime dependency. */
bool kiln_pyproject_has(const kiln_pyproject_t *p, const char *name);

/* The PEP 503 form of a project name (lower case, runs of "-_." as one "-"); malloc'ed. */
char *kiln_pyproject_normalize(const char *name, size_t len);

/* Checks a local path that `file` names for dependency `dep`: relative and inside the
 * source after "..", "." and "//" are resolved lexically. Returns the normalised path
 * (malloc'ed), or NULL with err naming the file, the dependency and the path. */
char *kiln_pyproject_local_path(const char *file, const char *dep, const char *path,
                                kiln_error_t *err);

#endif
