/* kiln — Python version constraints: does an interpreter version satisfy a project's
 * requires-python (PEP 440 specifiers: ==, !=, <=, >=, <, >, ~=, ===, ".*" wildcards,
 * comma-joined) or a Poetry constraint (^, ~, *, "||" alternatives, space- or
 * comma-joined)? Pre-, post- and dev-release parts of a specifier's version are ignored
 * (an interpreter is compared by its release numbers). */
#ifndef KILN_HANDLERS_PYSPEC_H
#define KILN_HANDLERS_PYSPEC_H

#include "utils/error.h"

/* Longest constraint read. */
#define KILN_PYSPEC_MAX 512

/* 1 when `version` ("3.11.2") satisfies `spec`, 0 when it does not, -1 with err set when
 * `spec` cannot be read (the message quotes it). */
int kiln_pyspec_allows(const char *spec, const char *version, kiln_error_t *err);

#endif
